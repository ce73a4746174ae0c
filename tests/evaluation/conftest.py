"""The playground's fixtures (its test agent server, agents of each kind, the embedded worker),
for evaluations that call agents through the same clients."""

# The mlflow client against a live server (tests/interop), to read what evaluations wrote.
from tests.interop.conftest import mlflow_server, run_mlflow  # noqa: F401
from tests.playground.conftest import (  # noqa: F401
    _agent_server,
    agent_server,
    echo_agent,
    http_agent,
    sqlite_shared_reads,
    worker_app,
)
