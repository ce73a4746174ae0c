"""An XSS corpus in every user-controlled field, opened in Chromium on every page that shows
it: no script runs. The `page` fixture fails a test on any console error, and a payload that
escaped its escaping would either run (a dialog, recorded here) or be refused by the CSP,
which Chromium reports as a console error; both fail."""

from __future__ import annotations

import json
import os

import pytest

from tests.xss import CORPUS
from tracking import ingest
from tracking.models import (
    Assessment,
    Experiment,
    LoggedModel,
    ModelVersion,
    RegisteredModel,
    Trace,
)

pytestmark = pytest.mark.e2e

PAYLOAD = " ".join(CORPUS)
NO_SLASH_PAYLOAD = "\"><img src=x onerror=alert('registry')><svg onload=alert('reg-svg')>"


def b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


@pytest.fixture
def hostile(server) -> dict[str, object]:
    """A model version and a trace of it with the corpus in every field a user controls."""
    experiment = Experiment.objects.create(name=PAYLOAD[:400])
    model = LoggedModel.objects.create(
        experiment=experiment,
        name=PAYLOAD[:400],
        params={PAYLOAD[:100]: PAYLOAD},
        tags={"mlflow.source.git.repoURL": "javascript:alert('repo')", "note": PAYLOAD},
        model_config={"instructions": PAYLOAD, PAYLOAD[:50]: {"nested": PAYLOAD}},
    )
    trace_id = os.urandom(16)
    chat = {
        "messages": [
            {"role": "system", "content": PAYLOAD},
            {"role": "user", "content": PAYLOAD},
        ]
    }
    answer = {"choices": [{"message": {"role": "assistant", "content": PAYLOAD}}]}

    def span(i: int, parent: int | None, name: str, inputs, outputs, **extra) -> dict:
        return {
            "trace_id": b64(trace_id),
            "span_id": b64((i + 1).to_bytes(8, "big")),
            "parent_span_id": b64((parent + 1).to_bytes(8, "big")) if parent is not None else None,
            "name": name,
            "start_time_unix_nano": 1_795_294_591_000_000_000 + i * 1000,
            "end_time_unix_nano": 1_795_294_591_000_000_000 + i * 1000 + 900,
            "events": extra.get("events", []),
            "status": extra.get("status", {"code": "STATUS_CODE_OK", "message": ""}),
            "attributes": {
                "mlflow.spanType": json.dumps(extra.get("type", "CHAIN")),
                "mlflow.spanInputs": json.dumps(inputs),
                "mlflow.spanOutputs": json.dumps(outputs),
                PAYLOAD[:60]: json.dumps(PAYLOAD),
            },
        }

    error_event = {
        "name": "exception",
        "time_unix_nano": 1_795_294_591_000_000_500,
        "attributes": {
            "exception.type": PAYLOAD[:80],
            "exception.message": PAYLOAD,
            "exception.stacktrace": PAYLOAD,
        },
    }
    error = {"code": "STATUS_CODE_ERROR", "message": PAYLOAD}
    spans = [
        span(0, None, PAYLOAD[:300], chat, answer, type="AGENT"),
        span(1, 0, PAYLOAD[:300], PAYLOAD, PAYLOAD, type="LLM"),
        span(
            2,
            0,
            PAYLOAD[:300],
            {"q": PAYLOAD},
            None,
            type="TOOL",
            events=[error_event],
            status=error,
        ),
    ]
    info = {
        "trace_id": f"tr-{trace_id.hex()}",
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": str(experiment.pk)},
        },
        "request_time": "2026-11-21T20:56:31.290Z",
        "execution_duration": "0.085s",
        "state": "ERROR",
        "request_preview": PAYLOAD,
        "response_preview": PAYLOAD,
        "trace_metadata": {"mlflow.modelId": model.model_id, PAYLOAD[:40]: PAYLOAD},
        "tags": {"mlflow.traceName": PAYLOAD[:300], PAYLOAD[:40]: PAYLOAD},
    }
    ingest.store_trace(info, spans)
    other = LoggedModel.objects.create(
        experiment=experiment, name=PAYLOAD[:400], params={PAYLOAD[:100]: "other"},
        model_config={"instructions": "other", PAYLOAD[:50]: [PAYLOAD]},
        tags={"mlflow.source.git.commit": PAYLOAD[:40]},
    )  # fmt: skip
    trace = Trace.objects.get()
    for value in (PAYLOAD, {"nested": PAYLOAD}, True):
        Assessment.objects.create(trace=trace, name=PAYLOAD[:200], kind="feedback", value=value,
                                  rationale=PAYLOAD, source_id=PAYLOAD[:200])  # fmt: skip
    # A second experiment with a trace, so that the list's experiment filter (names) shows.
    Trace.objects.create(experiment=Experiment.objects.create(name="plain"),
                         trace_id="tr-" + "0" * 32, request_time=trace.request_time)  # fmt: skip
    # Registry names cannot hold "/" or ":" (they are parts of models:/ URIs).
    registered = RegisteredModel.objects.create(
        name=NO_SLASH_PAYLOAD, description=PAYLOAD, aliases={"champion": 1}
    )
    ModelVersion.objects.create(registered_model=registered, version=1, model_id=model.model_id)
    return {"model": model, "other_model": other, "trace": trace,
            "experiment": experiment}  # fmt: skip


@pytest.fixture
def hostile_chat(hostile) -> str:
    """A playground conversation whose agent, message and answers carry the corpus."""
    from playground.models import Agent, Conversation, Message, Run, RunStatus

    agent = Agent.objects.create(
        name=PAYLOAD[:190], kind="builtin", config={"agent": "echo", "note": PAYLOAD}
    )
    conversation = Conversation.objects.create(title=PAYLOAD[:190], system_prompt=PAYLOAD)
    conversation.agents.add(agent)
    message = Message.objects.create(
        conversation=conversation, content=PAYLOAD, custom_inputs={PAYLOAD[:40]: PAYLOAD}
    )
    common = {"conversation": conversation, "message": message, "agent": agent}
    Run.objects.create(**common, status=RunStatus.DONE, content=PAYLOAD,
                       custom_outputs={PAYLOAD[:40]: PAYLOAD},
                       trace_id=hostile["trace"].trace_id)  # fmt: skip
    Run.objects.create(**common, status=RunStatus.FAILED, error=PAYLOAD)
    return f"/playground/c/{conversation.pk}/"


@pytest.fixture
def hostile_access(hostile) -> list[str]:
    """A user and a group named with the corpus, granted on the hostile experiment; the
    access pages that show them. Usernames are validated on the forms, not in the table."""
    from django.contrib.auth.models import Group, User

    from access.models import ExperimentGrant, Level

    user = User.objects.create(username=PAYLOAD[:150])
    group = Group.objects.create(name=NO_SLASH_PAYLOAD[:150])
    group.user_set.add(user)
    experiment = hostile["experiment"]
    ExperimentGrant.objects.create(experiment=experiment, user=user, level=Level.EDIT)
    ExperimentGrant.objects.create(experiment=experiment, group=group, level=Level.READ)
    return [
        "/settings/access/",
        f"/settings/access/users/{user.pk}/",
        "/settings/access/groups/",
        f"/settings/access/groups/{group.pk}/",
        "/settings/access/experiments/",
        f"/settings/access/experiments/{experiment.pk}/",
    ]


def pages_showing(hostile: dict[str, object]) -> list[str]:
    model = hostile["model"]
    trace = hostile["trace"]
    return [
        "/",
        "/traces/",
        f"/traces/?experiment={hostile['experiment'].pk}",
        f"/traces/?model={model.model_id}",
        trace.get_absolute_url(),
        # Span details as a whole page: chat (markdown), JSON trees, events and stack traces.
        *(f"{trace.get_absolute_url()}spans/{i:016x}/" for i in (1, 2, 3)),
        "/models/",
        f"/models/{model.model_id}/",
        f"/models/{model.model_id}/traces/",
        f"/models/{model.model_id}/artifacts/",
        f"/models/compare/?ids={model.model_id},{hostile['other_model'].model_id}",
    ]


def test_no_script_from_the_corpus_runs_on_any_page(page, server, hostile, hostile_chat,
                                                     hostile_access):  # fmt: skip
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    pages = [*pages_showing(hostile), hostile_chat, "/playground/", "/playground/agents/",
             *hostile_access]  # fmt: skip

    for path in pages:
        response = page.goto(server + path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        # The payload is on the page as text, not as markup.
        assert page.locator("img[onerror], svg[onload], iframe, details[ontoggle]").count() == 0
        assert page.locator("a[href^='javascript:']").count() == 0, path

    assert dialogs == []
    # The corpus was there to be shown: as text, in the registry line and the experiment filter.
    page.goto(server + "/models/")
    assert "onerror=alert('registry')" in page.locator("main").inner_text()
    page.goto(server + "/traces/")
    assert "<img src=x" in page.get_by_role("group", name="Experiment").inner_text()
    page.goto(server + hostile["trace"].get_absolute_url())
    assert "onerror=alert" in page.locator("section.assessments").inner_text()
    page.goto(server + hostile_access[3])
    assert "onerror=alert('registry')" in page.locator("main .breadcrumbs").inner_text()
