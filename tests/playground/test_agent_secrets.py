"""Agents' keys and who may change agents: only admins; keys stored encrypted and never shown
again, or read from allowed environment variables and never the server's own secrets. The
calls go through the real embedded worker to the real test agent server."""

from __future__ import annotations

import json
import logging
import secrets

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User

from playground.agents import client_for
from playground.agents.base import AgentError, ChatRequest, consume
from playground.models import Agent, AgentSecret, Conversation, Run, RunStatus
from playground.tracing import TraceRecorder
from tests.playground.conftest import wait_until_finished
from tracking.models import Span, Trace
from webapp import vault

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def logins_on(settings) -> None:
    settings.SPYGLASS_AUTH = True


@pytest.fixture
def alice(client, logins_on) -> User:
    """Signed in, not an admin."""
    user = User.objects.create_user("alice", password="wonder-land-42")
    client.force_login(user)
    return user


@pytest.fixture
def admin(client, logins_on) -> User:
    user = User.objects.create_superuser("root", password="root-of-trust-42")
    client.force_login(user)
    return user


def agent_form(server_url: str, name: str = "gpt", **fields) -> dict[str, str]:
    config = fields.pop("config", {"url": f"{server_url}/openai/v1", "model": "m"})
    return {"name": name, "kind": "openai", "config": json.dumps(config), **fields}


def ask(agent: Agent) -> str:
    """One answer from the agent, called in this process (as the worker would)."""
    trace = TraceRecorder()
    stream = client_for(agent).stream(ChatRequest([{"role": "user", "content": "hi"}]),
                                      trace.root(agent.name, "AGENT"))  # fmt: skip
    return consume(stream, lambda _: None).content


# --- Who may change agents --------------------------------------------------------------------


def test_a_non_admin_sees_the_agents_but_cannot_add_one(client, alice, agent_server):
    Agent.objects.create(name="existing", kind="builtin")

    page = client.get("/playground/agents/")
    response = client.post("/playground/agents/", agent_form(agent_server.url, api_key="sk-x"))

    assert page.status_code == 200
    assert "existing" in page.content.decode()
    assert "pg-agent-form" not in page.content.decode()
    assert "Only admins" in page.content.decode()
    assert response.status_code == 403
    assert list(Agent.objects.values_list("name", flat=True)) == ["existing"]
    assert not AgentSecret.objects.exists()


def test_a_non_admin_cannot_edit_an_agent_or_its_key(client, alice, agent_server):
    agent = Agent.objects.create(name="gpt", kind="openai",
                                 config={"url": f"{agent_server.url}/openai/v1"})  # fmt: skip

    page = client.get(f"/playground/agents/{agent.pk}/")
    response = client.post(
        f"/playground/agents/{agent.pk}/",
        agent_form("http://attacker.example", api_key="sk-x"),
    )

    assert page.status_code == 200 and "pg-agent-form" not in page.content.decode()
    assert response.status_code == 403
    agent.refresh_from_db()
    assert agent.config == {"url": f"{agent_server.url}/openai/v1"}
    assert not AgentSecret.objects.exists()


def test_an_admin_adds_an_agent_whose_key_is_stored_encrypted(client, admin, agent_server):
    key = "sk-admin-" + secrets.token_hex(8)

    response = client.post("/playground/agents/", agent_form(agent_server.url, api_key=key))

    assert response.status_code == 302
    agent = Agent.objects.get(name="gpt")
    sealed = AgentSecret.objects.get(agent=agent).sealed
    assert key not in sealed and key not in json.dumps(agent.config)
    assert vault.unseal(sealed) == key
    assert ask(agent) == "Echo: hi"
    assert agent_server.requests[0]["headers"]["Authorization"] == f"Bearer {key}"


# --- api_key_env ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "SPYGLASS_SECRETS_KEY",
        "DJANGO_SECRET_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "database_url",
    ],
)
def test_the_servers_own_secrets_cannot_be_named_even_when_listed(
    client, admin, settings, agent_server, name
):
    settings.SPYGLASS_AGENT_ENV_ALLOW = [name]
    config = {"url": f"{agent_server.url}/openai/v1", "api_key_env": name}

    response = client.post("/playground/agents/", agent_form(agent_server.url, config=config))

    assert response.status_code == 422
    assert f"{name} holds the server&#x27;s own" in response.content.decode()
    assert not Agent.objects.exists()


def test_api_key_env_must_be_on_the_allow_list(client, admin, settings, agent_server):
    config = {"url": f"{agent_server.url}/openai/v1", "api_key_env": "VLLM_KEY"}

    refused = client.post("/playground/agents/", agent_form(agent_server.url, config=config))
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["VLLM_KEY"]
    accepted = client.post("/playground/agents/", agent_form(agent_server.url, config=config))

    assert refused.status_code == 422
    assert "VLLM_KEY is not in SPYGLASS_AGENT_ENV_ALLOW" in refused.content.decode()
    assert accepted.status_code == 302
    assert Agent.objects.get().config["api_key_env"] == "VLLM_KEY"


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL"])
def test_an_agent_stored_naming_a_server_secret_fails_its_run_and_sends_nothing(
    client, worker, settings, monkeypatch, agent_server, name
):
    # As an agent saved before the rules, or written to the database by other means.
    monkeypatch.setenv(name, "the-server-secret-" + secrets.token_hex(8))
    settings.SPYGLASS_AGENT_ENV_ALLOW = [name]
    agent = Agent.objects.create(name="old", kind="openai", config={
        "url": f"{agent_server.url}/openai/v1", "api_key_env": name})  # fmt: skip

    client.post("/playground/new", {"agents": [agent.pk], "message": "hi"})
    run = wait_until_finished(Run.objects.get().pk)

    assert run.status == RunStatus.FAILED
    assert f"{name} holds the server's own configuration" in run.error
    assert "the-server-secret-" not in run.error
    assert agent_server.requests == []  # no request at all, so no Authorization header
    fragment = client.get(f"/playground/runs/{run.pk}/").content.decode()
    assert "never sent to an agent" in fragment


# --- Stored keys ------------------------------------------------------------------------------


def test_a_stored_key_is_replaced_and_removed(client, admin, agent_server):
    client.post("/playground/agents/", agent_form(agent_server.url, api_key="sk-first"))
    agent = Agent.objects.get()

    edit = client.get(f"/playground/agents/{agent.pk}/").content.decode()
    replaced = client.post(f"/playground/agents/{agent.pk}/",
                           agent_form(agent_server.url, api_key="sk-second"))  # fmt: skip
    ask(agent)
    kept = client.post(f"/playground/agents/{agent.pk}/", agent_form(agent_server.url))
    ask(agent)
    removed = client.post(f"/playground/agents/{agent.pk}/",
                          agent_form(agent_server.url, remove_api_key="on"))  # fmt: skip
    ask(agent)

    assert "Set (saved" in edit and "Remove the stored API key" in edit
    assert "sk-first" not in edit
    assert [r.status_code for r in (replaced, kept, removed)] == [302, 302, 302]
    sent = [r["headers"].get("Authorization") for r in agent_server.requests]
    assert sent == ["Bearer sk-second", "Bearer sk-second", None]
    assert not AgentSecret.objects.exists()


def test_a_form_with_an_error_never_shows_the_typed_key_back(client, admin, agent_server):
    form = agent_form(agent_server.url, name="", api_key="sk-typed-once")

    response = client.post("/playground/agents/", form)

    assert response.status_code == 422
    assert "sk-typed-once" not in response.content.decode()
    assert not AgentSecret.objects.exists()


def test_a_key_and_api_key_env_are_not_both_accepted(client, admin, settings, agent_server):
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["VLLM_KEY"]
    config = {"url": f"{agent_server.url}/openai/v1", "api_key_env": "VLLM_KEY"}

    response = client.post("/playground/agents/",
                           agent_form(agent_server.url, config=config, api_key="sk-x"))  # fmt: skip

    assert response.status_code == 422
    assert "not both" in response.content.decode()
    assert not Agent.objects.exists()


def test_without_a_secrets_key_no_key_is_stored(client, admin, settings, agent_server):
    settings.SPYGLASS_SECRETS_KEY = []

    response = client.post("/playground/agents/", agent_form(agent_server.url, api_key="sk-x"))

    assert response.status_code == 422
    assert "No SPYGLASS_SECRETS_KEY is set on this server" in response.content.decode()
    assert not Agent.objects.exists()


def test_an_invalid_secrets_key_is_an_inline_error_too(client, admin, settings, agent_server):
    settings.SPYGLASS_SECRETS_KEY = ["not-a-fernet-key"]

    response = client.post("/playground/agents/", agent_form(agent_server.url, api_key="sk-x"))

    assert response.status_code == 422
    assert "SPYGLASS_SECRETS_KEY is not a valid Fernet key" in response.content.decode()
    assert not Agent.objects.exists()


def test_a_key_sealed_under_another_secrets_key_fails_clearly_and_sends_nothing(
    settings, agent_server
):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SPYGLASS_SECRETS_KEY = [old]
    agent = Agent.objects.create(name="gpt", kind="openai",
                                 config={"url": f"{agent_server.url}/openai/v1"})  # fmt: skip
    agent.set_api_key("sk-sealed")

    settings.SPYGLASS_SECRETS_KEY = [new]
    with pytest.raises(AgentError, match="cannot be decrypted with SPYGLASS_SECRETS_KEY"):
        ask(agent)
    assert agent_server.requests == []

    settings.SPYGLASS_SECRETS_KEY = [new, old]  # rotation: the new key first, the old still opens
    ask(agent)
    assert agent_server.requests[0]["headers"]["Authorization"] == "Bearer sk-sealed"


def test_a_logged_model_agent_cannot_fetch_its_model_from_a_url(client, admin):
    form = {"name": "lm", "kind": "logged-model",
            "config": json.dumps({"model_uri": "http://169.254.169.254/model"})}  # fmt: skip

    response = client.post("/playground/agents/", form)

    assert response.status_code == 422
    assert "model_uri must be models:/" in response.content.decode()
    assert not Agent.objects.exists()


def test_an_agent_url_that_is_not_http_is_refused_by_the_form(client, admin):
    form = {"name": "x", "kind": "mlflow-serving",
            "config": json.dumps({"url": "file:///proc/self/environ"})}  # fmt: skip

    response = client.post("/playground/agents/", form)

    assert response.status_code == 422
    assert "Only http:// and https:// URLs can be called" in response.content.decode()
    assert not Agent.objects.exists()


# --- A stored key never shows --------------------------------------------------------------


def test_a_stored_key_reaches_the_agent_and_shows_nowhere(client, worker, agent_server, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("playground", "webapp", "celery", "kombu", "django", "tracking"):
        caplog.set_level(logging.DEBUG, logger=name)
    key = "sk-leak-" + secrets.token_hex(16)

    saved = client.post("/playground/agents/", agent_form(agent_server.url, api_key=key))
    agent = Agent.objects.get()
    client.post("/playground/new", {"agents": [agent.pk], "message": "hello"})
    run = wait_until_finished(Run.objects.get().pk)

    assert saved.status_code == 302
    assert run.status == RunStatus.DONE, run.error
    assert agent_server.requests[0]["headers"]["Authorization"] == f"Bearer {key}"
    trace = Trace.objects.get(trace_id=run.trace_id)
    spans = list(Span.objects.filter(trace=trace))
    http_span = next(s for s in spans if s.name == "POST /openai/v1/chat/completions")
    assert http_span.attributes["http.url"] == f"{agent_server.url}/openai/v1/chat/completions"
    conversation = Conversation.objects.get()
    tid, exp = trace.trace_id, trace.experiment_id
    pages = [
        "/playground/agents/",
        f"/playground/agents/{agent.pk}/",
        "/playground/",
        f"/playground/c/{conversation.pk}/",
        f"/playground/runs/{run.pk}/",
        f"/playground/runs/{run.pk}/trace",
        "/traces/",
        f"/traces/{tid}/",
        f"/traces/{tid}/layout/",
        *(f"/traces/{tid}/spans/{s.span_id}/" for s in spans),
        *(f"/traces/{tid}/spans/{s.span_id}/{field}/"
          for s in spans for field in ("inputs", "outputs", "attributes", "events")),
        "/api/v1/traces/",
        f"/api/v1/traces/{tid}/",
        f"/api/v1/traces/{tid}/spans/",
        f"/api/3.0/mlflow/traces/get?trace_id={tid}",
        f"/api/3.0/mlflow/traces/batchGet?trace_ids={tid}",
        f"/api/3.0/mlflow/traces/{tid}",
        f"/api/2.0/mlflow-artifacts/artifacts/{exp}/traces/{tid}/artifacts/traces.json",
    ]  # fmt: skip
    answers = {path: client.get(path) for path in pages}
    answers["traces/search"] = client.post(
        "/api/3.0/mlflow/traces/search",
        {"locations": [{"type": "MLFLOW_EXPERIMENT",
                        "mlflow_experiment": {"experiment_id": str(exp)}}]},
        content_type="application/json",
    )  # fmt: skip

    assert {p: r.status_code for p, r in answers.items() if r.status_code != 200} == {}
    bodies = {path: response.content.decode() for path, response in answers.items()}
    assert [path for path, body in bodies.items() if key in body] == []
    assert tid in bodies[f"/api/3.0/mlflow/traces/get?trace_id={tid}"]  # the pages say things
    assert "stored" in bodies["/playground/agents/"]
    assert "Echo: hello" in bodies[f"/playground/runs/{run.pk}/"]
    assert key not in repr([(s.inputs, s.outputs, s.attributes, s.events) for s in spans])
    assert caplog.records, "nothing was logged: the capture would prove nothing"
    assert any(r.name.startswith("celery") for r in caplog.records)
    assert key not in caplog.text
    assert key not in repr([(r.msg, r.args) for r in caplog.records])


def test_the_admin_says_a_key_is_stored_and_never_shows_it(admin_client, agent_server):
    agent = Agent.objects.create(name="gpt", kind="openai",
                                 config={"url": f"{agent_server.url}/openai/v1"})  # fmt: skip
    agent.set_api_key("sk-admin-page")

    listing = admin_client.get("/admin/playground/agent/")
    change = admin_client.get(f"/admin/playground/agent/{agent.pk}/change/")

    assert listing.status_code == change.status_code == 200
    assert "API key stored" in listing.content.decode()
    assert "sk-admin-page" not in listing.content.decode() + change.content.decode()
    assert agent.sealed_api_key() not in change.content.decode()


def test_a_key_in_the_urls_query_is_refused(client, admin, agent_server):
    config = {"url": f"{agent_server.url}/openai/v1?key=sk-in-the-url"}

    response = client.post("/playground/agents/", agent_form(agent_server.url, config=config))

    assert response.status_code == 422
    assert "Do not put keys in the URL" in response.content.decode()
    assert not Agent.objects.exists()


@pytest.mark.django_db
def test_an_editor_role_is_not_enough_to_change_agents(client, logins_on):
    from access.models import Role, UserRole

    bob = User.objects.create_user("bob", password="builder-1234-x")
    UserRole.objects.create(user=bob, role=Role.EDITOR)
    client.force_login(bob)
    response = client.post("/playground/agents/", {"name": "x", "kind": "builtin", "config": "{}"})
    assert response.status_code == 403
    assert not Agent.objects.filter(name="x").exists()
    UserRole.objects.filter(user=bob).update(role=Role.ADMIN)
    response = client.post("/playground/agents/", {"name": "x", "kind": "builtin", "config": "{}"})
    assert response.status_code == 302
    assert Agent.objects.filter(name="x").exists()
