from __future__ import annotations

import time
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


def wait_until_finished(run_id: int, timeout: float = 10.0):
    """The run's row once it is finished (done, failed, cancelled); fails after `timeout`."""
    from playground.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.finished:
            return run
        time.sleep(0.02)
    pytest.fail(f"run {run_id} did not finish within {timeout} s: {run.status}")


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"{what} not met within {timeout} s")


def chat(*agents, system_prompt: str = ""):
    """A conversation with these agents (rows made with objects.create())."""
    from playground.models import Conversation

    conversation = Conversation.objects.create(title="test", system_prompt=system_prompt)
    conversation.agents.set(agents)
    return conversation


@pytest.fixture
def http_agent(agent_server: AgentServer):
    """An Agent row for one behaviour of the test server: http_agent("openai", kind=...)."""
    from playground.models import Agent

    def make(mode: str, kind: str = "openai", **config):
        path = "/v1" if kind == "openai" else "/invocations"
        return Agent.objects.create(
            name=f"{mode}-{kind}-{len(config)}-{time.monotonic_ns()}",
            kind=kind,
            config={"url": f"{agent_server.url}/{mode}{path}", **config},
        )

    return make


@pytest.fixture
def echo_agent():
    from playground.models import Agent

    return Agent.objects.create(name="echo", kind="builtin",
                                config={"agent": "echo", "word_delay_ms": 0})  # fmt: skip
