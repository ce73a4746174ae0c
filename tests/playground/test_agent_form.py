"""The agent form, kind by kind: each kind's own fields with an example, a valid form saved
as the config the agent client reads, an invalid one refused inline (422, under its field),
an edited agent shown in its fields and saved back unchanged, and the kind switch (htmx
fragment, or the no-JS button) that saves nothing."""

from __future__ import annotations

import html
import re

import pytest

from playground.agent_form import KIND_FIELDS, AgentForm
from playground.models import Agent

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:8000/v1"


def field_error(page: str, name: str) -> str:
    """The inline error shown under one field ("" when none)."""
    match = re.search(rf'data-field="{name}">(.*?)\n</div>', page, re.S)
    assert match, f"no field {name} on the page"
    error = re.search(r'class="error-text" role="alert">(.*?)</span>', match.group(1), re.S)
    return html.unescape(error.group(1)) if error else ""


def as_posted(agent: Agent) -> dict[str, str]:
    """What a browser posts back for the agent's edit form as rendered, untouched."""
    form = AgentForm(instance=agent)
    data = {}
    for name in form.fields:
        value = form[name].value()
        if form[name].widget_type == "checkbox":
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = form[name].field.prepare_value(value) if name in (
                "config", "default_params") else str(value)  # fmt: skip
    return data


def test_an_openai_agent_is_saved_from_its_fields(client, settings):
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["VLLM_KEY"]
    response = client.post("/playground/agents/", {
        "name": "vllm", "kind": "openai", "url": URL, "model": "llama", "stream": "on",
        "timeout": "30", "api_key_env": "VLLM_KEY", "config": "", "default_params": "",
    })  # fmt: skip

    assert response.status_code == 302
    agent = Agent.objects.get(name="vllm")
    assert agent.config == {"url": URL, "model": "llama", "stream": True, "timeout": 30,
                            "api_key_env": "VLLM_KEY"}  # fmt: skip


def test_an_openai_url_the_gate_refuses_is_an_error_under_the_url(client):
    response = client.post("/playground/agents/", {
        "name": "x", "kind": "openai", "url": "file:///etc/passwd", "model": "m"})  # fmt: skip

    assert response.status_code == 422
    page = response.content.decode()
    assert "Only http:// and https:// URLs can be called" in field_error(page, "url")
    assert 'value="m"' in page  # what was typed stays
    assert not Agent.objects.exists()


def test_an_mlflow_serving_agent_is_saved_with_streaming_off(client):
    response = client.post("/playground/agents/", {
        "name": "served", "kind": "mlflow-serving",
        "url": "http://127.0.0.1:5001/invocations"})  # fmt: skip

    assert response.status_code == 302
    config = Agent.objects.get().config
    assert config == {"url": "http://127.0.0.1:5001/invocations", "stream": False}


def test_an_mlflow_serving_agent_without_a_url_is_refused_under_the_url(client):
    response = client.post("/playground/agents/", {"name": "served", "kind": "mlflow-serving"})

    assert response.status_code == 422
    assert "needs a url" in field_error(response.content.decode(), "url")


def test_a_logged_model_agent_is_saved_from_its_model_uri(client, settings):
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = True
    response = client.post("/playground/agents/", {
        "name": "lm", "kind": "logged-model", "model_uri": "models:/support@champion",
        "stream": "on"})  # fmt: skip

    assert response.status_code == 302
    assert Agent.objects.get().config == {"model_uri": "models:/support@champion", "stream": True}


def test_a_logged_model_agent_needs_a_model_and_no_remote_uri(client, settings):
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = True
    empty = client.post("/playground/agents/", {"name": "lm", "kind": "logged-model"})
    remote = client.post("/playground/agents/", {"name": "lm", "kind": "logged-model",
                                                  "model_uri": "s3://bucket/model"})  # fmt: skip

    assert empty.status_code == remote.status_code == 422
    assert "needs a model URI" in field_error(empty.content.decode(), "model_uri")
    assert "model_uri must be models:/" in field_error(remote.content.decode(), "model_uri")


def test_the_logged_model_form_says_the_kind_is_off_and_which_setting_turns_it_on(client, settings):
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = False
    page = client.get("/playground/agents/?kind=logged-model").content.decode()
    saved = client.post("/playground/agents/", {"name": "lm", "kind": "logged-model",
                                                "model_uri": "models:/support/1"})  # fmt: skip

    assert "This kind is off on this server" in page
    assert "Logged model (in the worker) (off on this server)" in page
    assert saved.status_code == 422
    assert "Set SPYGLASS_PLAYGROUND_LOGGED_MODELS=1" in field_error(saved.content.decode(), "kind")
    assert not Agent.objects.exists()


def test_a_builtin_agent_keeps_its_extra_json_beside_its_fields(client):
    response = client.post("/playground/agents/", {
        "name": "oracle", "kind": "builtin", "agent": "oracle-judge", "word_delay_ms": "0",
        "config": '{"roles": {"judge": {"temperature": 0.2}}}'})  # fmt: skip

    assert response.status_code == 302
    assert Agent.objects.get().config == {"agent": "oracle-judge", "word_delay_ms": 0,
                                          "roles": {"judge": {"temperature": 0.2}}}  # fmt: skip


def test_a_builtin_agent_that_does_not_exist_is_refused(client):
    response = client.post("/playground/agents/", {"name": "x", "kind": "builtin",
                                                   "agent": "shell"})  # fmt: skip

    assert response.status_code == 422
    assert "Select a valid choice" in field_error(response.content.decode(), "agent")


def test_a_key_typed_in_its_field_and_in_the_extra_json_is_refused(client):
    response = client.post(
        "/playground/agents/",
        {"name": "x", "kind": "openai", "url": URL, "config": '{"url": "http://other/v1"}'},
    )

    assert response.status_code == 422
    assert '"url" has its own field above' in field_error(response.content.decode(), "config")


def test_a_secret_in_the_extra_json_is_refused(client):
    response = client.post(
        "/playground/agents/",
        {"name": "x", "kind": "openai", "url": URL, "config": '{"token": "sk-1"}'},
    )

    assert response.status_code == 422
    assert "use the API key field" in field_error(response.content.decode(), "config")


@pytest.mark.parametrize("kind, config", [
    ("openai", {"url": URL, "model": "llama", "stream": False, "timeout": 12.5,
                "api_key_env": "VLLM_KEY", "seed_of_the_future": 7}),
    ("mlflow-serving", {"url": "http://127.0.0.1:5001/invocations", "stream": True}),
    ("logged-model", {"model_uri": "models:/support/3", "stream": False}),
    ("builtin", {"agent": "oracle-judge", "roles": {"oracle": {"temperature": 0.1}},
                 "latency_ms": 50}),
])  # fmt: skip
def test_editing_shows_the_stored_values_and_saving_them_back_loses_nothing(
    client, settings, kind, config
):
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["VLLM_KEY"]
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = True
    agent = Agent.objects.create(name="a", kind=kind, config=config, model_id="m-" + "c" * 32,
                                 default_params={"temperature": 0.3})  # fmt: skip

    page = client.get(f"/playground/agents/{agent.pk}/").content.decode()
    saved = client.post(f"/playground/agents/{agent.pk}/", as_posted(agent))

    for key, value in config.items():
        if key in KIND_FIELDS[kind] and key != "stream":
            assert f'name="{key}"' in page and f'value="{value}"' in page
    extra = {k: v for k, v in config.items() if k not in KIND_FIELDS[kind]}
    assert ('<details class="pg-extra" open>' in page) == bool(extra)
    assert saved.status_code == 302, saved.content.decode()
    agent.refresh_from_db()
    assert agent.config == config
    assert agent.model_id == "m-" + "c" * 32 and agent.default_params == {"temperature": 0.3}


def test_every_field_of_every_kind_shows_an_example(client, settings):
    settings.SPYGLASS_PLAYGROUND_LOGGED_MODELS = True
    for kind, names in KIND_FIELDS.items():
        form = AgentForm(initial={"kind": kind})
        for bound in form.kind_fields():
            if bound.widget_type not in ("checkbox", "select"):
                assert bound.field.widget.attrs.get("placeholder"), (kind, bound.name)
            assert bound.help_text or bound.name in ("model",), (kind, bound.name)
        assert [b.name for b in form.kind_fields()] == [n for n in names if n != "remove_api_key"]


def test_a_change_of_kind_swaps_in_that_kinds_fields_keeping_what_was_typed(client):
    query = {"name": "mine", "kind": "mlflow-serving", "url": URL, "model": "llama",
             "config": '{"x": 1}'}  # fmt: skip

    fragment = client.get("/playground/agents/", query, HTTP_HX_REQUEST="true")
    page = fragment.content.decode()

    assert fragment.status_code == 200
    assert "<html" not in page and page.lstrip().startswith('<div id="agent-kind-fields"')
    assert 'data-kind-fields="mlflow-serving"' in page
    assert f'value="{URL}"' in page and 'name="model"' not in page  # serving has no model
    assert "{&quot;x&quot;: 1}" in page
    assert fragment["Vary"] == "HX-Request"
    assert not Agent.objects.exists()


def test_without_javascript_the_show_fields_button_changes_kind_and_saves_nothing(client):
    response = client.post("/playground/agents/", {
        "name": "mine", "kind": "builtin", "url": URL, "api_key": "sk-typed",
        "show_fields": "1"})  # fmt: skip

    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="agent"' in page and 'name="url"' not in page
    assert 'value="mine"' in page and "sk-typed" not in page
    assert not Agent.objects.exists()


def test_the_kind_select_asks_htmx_for_the_fields_of_the_kind_picked(client):
    page = client.get("/playground/agents/").content.decode()

    select = re.search(r'<select name="kind"[^>]*>', page).group(0)
    assert 'hx-get="/playground/agents/"' in select and 'hx-target="#agent-kind-fields"' in select
    assert "not api_key" in select  # a typed key never travels in a URL
    assert 'name="show_fields"' in page  # inside <noscript>
