"""Test connection: one tiny message to the saved agent, through the worker, against the real
test agent server; the result (ok + latency + first words, or the client's error) is kept on
the check row that the agents' page shows and polls."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from playground import checks
from playground.models import Agent, AgentCheck, CheckStatus
from tests.conftest import database_url_for_another_process
from tests.playground.conftest import wait_for

pytestmark = pytest.mark.django_db


def checked(agent: Agent) -> AgentCheck:
    """Run a check of `agent` as the task does, in this thread."""
    check = AgentCheck.objects.create(agent=agent)
    checks.run(check.pk)
    return AgentCheck.objects.get(pk=check.pk)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_openai_agent_answers_ok_with_its_latency_and_first_words(http_agent, agent_server):
    check = checked(http_agent("openai"))

    assert check.status == CheckStatus.OK, check.error
    assert check.answer == "Echo: Reply with one short sentence: is this connection working?"
    assert check.latency_ms is not None and check.latency_ms >= 0
    assert agent_server.requests[0]["body"]["max_tokens"] == 32


def test_an_mlflow_serving_agent_answers_ok(http_agent):
    check = checked(http_agent("chat-agent", "mlflow-serving"))

    assert check.status == CheckStatus.OK, check.error
    assert check.answer.startswith("Echo: Reply with one short")


def test_a_long_answer_is_cut_to_its_first_words():
    assert checks.first_words("one two three four five", words=3) == "one two three …"
    assert checks.first_words("one two") == "one two"


@pytest.mark.parametrize("mode, error", [
    ("fail", "The agent answered HTTP 500: the model crashed"),
    ("responses", "The agent answered HTTP 400: input is required"),
    ("malformed", "The agent's answer is not valid JSON"),
])  # fmt: skip
def test_an_agent_that_answers_an_error_fails_the_check_saying_so(http_agent, mode, error):
    check = checked(http_agent(mode, stream=False))

    assert check.status == CheckStatus.FAILED
    assert error in check.error


def test_a_refused_connection_fails_the_check_saying_so():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    agent = Agent.objects.create(name="down", kind="openai", config={"url": url})

    check = checked(agent)

    assert check.status == CheckStatus.FAILED
    assert "Could not reach the agent" in check.error and "refused" in check.error.lower()


def test_a_host_the_gate_refuses_is_never_called(settings, http_agent, agent_server):
    settings.SPYGLASS_AGENT_HOSTS = ["api.example.com"]

    check = checked(http_agent("openai"))

    assert check.status == CheckStatus.FAILED
    assert "127.0.0.1 is not in SPYGLASS_AGENT_HOSTS" in check.error
    assert agent_server.requests == []


def test_a_kind_that_is_off_fails_the_check_with_the_setting_to_change(settings):
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = False
    agent = Agent.objects.create(name="lm", kind="logged-model",
                                 config={"model_uri": "models:/support/1"})  # fmt: skip

    check = checked(agent)

    assert check.status == CheckStatus.FAILED
    assert "SPYGLASS_PLAYGROUND_LOGGED_MODELS=1" in check.error


def test_an_agent_that_does_not_answer_fails_the_check_at_its_time_limit(monkeypatch, http_agent):
    monkeypatch.setattr(checks, "CHECK_TIMEOUT_S", 0.3)
    agent = http_agent("hang", stream=False, timeout=60)

    check = checked(agent)

    assert check.status == CheckStatus.FAILED
    assert "did not answer within 0.3 s" in check.error
    assert agent.config["timeout"] == 60  # the check's shorter limit is never saved


def test_a_redelivered_check_does_nothing(echo_agent):
    check = AgentCheck.objects.create(agent=echo_agent)

    assert checks.run(check.pk) == "ok"
    assert checks.run(check.pk) == "not-queued"


def test_a_check_nobody_picks_up_fails_instead_of_waiting_forever(client, echo_agent):
    old = timezone.now() - timedelta(seconds=checks.QUEUED_FOR_S + 1)
    AgentCheck.objects.create(agent=echo_agent, created_at=old)

    fragment = client.get(f"/playground/agents/{echo_agent.pk}/check/").content.decode()

    assert "No worker picked the check up" in fragment and "hx-get" not in fragment
    assert AgentCheck.objects.get().status == CheckStatus.FAILED


def test_only_admins_test_agents(client, auth_on, bob, echo_agent):
    client.force_login(bob)

    assert client.post(f"/playground/agents/{echo_agent.pk}/check").status_code == 403
    assert not AgentCheck.objects.exists()


def test_polling_the_check_of_a_deleted_agent_stops(client, echo_agent):
    url = f"/playground/agents/{echo_agent.pk}/check/?status=running"
    echo_agent.delete()

    assert client.get(url, headers={"HX-Request": "true"}).status_code == 286  # htmx: stop


@pytest.fixture
def check_worker(worker_app, monkeypatch):
    """Checks enqueue on the embedded worker's app."""
    monkeypatch.setattr(checks, "default_app", worker_app)
    return worker_app


def test_test_connection_runs_in_the_worker_and_the_page_polls_until_ok(
    client, check_worker, http_agent, agent_server
):
    agent = http_agent("openai")
    agent.set_api_key("sk-check-secret")

    started = client.post(f"/playground/agents/{agent.pk}/check", HTTP_HX_REQUEST="true")
    check = wait_for(lambda: AgentCheck.objects.filter(status=CheckStatus.OK).first(),
                     what="the check to pass")  # fmt: skip
    fragment = client.get(f"/playground/agents/{agent.pk}/check/?status=running")
    unchanged = client.get(f"/playground/agents/{agent.pk}/check/?status=ok")
    listing = client.get("/playground/agents/").content.decode()

    assert started.status_code == 200
    assert f'id="check-{agent.pk}"' in started.content.decode()
    assert agent_server.requests[0]["headers"]["Authorization"] == "Bearer sk-check-secret"
    assert fragment.status_code == 200 and unchanged.status_code == 204
    body = fragment.content.decode()
    assert "ok" in body and f"{check.latency_ms} ms" in body and "Echo: Reply" in body
    assert "hx-get" not in body  # finished: no more polling
    assert "Echo: Reply" in listing and "sk-check-secret" not in listing + body


def test_without_javascript_test_connection_returns_to_the_page(client, check_worker, echo_agent):
    response = client.post(f"/playground/agents/{echo_agent.pk}/check", {"from": "edit"})

    assert response.status_code == 302
    assert response["Location"] == f"/playground/agents/{echo_agent.pk}/"
    wait_for(lambda: AgentCheck.objects.filter(status=CheckStatus.OK).exists(),
             what="the check to pass")  # fmt: skip
    page = client.get(f"/playground/agents/{echo_agent.pk}/").content.decode()
    assert "You said: Reply with one short" in page


@pytest.fixture
def redis_check_worker(request, transactional_db, monkeypatch):
    """A `celery -A webapp worker` process on Redis, on the test database."""
    monkeypatch.setenv("DATABASE_URL", database_url_for_another_process())
    return request.getfixturevalue("redis_worker")


@pytest.mark.services
def test_a_check_runs_in_a_worker_process_on_redis(redis_check_worker, http_agent):
    app, queue = redis_check_worker

    check = checks.start(http_agent("chat-agent", "mlflow-serving"), app=app, queue=queue)

    done = wait_for(lambda: AgentCheck.objects.filter(pk=check.pk, status=CheckStatus.OK).first(),
                    timeout=20, what="the check to pass in the worker process")  # fmt: skip
    assert done.answer.startswith("Echo: Reply with one short")


def test_a_check_whose_agent_was_deleted_meanwhile_does_nothing(echo_agent):
    check = AgentCheck.objects.create(agent=echo_agent)
    echo_agent.delete()

    assert checks.run(check.pk) == "not-queued"
    assert not AgentCheck.objects.exists()
