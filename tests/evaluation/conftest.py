"""The playground's fixtures (its test agent server, agents of each kind, the embedded worker),
for evaluations that call agents through the same clients."""

from tests.playground.conftest import (  # noqa: F401
    _agent_server,
    agent_server,
    echo_agent,
    http_agent,
    sqlite_shared_reads,
    worker_app,
)
