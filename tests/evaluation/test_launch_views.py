"""The launch form and a job's page: who may launch, inline errors that change nothing, a
new judge saved as an MLflow scorer, the live progress fragment, cancel."""

from __future__ import annotations

import pytest
from django.test import Client

from access.models import ExperimentGrant, Level
from evaluation import runner
from evaluation.models import EvaluationJob, JobRow, JobState, RowState
from playground.models import Agent
from tests.rows import XSS
from tracking.models import EvaluationDataset, Experiment, Run, ScorerVersion


@pytest.fixture
def dataset(experiment) -> EvaluationDataset:
    made = EvaluationDataset.create(name="questions", tags={}, experiment_ids=[experiment.pk])
    made.merge_records(
        [
            {"inputs": {"question": f"q{i}"}, "expectations": {"expected_response": "x"}}
            for i in range(3)
        ]
    )
    return made


@pytest.fixture
def agents(db) -> list[Agent]:
    return [
        Agent.objects.create(name=name, kind="builtin", config={"agent": "echo"})
        for name in ("echo-a", "echo-b")
    ]


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Jobs the views started, without a worker (the runner's tests run them)."""
    started: list[int] = []
    monkeypatch.setattr(runner, "start_workers", lambda job, count=None: started.append(job.pk))
    return started


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form(dataset, experiment, *agents, **extra) -> dict:
    data = {
        "dataset": dataset.dataset_id,
        "experiment": experiment.pk,
        "name": "nightly",
        "judge_output": "pass_fail",
        "use_exact_match": "on",
        "exact_match__expectation": "expected_response",
    }
    for slot, agent in enumerate(agents):
        data[f"agent_{slot}"] = agent.pk
    return {**data, **extra}


def test_the_form_is_prefilled_from_the_dataset_and_the_model(
    auth_on, bob, dataset, agents, experiment
):
    agents[1].model_id = "m-" + "1" * 32
    agents[1].save()
    page = signed_in(bob).get(
        f"/evaluations/new/?dataset={dataset.dataset_id}&model={agents[1].model_id}"
    )
    assert page.status_code == 200
    form_ = page.context["form"]
    assert form_.initial["dataset"] == dataset.dataset_id
    assert form_.initial["experiment"] == experiment.pk
    assert form_.initial["agent_0"] == agents[1].pk


def test_the_playground_and_the_model_page_link_the_form(auth_on, bob, agents):
    client = signed_in(bob)
    page = client.get(f"/evaluations/new/?agent={agents[1].pk}&agent={agents[0].pk}")
    initial = page.context["form"].initial
    assert (initial["agent_0"], initial["agent_1"]) == (agents[1].pk, agents[0].pk)


def test_an_editor_launches_and_lands_on_the_job(
    auth_on, bob, dataset, agents, experiment, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(bob).post(
            "/evaluations/new/",
            form(dataset, experiment, *agents, use_latency="on", latency__max_ms="500"),
        )
    job = EvaluationJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/evaluations/jobs/{job.pk}/"
    assert queued == [job.pk]
    assert job.created_by == bob
    assert [s["kind"] for s in job.scorers] == ["exact_match", "latency"]
    assert job.agents.count() == 2 and JobRow.objects.filter(agent__job=job).count() == 6


def test_a_viewer_may_not_launch(auth_on, charlie, dataset, agents, experiment, queued):
    client = signed_in(charlie)
    assert client.get("/evaluations/new/").status_code == 403
    assert client.post("/evaluations/new/", form(dataset, experiment, agents[0])).status_code == 403
    assert not EvaluationJob.objects.exists()


def test_an_experiment_the_editor_may_only_read_is_refused(
    auth_on, bob, dataset, agents, experiment, queued
):
    ExperimentGrant.objects.create(experiment=experiment, user=bob, level=Level.READ)
    response = signed_in(bob).post("/evaluations/new/", form(dataset, experiment, agents[0]))
    assert response.status_code == 422
    assert "experiment" in response.context["form"].errors
    assert not EvaluationJob.objects.exists() and not Run.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"agent_0": ""}, "agent_0"),
        ({"use_exact_match": ""}, "__all__"),
        ({"use_regex": "on", "regex__pattern": "("}, "use_regex"),
        ({"use_json": "on", "json__schema": "{not json"}, "json__schema"),
        ({"scorers_json": '[{"kind": "nope"}]'}, "scorers_json"),
        ({"judge_name": "judge"}, "judge_agent"),
        ({"dataset": "d-" + "0" * 32}, "dataset"),
        ({"latency__max_ms": "fast", "use_latency": "on"}, "latency__max_ms"),
    ],
)
def test_bad_input_is_an_inline_error_and_changes_nothing(
    auth_on, bob, dataset, agents, experiment, queued, changes, field
):
    data = {k: v for k, v in {**form(dataset, experiment, agents[0]), **changes}.items() if v != ""}
    response = signed_in(bob).post("/evaluations/new/", data)
    assert response.status_code == 422
    assert field in response.context["form"].errors
    assert not EvaluationJob.objects.exists() and not Run.objects.exists()


def test_htmx_gets_the_form_alone_with_its_errors(auth_on, bob, dataset, agents, experiment):
    data = form(dataset, experiment)  # no agent
    response = signed_in(bob).post("/evaluations/new/", data, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    body = response.content.decode()
    assert body.lstrip().startswith('<form id="launch-form"') and "<html" not in body
    assert 'role="alert"' in body


def test_a_new_judge_is_saved_as_an_mlflow_scorer(
    auth_on, bob, dataset, agents, experiment, queued
):
    judge_agent = Agent.objects.create(
        name="judge", kind="openai", config={"url": "http://127.0.0.1:9/v1"}
    )
    data = form(
        dataset,
        experiment,
        agents[0],
        judge_name="helpful",
        judge_agent=judge_agent.pk,
        judge_instructions="Is {{ outputs }} a good answer to {{ inputs }}?",
    )
    assert signed_in(bob).post("/evaluations/new/", data).status_code == 302
    saved = ScorerVersion.objects.get(scorer__name="helpful", scorer__experiment=experiment)
    assert saved.version == 1
    job = EvaluationJob.objects.get()
    assert [s["name"] for s in job.scorers] == ["exact_match", "helpful"]
    # Chosen again as a saved judge: its latest version, no new one.
    again = form(dataset, experiment, agents[0], saved_judges="helpful")
    again.pop("use_exact_match")
    assert signed_in(bob).post("/evaluations/new/", again).status_code == 302
    assert ScorerVersion.objects.filter(scorer__name="helpful").count() == 1


def test_the_job_page_shows_progress_and_stops_polling_when_ended(
    auth_on, bob, charlie, dataset, agents, experiment, queued
):
    job = runner.launch(
        dataset=dataset,
        experiment=experiment,
        agents=[runner.AgentChoice(agents[0])],
        scorer_specs=[{"kind": "exact_match", "name": "exact", "config": {}}],
        name=XSS,
    )
    page = signed_in(charlie).get(f"/evaluations/jobs/{job.pk}/")
    assert page.status_code == 200
    assert b'data-job-state="QUEUED"' in page.content and b"hx-trigger" in page.content
    assert b"data-cancel" not in page.content  # a viewer cannot cancel
    assert XSS.encode() not in page.content
    JobRow.objects.filter(agent__job=job).update(state=RowState.DONE, scores={"exact": True})
    runner.finish_if_done(job.pk)
    fragment = signed_in(charlie).get(f"/evaluations/jobs/{job.pk}/", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 286
    assert b'data-job-state="FINISHED"' in fragment.content
    assert b"<html" not in fragment.content


def test_cancel_from_the_page(auth_on, bob, charlie, dataset, agents, experiment, queued):
    job = runner.launch(
        dataset=dataset,
        experiment=experiment,
        agents=[runner.AgentChoice(agents[0])],
        scorer_specs=[{"kind": "exact_match", "name": "exact", "config": {}}],
        name="nightly",
    )
    assert signed_in(charlie).post(f"/evaluations/jobs/{job.pk}/cancel").status_code == 403
    response = signed_in(bob).post(f"/evaluations/jobs/{job.pk}/cancel")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert not JobRow.objects.filter(agent__job=job).exclude(state=RowState.CANCELLED).exists()


def test_a_job_of_an_unreadable_experiment_is_not_found(
    auth_on, bob, dataset, agents, experiment, queued
):
    job = runner.launch(
        dataset=dataset,
        experiment=experiment,
        agents=[runner.AgentChoice(agents[0])],
        scorer_specs=[{"kind": "exact_match", "name": "exact", "config": {}}],
        name="nightly",
    )
    ExperimentGrant.objects.create(experiment=experiment, user=bob, level=Level.NONE)
    assert signed_in(bob).get(f"/evaluations/jobs/{job.pk}/").status_code == 404


def test_other_experiments_are_not_offered(auth_on, bob, dataset, agents, experiment):
    hidden = Experiment.objects.create(name="secret")
    ExperimentGrant.objects.create(experiment=hidden, user=bob, level=Level.NONE)
    page = signed_in(bob).get("/evaluations/new/")
    offered = list(page.context["form"].fields["experiment"].queryset)
    assert experiment in offered and hidden not in offered
