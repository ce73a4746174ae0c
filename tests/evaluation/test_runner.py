"""Evaluations launched from the browser, through real workers: two agents (a real local HTTP
server and the built-in echo agent) over a dataset, code scorers, the MLflow-shaped runs they
leave, cancel, the rate limit, and the reaper that takes back a dead worker's rows."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from evaluation import runner
from evaluation.models import EvaluationJob, JobRow, JobState, Lease, RowState
from playground.models import Agent
from tests.playground.conftest import wait_for
from tracking.evaluations import GENAI_EVALUATE, RUN_TYPE_TAG, SOURCE_RUN_KEY
from tracking.models import (
    Assessment,
    AssessmentKind,
    EvaluationDataset,
    Experiment,
    Metric,
    RunStatus,
)

FEEDBACK, EXPECTATION = AssessmentKind.FEEDBACK, AssessmentKind.EXPECTATION
ROWS = 20
SCORERS = [
    {"kind": "exact_match", "name": "exact", "config": {}},
    {"kind": "contains", "name": "says_q", "config": {"text": "q"}},
    {"kind": "latency", "name": "fast", "config": {"max_ms": 5000}},
]


@pytest.fixture
def experiment(db) -> Experiment:
    return Experiment.objects.create(name="evals")


@pytest.fixture
def dataset(experiment) -> EvaluationDataset:
    made = EvaluationDataset.create(name="questions", tags={}, experiment_ids=[experiment.pk])
    made.merge_records(
        [
            {
                "inputs": {"question": f"q{i}", **({"custom_inputs": {"n": i}} if i % 2 else {})},
                "expectations": {"expected_response": f"Echo: q{i}"},
            }
            for i in range(ROWS)
        ]
    )
    return made


@pytest.fixture
def evaluation_worker(worker_app, monkeypatch):
    monkeypatch.setattr(runner, "default_app", worker_app)
    return worker_app


def launch(dataset, experiment, *agents, scorers=SCORERS, **kwargs) -> EvaluationJob:
    return runner.launch(
        dataset=dataset,
        experiment=experiment,
        agents=[runner.AgentChoice(a) for a in agents],
        scorer_specs=scorers,
        name="nightly",
        **kwargs,
    )


def wait_ended(job: EvaluationJob, timeout: float = 30.0) -> EvaluationJob:
    wait_for(lambda: EvaluationJob.objects.get(pk=job.pk).ended, timeout, "the job to end")
    return EvaluationJob.objects.get(pk=job.pk)


def test_launch_makes_one_mlflow_evaluation_run_per_agent(
    dataset, experiment, http_agent, echo_agent
):
    agent = http_agent("plain")
    job = launch(dataset, experiment, agent, echo_agent)
    arms = list(job.agents.select_related("run"))
    assert [a.agent_name for a in arms] == [agent.name, "echo"]
    assert JobRow.objects.filter(agent__job=job).count() == 2 * ROWS == job.total_rows
    for arm in arms:
        run = arm.run
        assert run.tags[RUN_TYPE_TAG] == GENAI_EVALUATE
        assert run.status == RunStatus.RUNNING
        (dataset_input,) = run.inputs["dataset_inputs"]
        assert dataset_input["dataset"]["name"] == "questions"
        assert run.dataset_rows.get().dataset == dataset


def test_refuses_what_cannot_run(dataset, experiment, echo_agent):
    with pytest.raises(runner.LaunchError, match="Unknown scorer kind"):
        launch(dataset, experiment, echo_agent, scorers=[{"kind": "nope", "name": "x"}])
    with pytest.raises(runner.LaunchError, match="between 1 and 4"):
        launch(dataset, experiment)
    empty = EvaluationDataset.create(name="empty", tags={}, experiment_ids=[experiment.pk])
    with pytest.raises(runner.LaunchError, match="no records"):
        launch(empty, experiment, echo_agent)
    assert not EvaluationJob.objects.exists()


def test_two_agents_are_evaluated_through_the_worker(
    dataset, experiment, http_agent, echo_agent, evaluation_worker
):
    agent = http_agent("chat-agent", kind="mlflow-serving")
    job = wait_ended(launch(dataset, experiment, agent, echo_agent))
    assert job.state == JobState.FINISHED, job.error
    http_arm, echo_arm = job.agents.select_related("run")
    # The HTTP agent echoes "Echo: q<i>" (exact), the built-in one "You said: q<i>".
    assert http_arm.run.scores == {
        "exact": {"mean": 1.0},
        "says_q": {"mean": 1.0},
        "fast": {"mean": 1.0},
    }
    assert echo_arm.run.scores["exact"] == {"mean": 0.0}
    for arm in (http_arm, echo_arm):
        run = arm.run
        run.refresh_from_db()
        assert run.status == RunStatus.FINISHED and run.end_time is not None
        assert run.linked_traces.count() == ROWS
        rows = run.evaluation_rows()
        assert len(rows) == ROWS
        assert set(rows[0].feedback) == {"exact", "says_q", "fast"}
        assert set(rows[0].expectations) == {"expected_response"}
        metric = Metric.objects.get(run=run, key="exact/mean")
        assert metric.dataset_name == "questions"
    trace_rows = JobRow.objects.filter(agent=http_arm, index=1).get()
    assert trace_rows.state == RowState.DONE and trace_rows.trace_id
    feedback = Assessment.objects.filter(trace__trace_id=trace_rows.trace_id, kind=FEEDBACK)
    assert {a.metadata[SOURCE_RUN_KEY] for a in feedback} == {http_arm.run.run_id}


def test_custom_inputs_reach_the_agent(
    dataset, experiment, http_agent, agent_server, evaluation_worker
):
    agent = http_agent("chat-agent", kind="mlflow-serving")
    wait_ended(launch(dataset, experiment, agent))
    bodies = [r["body"] for r in agent_server.requests if "/chat-agent/" in r["path"]]
    sent = sorted(b.get("custom_inputs", {}).get("n", -1) for b in bodies)
    assert sent == sorted([i if i % 2 else -1 for i in range(ROWS)])


def test_cancel_stops_the_job_and_keeps_what_finished(
    dataset, experiment, http_agent, evaluation_worker
):
    agent = http_agent("fixed-100ms", kind="openai", stream=False)
    # One call at a time: 2 s of answers, so the cancel lands while rows are still to come.
    job = launch(dataset, experiment, agent, chunk_size=5, concurrency=1)
    wait_for(
        lambda: JobRow.objects.filter(agent__job=job, state=RowState.DONE).count() >= 2,
        10,
        "two rows to finish",
    )
    runner.cancel(job)
    job = wait_ended(job)
    assert job.state == JobState.CANCELLED
    states = dict(JobRow.objects.filter(agent__job=job).progress()[job.agents.get().pk])
    assert states.get(RowState.DONE, 0) >= 2
    assert states.get(RowState.CANCELLED, 0) > 0
    assert not states.get(RowState.PENDING) and not states.get(RowState.RUNNING)
    run = job.agents.get().run
    run.refresh_from_db()
    assert run.status == RunStatus.KILLED
    assert Metric.objects.filter(run=run, key="exact/mean").exists()


def test_the_reaper_takes_back_a_dead_workers_rows(dataset, experiment, echo_agent, monkeypatch):
    started = []
    monkeypatch.setattr(runner, "start_workers", lambda job, count=None: started.append(job.pk))
    job = launch(dataset, experiment, echo_agent, chunk_size=5)
    job.created_at = timezone.now() - timedelta(minutes=5)
    job.save(update_fields=["created_at"])
    dead = Lease.objects.create(
        job=job, worker="gone", beat_at=timezone.now() - timedelta(minutes=1)
    )
    claimed = runner._claim(job, dead)
    assert len(claimed) == 5
    JobRow.objects.filter(pk=claimed[0].pk).update(attempts=runner.MAX_ATTEMPTS)
    assert runner.reap() == 5
    assert not Lease.objects.filter(pk=dead.pk).exists()
    rows = JobRow.objects.filter(pk__in=[r.pk for r in claimed])
    assert rows.filter(state=RowState.PENDING).count() == 4
    lost = rows.get(state=RowState.FAILED)
    assert "lost 3 times" in lost.error
    assert started == [job.pk]  # nobody is on it: workers are started again


def test_a_job_whose_rows_all_failed_fails_with_the_reason(
    dataset, experiment, http_agent, evaluation_worker
):
    job = wait_ended(launch(dataset, experiment, http_agent("fail")))
    assert job.state == JobState.FAILED
    assert "Every row failed" in job.error
    run = job.agents.get().run
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_the_rate_limit_spaces_calls_across_callers():
    key = f"test-rate-{time.monotonic_ns()}"
    started = time.monotonic()
    for _ in range(9):
        runner._wait_turn(key, 4)
    # 4 calls per one-second window: the ninth waits for the third window.
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize(
    ("inputs", "messages", "custom"),
    [
        ({"question": "hi"}, [{"role": "user", "content": "hi"}], None),
        (
            {"messages": [{"role": "user", "content": "a"}], "custom_inputs": {"k": 1}},
            [{"role": "user", "content": "a"}],
            {"k": 1},
        ),
        ({"a": 1, "b": "x"}, [{"role": "user", "content": '{"a": 1, "b": "x"}'}], None),
        ("plain", [{"role": "user", "content": "plain"}], None),
    ],
)
def test_a_record_becomes_a_chat_request(inputs, messages, custom):
    request = runner.request_of(inputs)
    assert request.messages == messages
    assert request.custom_inputs == custom


def test_a_logged_model_agent_following_an_alias_is_pinned_at_launch(dataset, experiment):
    from tracking.models import LoggedModel, RegisteredModel

    registered = RegisteredModel.objects.register("support-agent", description="", tags={})
    versions = []
    for _ in range(2):
        model = LoggedModel.objects.create(experiment=experiment, name="support-agent")
        versions.append(
            registered.add_version(
                source=f"models:/{model.model_id}",
                run_id="",
                model_id=model.model_id,
                description="",
                tags={},
                logged_model=model,
            )
        )
    registered.set_alias("champion", versions[1].version)
    agent = Agent.objects.create(
        name="champion", kind="logged-model", config={"model_uri": "models:/support-agent@champion"}
    )
    job = launch(dataset, experiment, agent)
    arm = job.agents.get()
    assert arm.model_id == versions[1].model_id
    assert arm.model_uri == f"models:/support-agent/{versions[1].version}"
    assert arm.run.model_rows.get().model_id == versions[1].model_id
    registered.set_alias("champion", versions[0].version)  # moved mid-run: the job keeps v2
    assert job.agents.get().model_uri == arm.model_uri
    agent.config = {"model_uri": "models:/support-agent@nobody"}
    agent.save()
    with pytest.raises(runner.LaunchError, match="names no version"):
        launch(dataset, experiment, agent)


def test_the_job_page_reads_a_constant_number_of_queries(
    client, dataset, experiment, echo_agent, django_assert_max_num_queries
):
    job = launch(dataset, experiment, echo_agent)
    JobRow.objects.filter(agent__job=job).update(state=RowState.DONE, scores={"exact": True})
    with django_assert_max_num_queries(15):
        assert client.get(f"/evaluations/jobs/{job.pk}/").status_code == 200


def test_a_worker_error_is_retried_then_fails_the_rows_with_it(
    dataset, experiment, echo_agent, monkeypatch
):
    monkeypatch.setattr(runner, "start_workers", lambda job, count=None: None)
    job = launch(dataset, experiment, echo_agent, chunk_size=ROWS)

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(runner.ingest, "store", broken)
    for _ in range(runner.MAX_ATTEMPTS):
        assert runner.drain(job.pk) == 0
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "the disk is full" in job.error
    rows = JobRow.objects.filter(agent__job=job)
    assert rows.filter(state=RowState.FAILED).count() == ROWS
    assert "Tried 3 times" in rows.first().error
    run = job.agents.get().run
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_scorers_that_cannot_run_any_more_fail_the_job(
    dataset, experiment, echo_agent, monkeypatch
):
    monkeypatch.setattr(runner, "start_workers", lambda job, count=None: None)
    judge_agent = Agent.objects.create(
        name="judge", kind="openai", config={"url": "http://127.0.0.1:9/v1"}
    )
    judge = {
        "kind": "judge",
        "name": "ok",
        "config": {"instructions": "{{ outputs }}", "agent": "judge"},
    }
    job = launch(dataset, experiment, echo_agent, scorers=[judge])
    judge_agent.delete()
    assert runner.drain(job.pk) == 0
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "The scorers cannot run" in job.error


def test_a_cancel_holds_when_a_dead_workers_rows_are_reaped(
    dataset, experiment, echo_agent, monkeypatch
):
    started = []
    monkeypatch.setattr(runner, "start_workers", lambda job, count=None: started.append(job.pk))
    job = launch(dataset, experiment, echo_agent, chunk_size=5)
    dead = Lease.objects.create(
        job=job, worker="gone", beat_at=timezone.now() - timedelta(minutes=1)
    )
    runner._claim(job, dead)
    runner.cancel(job)
    job.refresh_from_db()
    assert not job.ended  # five rows are still held by the dead worker
    runner.reap()
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert set(JobRow.objects.filter(agent__job=job).values_list("state", flat=True)) == {
        RowState.CANCELLED
    }
    assert started == []  # nobody is sent to answer a cancelled job


def test_an_answer_with_a_nul_is_stored_and_fails_nothing_beside_it(
    dataset, experiment, http_agent, monkeypatch
):
    monkeypatch.setattr(runner, "start_workers", lambda job, count=None: None)
    job = launch(dataset, experiment, http_agent("nul", stream=False), chunk_size=ROWS)
    assert runner.drain(job.pk) == ROWS
    job.refresh_from_db()
    assert job.state == JobState.FINISHED, job.error
    row = JobRow.objects.filter(agent__job=job).first()
    assert row.state == RowState.DONE and row.output == "Echo: nul"


def test_rows_never_started_keep_their_attempts(dataset, experiment, echo_agent, monkeypatch):
    monkeypatch.setattr(runner, "start_workers", lambda job, count=None: None)
    job = launch(dataset, experiment, echo_agent, chunk_size=5)
    lease = Lease.objects.create(job=job, worker="me")
    claimed = runner._claim(job, lease)
    runner._release(lease, cancelled=False, started={claimed[0].pk})
    attempts = dict(
        JobRow.objects.filter(pk__in=[r.pk for r in claimed]).values_list("pk", "attempts")
    )
    assert attempts[claimed[0].pk] == 1
    assert {attempts[r.pk] for r in claimed[1:]} == {0}


def test_the_reaper_gives_queued_workers_time_to_start(
    dataset, experiment, echo_agent, monkeypatch
):
    started = []
    monkeypatch.setattr(runner.default_app.tasks[runner.DRAIN_TASK], "apply_async",
                        lambda *a, **k: started.append(a))  # fmt: skip
    job = launch(dataset, experiment, echo_agent)
    runner.start_workers(job, count=1)
    EvaluationJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    started.clear()
    runner.reap()
    assert started == []  # its task may be waiting in a busy broker
    EvaluationJob.objects.filter(pk=job.pk).update(
        workers_queued_at=timezone.now() - timedelta(seconds=runner.REQUEUE_AFTER_S + 1)
    )
    runner.reap()
    assert started  # long enough: the message is taken as lost
