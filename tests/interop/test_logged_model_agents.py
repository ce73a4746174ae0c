"""Seed 004 as a user does it, with logins on: the unmodified mlflow client logs a
models-from-code agent (`name="agent"`), registers it as `support_chat_agent` with the alias
`champion`; a playground agent `models:/support_chat_agent@champion` answers in a separate
worker process that has no MLFLOW_* or OTEL_* variable and runs in an empty directory. Its
mlflow client finds Spyglass on its own (SPYGLASS_INTERNAL_URL, a token of its own account),
the model's spans nest in the playground's trace, and nothing is written where it runs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from playground import runs
from playground.agents.mlflow_env import configure
from playground.models import Agent, RunStatus
from playground.service_account import USERNAME
from tests.conftest import celery_worker_process, database_url_for_another_process
from tests.playground.conftest import chat, wait_for, wait_until_finished
from tests.playground.test_logged_model_spans import AGENT_CODE
from tracking.models import Span, Trace
from webapp.egress import env_name_forbidden
from webapp.management.commands.serve import internal_url
from webapp.models import ApiToken

pytest.importorskip("mlflow", reason="the real mlflow client is not installed")


LOG_AND_REGISTER = """
mlflow.set_experiment("support")
with mlflow.start_run():
    info = mlflow.pyfunc.log_model(name="agent", python_model="agent.py")
version = mlflow.register_model(info.model_uri, "support_chat_agent")
mlflow.MlflowClient().set_registered_model_alias("support_chat_agent", "champion",
                                                 version.version)
result(version.version)
"""


def _worker_env(server_url: str) -> dict[str, str]:
    """This process's environment without anything that would point mlflow somewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
    env.update(
        DATABASE_URL=database_url_for_another_process(),
        SPYGLASS_INTERNAL_URL=server_url,
        SPYGLASS_PLAYGROUND_LOGGED_MODELS="1",
        SPYGLASS_AUTH="1",
    )
    return env


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_registered_agent_answers_from_a_worker_that_knows_nothing_of_mlflow(
    run_mlflow, mlflow_server, redis_url, redis_celery_app, auth_on, bob, tmp_path: Path
):
    _, token = ApiToken.issue(bob, name="laptop")
    (version,) = run_mlflow(LOG_AND_REGISTER, files={"agent.py": AGENT_CODE},
                            MLFLOW_TRACKING_TOKEN=token)  # fmt: skip
    uri = "models:/support_chat_agent@champion"
    agent = Agent.objects.create(name="support chat", kind="logged-model",
                                 config={"model_uri": uri})  # fmt: skip
    workdir = tmp_path / "worker"
    workdir.mkdir()

    with celery_worker_process(
        redis_url, redis_celery_app, cwd=workdir, env=_worker_env(mlflow_server)
    ) as queue:
        message = runs.send(chat(agent), "where is Paris?", app=redis_celery_app, queue=queue)
        run = wait_until_finished(message.runs.get().pk, timeout=60)
        assert run.status == RunStatus.DONE, run.error
        assert run.content == "From the atlas: where is Paris?"
        wait_for(lambda: Span.objects.filter(name="lookup_sources").exists(), what="model spans")
        worker_tokens = list(ApiToken.objects.filter(user__username=USERNAME))

    trace = Trace.objects.get(trace_id=run.trace_id)
    spans = {s.span_id: s for s in Span.objects.filter(trace=trace)}
    by_name = {s.name: s for s in spans.values()}
    chain = []
    span = by_name["lookup_sources"]
    while span.parent_span_id:
        span = spans[span.parent_span_id]
        chain.append(span.name)
    # ResponsesAgent.predict is traced by mlflow itself; the alias is pinned to its version.
    pinned = f"predict models:/support_chat_agent/{version}"
    assert chain == ["answer_question", "predict", pinned, agent.name, "playground"]
    assert list(workdir.iterdir()) == []  # no mlflow.db, mlruns/ or downloaded artifacts
    # The worker's credential: one token of the built-in account, on nobody's token page,
    # deleted when the worker stopped.
    assert [t.name.split(" pid ")[0] for t in worker_tokens] == [f"worker {socket.gethostname()}"]
    assert list(bob.api_tokens.values_list("name", flat=True)) == ["laptop"]
    assert not ApiToken.objects.filter(user__username=USERNAME).exists()


def test_the_worker_leaves_what_the_operator_set(settings):
    settings.SPYGLASS_INTERNAL_URL = "http://10.0.0.5:8000/"
    environ = {"MLFLOW_TRACKING_URI": "https://spyglass.example.com",
               "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}  # fmt: skip

    configure(environ)

    assert environ["MLFLOW_TRACKING_URI"] == "https://spyglass.example.com"
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" not in environ
    fresh: dict[str, str] = {}
    configure(fresh)
    assert fresh["MLFLOW_TRACKING_URI"] == "http://10.0.0.5:8000"
    assert fresh["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://10.0.0.5:8000/v1/traces"
    assert fresh["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
    assert fresh["OTEL_BSP_SCHEDULE_DELAY"] == "100"  # the model's spans soon after the answer


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        (("0.0.0.0", "9000"), "http://127.0.0.1:9000"),
        (("::", "9000"), "http://[::1]:9000"),
        (("[::1]", "80"), "http://[::1]:80"),
        (("10.1.2.3", "8000"), "http://10.1.2.3:8000"),
    ],
)
def test_serve_tells_its_worker_the_address_it_binds(bind, url):
    assert internal_url(*bind) == url


def test_agents_cannot_be_handed_the_workers_export_credentials(settings):
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["OTEL_EXPORTER_OTLP_TRACES_HEADERS"]

    assert env_name_forbidden("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
    assert env_name_forbidden("MLFLOW_TRACKING_TOKEN")
