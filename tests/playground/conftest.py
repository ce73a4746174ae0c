from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.playground.agent_server import AgentServer


@pytest.fixture(scope="session")
def _agent_server() -> Iterator[AgentServer]:
    server = AgentServer().start()
    yield server
    server.stop()


@pytest.fixture
def agent_server(_agent_server: AgentServer) -> AgentServer:
    """The test agent server, with the requests of earlier tests forgotten."""
    _agent_server.requests.clear()
    return _agent_server
