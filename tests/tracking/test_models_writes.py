"""The model and QuerySet methods that write experiments, runs, logged models, the registry and
assessments (the MLflow API's views call them; tests/tracking/test_mlflow_*.py test those)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.db import IntegrityError

from tests.rows import make_model, make_trace
from tracking.models import (
    Assessment,
    AssessmentKind,
    Experiment,
    LifecycleStage,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    ModelVersion,
    ModelVersionStage,
    ParamChanged,
    RegisteredModel,
    Run,
    RunStatus,
)

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def start_run(experiment: Experiment, **tags: str) -> Run:
    return Run.objects.start(experiment, name="calm-owl-1", user_id="", start_time=T0, tags=tags)


# --- Experiments ------------------------------------------------------------------------------


def test_an_experiment_is_created_with_its_name_location_and_tags():
    experiment = Experiment.objects.create_named(
        "support", artifact_location="s3://b", tags={"a": "1"}
    )

    experiment.refresh_from_db()
    assert (experiment.name, experiment.artifact_location, experiment.tags) == (
        "support",
        "s3://b",
        {"a": "1"},
    )


def test_a_taken_experiment_name_is_an_integrity_error(experiment):
    with pytest.raises(IntegrityError):
        Experiment.objects.create_named(experiment.name)
    with pytest.raises(IntegrityError):
        Experiment.objects.create_named("other").rename(experiment.name)


def test_an_experiment_is_renamed_deleted_and_restored(experiment):
    experiment.rename("billing")
    experiment.soft_delete()
    deleted = Experiment.objects.get(pk=experiment.pk)
    experiment.restore()

    assert (deleted.name, deleted.lifecycle_stage) == ("billing", LifecycleStage.DELETED)
    assert Experiment.objects.get(pk=experiment.pk).lifecycle_stage == LifecycleStage.ACTIVE


def test_experiment_tags_merge_into_the_stored_ones(experiment):
    stale = Experiment.objects.get(pk=experiment.pk)
    experiment.set_tags({"a": "1"})

    stale.set_tags({"b": "2"})

    assert Experiment.objects.get(pk=experiment.pk).tags == {"a": "1", "b": "2"}


def test_deleting_an_experiment_tag_says_whether_it_was_there(experiment):
    experiment.set_tags({"a": "1", "b": "2"})

    assert experiment.delete_tag("a") is True
    assert experiment.delete_tag("a") is False
    assert Experiment.objects.get(pk=experiment.pk).tags == {"b": "2"}


# --- Runs -----------------------------------------------------------------------------------


def test_a_started_run_carries_its_name_in_the_run_name_tag(experiment):
    run = start_run(experiment, team="search")

    assert Run.objects.get(pk=run.pk).tags == {"team": "search", "mlflow.runName": "calm-owl-1"}


def test_update_info_changes_only_what_is_given(experiment):
    run = start_run(experiment)

    run.update_info(status=RunStatus.FINISHED, end_time=T0)
    run.update_info(name="bold-fox-2")

    run.refresh_from_db()
    assert (run.status, run.end_time, run.name) == (RunStatus.FINISHED, T0, "bold-fox-2")
    assert run.tags["mlflow.runName"] == "bold-fox-2"


def test_a_run_is_deleted_and_restored_softly(experiment):
    run = start_run(experiment)

    run.soft_delete()
    deleted = Run.objects.get(pk=run.pk).lifecycle_stage
    run.restore()

    assert deleted == LifecycleStage.DELETED
    assert Run.objects.get(pk=run.pk).lifecycle_stage == LifecycleStage.ACTIVE


def test_a_batch_logs_metrics_params_and_tags_and_a_run_name_tag_renames(experiment):
    run = start_run(experiment)
    metric = Metric(run=run, key="loss", value=0.5, timestamp_ms=1, step=0)

    run.log_batch([metric], {"alpha": "0.5"}, {"mlflow.runName": "keen-jay-3"})

    run.refresh_from_db()
    assert (run.params, run.name) == ({"alpha": "0.5"}, "keen-jay-3")
    assert list(Metric.objects.filter(run=run).values_list("key", "value")) == [("loss", 0.5)]


def test_a_param_logged_again_with_another_value_changes_nothing(experiment):
    run = start_run(experiment)
    run.log_batch(params={"alpha": "0.5"})
    metric = Metric(run=run, key="loss", value=0.5, timestamp_ms=1, step=0)

    run.log_batch(params={"alpha": "0.5"})  # the same value again is fine
    with pytest.raises(ParamChanged, match="Param with key='alpha' was already logged"):
        run.log_batch([metric], {"alpha": "0.7"}, {"team": "x"})

    run.refresh_from_db()
    assert (run.params, "team" in run.tags) == ({"alpha": "0.5"}, False)
    assert not Metric.objects.filter(run=run).exists()


def test_deleting_a_run_tag_says_whether_it_was_there(experiment):
    run = start_run(experiment, team="search")

    assert run.delete_tag("team") is True
    assert run.delete_tag("team") is False
    assert "team" not in Run.objects.get(pk=run.pk).tags


def test_run_inputs_are_added_once(experiment):
    run = start_run(experiment)
    dataset = {"dataset": {"name": "qa", "digest": "abc"}}

    run.log_inputs([dataset], ["m-1", "m-1"])
    run.log_inputs([dataset], ["m-1"])

    assert Run.objects.get(pk=run.pk).inputs == {
        "dataset_inputs": [dataset],
        "model_inputs": [{"model_id": "m-1"}],
    }


# --- Logged models --------------------------------------------------------------------------


def test_models_are_linked_to_a_source_run_only_if_they_have_none(experiment):
    first, second = start_run(experiment), start_run(experiment)
    mine = make_model(experiment, source_run=first)
    orphan = make_model(experiment)

    LoggedModel.objects.filter(pk__in=[mine.pk, orphan.pk]).link_source_run(second)

    mine.refresh_from_db()
    orphan.refresh_from_db()
    assert (mine.source_run, orphan.source_run) == (first, second)


def test_a_model_is_initialized_pending_and_finalized(experiment):
    model = LoggedModel.objects.initialize(
        experiment,
        model_id="m-" + "a" * 32,
        name="agent",
        model_type="agent",
        source_run=None,
        params={},
        tags={},
        artifact_location="mlflow-artifacts:/1/models/m-a/artifacts",
    )
    pending = LoggedModel.objects.get(pk=model.pk).status

    model.finalize(LoggedModelStatus.READY)

    assert pending == LoggedModelStatus.PENDING
    assert LoggedModel.objects.get(pk=model.pk).status == LoggedModelStatus.READY


def test_model_params_and_tags_merge_and_a_tag_is_deleted(experiment):
    model = make_model(experiment, params={"a": "1"}, tags={"x": "1"})

    LoggedModel.objects.get(pk=model.pk).log_params({"b": "2"})
    LoggedModel.objects.get(pk=model.pk).set_tags({"y": "2"})

    assert model.delete_tag("x") is True
    assert model.delete_tag("x") is False
    model.refresh_from_db()
    assert (model.params, model.tags) == ({"a": "1", "b": "2"}, {"y": "2"})


def test_a_registry_version_is_recorded_on_its_model_once(experiment):
    model = make_model(experiment, tags={"mlflow.modelVersions": "not json"})

    model.record_version("support", 1)
    model.record_version("support", 1)

    recorded = json.loads(LoggedModel.objects.get(pk=model.pk).tags["mlflow.modelVersions"])
    assert recorded == [{"name": "support", "version": 1}]


# --- The registry ---------------------------------------------------------------------------


def register(name: str = "support") -> RegisteredModel:
    return RegisteredModel.objects.register(name, description="", tags={})


def add_version(model: RegisteredModel, logged: LoggedModel | None = None) -> ModelVersion:
    return model.add_version(
        source="s3://b/model",
        run_id="",
        model_id=logged.model_id if logged else "",
        description="",
        tags={},
        logged_model=logged,
    )


def test_a_taken_registered_name_is_an_integrity_error():
    register()

    with pytest.raises(IntegrityError):
        register()
    with pytest.raises(IntegrityError):
        register("other").rename("support")


def test_versions_are_numbered_in_turn_and_recorded_on_their_logged_model(experiment):
    registered = register()
    logged = make_model(experiment)

    numbers = [add_version(registered).version, add_version(registered, logged).version]

    assert numbers == [1, 2]
    assert json.loads(LoggedModel.objects.get(pk=logged.pk).tags["mlflow.modelVersions"]) == [
        {"name": "support", "version": 2}
    ]


def test_a_version_of_a_deleted_registered_model_is_refused():
    registered = register()
    RegisteredModel.objects.filter(pk=registered.pk).delete()

    with pytest.raises(RegisteredModel.DoesNotExist):
        add_version(registered)


def test_registered_model_description_and_tags_change():
    registered = register()
    registered.set_tags({"a": "1", "b": "2"})

    registered.set_description("answers tickets")
    registered.delete_tag("a")
    registered.delete_tag("missing")  # no error, as in MLflow

    stored = RegisteredModel.objects.get(pk=registered.pk)
    assert (stored.description, stored.tags) == ("answers tickets", {"b": "2"})


def test_an_alias_points_only_at_an_existing_version():
    registered = register()
    add_version(registered)

    registered.set_alias("champion", 1)
    with pytest.raises(ModelVersion.DoesNotExist):
        registered.set_alias("challenger", 2)
    registered.delete_alias("nothing")

    assert RegisteredModel.objects.get(pk=registered.pk).aliases == {"champion": 1}
    registered.delete_alias("champion")
    assert RegisteredModel.objects.get(pk=registered.pk).aliases == {}


def test_deleting_a_version_takes_its_aliases_with_it():
    registered = register()
    add_version(registered), add_version(registered)
    registered.set_alias("champion", 1)
    registered.set_alias("challenger", 2)

    registered.delete_version(1)

    assert list(registered.versions.values_list("version", flat=True)) == [2]
    assert RegisteredModel.objects.get(pk=registered.pk).aliases == {"challenger": 2}


def test_version_description_and_tags_change():
    version = add_version(register())

    version.set_description("first")
    version.set_tags({"a": "1", "b": "2"})
    version.delete_tag("a")
    version.delete_tag("missing")

    stored = ModelVersion.objects.get(pk=version.pk)
    assert (stored.description, stored.tags) == ("first", {"b": "2"})


def test_a_transition_can_archive_the_versions_already_in_the_stage():
    registered = register()
    first, second, third = (add_version(registered) for _ in range(3))
    first.transition(ModelVersionStage.PRODUCTION)
    second.transition(ModelVersionStage.PRODUCTION)

    third.transition(ModelVersionStage.PRODUCTION, archive_existing=True)

    stages = dict(registered.versions.values_list("version", "current_stage"))
    assert stages == {1: "Archived", 2: "Archived", 3: "Production"}


# --- Assessments ----------------------------------------------------------------------------


def feedback(trace, **fields) -> Assessment:
    defaults = {"name": "correct", "kind": AssessmentKind.FEEDBACK, "value": True}
    return Assessment.objects.record(trace, **{**defaults, **fields})


def test_an_override_marks_the_one_it_replaces_not_valid(experiment):
    trace = make_trace(experiment)
    judged = feedback(trace)

    human = feedback(trace, value=False, overrides=judged.assessment_id)

    judged.refresh_from_db()
    assert (judged.valid, human.valid) == (False, True)


def test_retracting_an_override_makes_the_replaced_one_valid_again(experiment):
    trace = make_trace(experiment)
    judged = feedback(trace)
    human = feedback(trace, value=False, overrides=judged.assessment_id)

    human.retract()
    human.retract()  # already gone: nothing to do

    judged.refresh_from_db()
    assert judged.valid is True
    assert list(Assessment.objects.of_trace(trace)) == [judged]


def test_amending_sets_fields_merges_metadata_and_touches_the_update_time(experiment):
    assessment = feedback(make_trace(experiment), metadata={"a": "1"}, updated_at=T0)

    assessment.amend({"rationale": "checked"}, {"b": "2"})

    stored = Assessment.objects.get(pk=assessment.pk)
    assert (stored.rationale, stored.metadata) == ("checked", {"a": "1", "b": "2"})
    assert stored.updated_at > T0
