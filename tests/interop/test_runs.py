"""Experiments and runs through the real mlflow client."""

from __future__ import annotations

import math
from pathlib import Path

from tracking.models import Experiment, Metric, Run


def test_a_run_logs_params_metrics_tags_and_an_artifact(run_mlflow, artifact_root: Path):
    (found,) = run_mlflow(
        """
        mlflow.set_experiment("demo")
        with mlflow.start_run(run_name="a-run") as run:
            mlflow.log_param("alpha", "0.5")
            mlflow.log_metric("loss", 0.25, step=0)
            mlflow.log_metric("loss", 0.2, step=1)
            mlflow.log_params({"p1": "1", "p2": "two"})
            mlflow.log_metrics({"m1": 1.0, "m2": 2.0}, step=3)
            mlflow.set_tags({"t1": "x"})
            mlflow.log_dict({"a": 1}, "cfg/config.json")
        client = mlflow.MlflowClient()
        fetched = mlflow.get_run(run.info.run_id)
        result({
            "run_id": run.info.run_id,
            "history": [
                [m.step, m.value] for m in client.get_metric_history(run.info.run_id, "loss")
            ],
            "metrics": fetched.data.metrics,
            "params": fetched.data.params,
            "tags": {k: v for k, v in fetched.data.tags.items() if not k.startswith("mlflow.s")},
            "status": fetched.info.status,
            "artifact": mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/cfg/config.json"),
            "artifacts": [f.path for f in client.list_artifacts(run.info.run_id, "cfg")],
            "by_param": [r.info.run_id for r in mlflow.search_runs(
                filter_string="params.p1 = '1'", output_format="list")],
            "by_metric": len(mlflow.search_runs(filter_string="metrics.loss > 0.5",
                                                output_format="list")),
            "finished": len(mlflow.search_runs(filter_string="attributes.status = 'FINISHED'",
                                               output_format="list")),
            "experiments": [e.name for e in mlflow.search_experiments()],
        })
        """
    )

    run = Run.objects.get(run_id=found["run_id"])
    assert run.experiment == Experiment.objects.get(name="demo")
    assert run.name == "a-run"
    assert run.status == "FINISHED" and run.end_time is not None
    assert run.params == {"alpha": "0.5", "p1": "1", "p2": "two"}
    assert run.tags["t1"] == "x"
    assert Metric.objects.filter(run=run, key="loss").count() == 2
    assert found["history"] == [[0, 0.25], [1, 0.2]]
    assert found["metrics"] == {"loss": 0.2, "m1": 1.0, "m2": 2.0}
    assert found["params"] == {"alpha": "0.5", "p1": "1", "p2": "two"}
    assert found["tags"] == {
        "mlflow.runName": "a-run",
        "t1": "x",
        "mlflow.user": found["tags"]["mlflow.user"],
    }
    assert found["status"] == "FINISHED"
    assert found["artifact"] == {"a": 1}
    assert found["artifacts"] == ["cfg/config.json"]
    stored = artifact_root / str(run.experiment_id) / run.run_id / "artifacts/cfg/config.json"
    assert stored.exists()
    assert found["by_param"] == [run.run_id]
    assert found["by_metric"] == 0
    assert found["finished"] == 1
    assert found["experiments"] == ["demo", "Default"]


def test_an_existing_experiment_is_found_and_a_duplicate_create_refused(run_mlflow):
    (found,) = run_mlflow(
        """
        from mlflow.exceptions import MlflowException

        first = mlflow.set_experiment("twice")
        second = mlflow.set_experiment("twice")
        try:
            mlflow.MlflowClient().create_experiment("twice")
        except MlflowException as error:
            code = error.error_code
        result({"same": first.experiment_id == second.experiment_id, "code": code})
        """
    )

    assert found == {"same": True, "code": "RESOURCE_ALREADY_EXISTS"}
    assert Experiment.objects.filter(name="twice").count() == 1


def test_nan_and_infinite_metrics_are_kept_and_read_back(run_mlflow):
    # A diverged loss is logged as NaN; MLflow's own server keeps it, so must this one.
    (found,) = run_mlflow(
        """
        import math
        with mlflow.start_run() as run:
            mlflow.log_metric("loss", 0.5, step=0)
            mlflow.log_metric("loss", float("nan"), step=1)
            mlflow.log_metrics({"grad_norm": float("inf"), "floor": float("-inf")}, step=1)
        client = mlflow.MlflowClient()
        fetched = mlflow.get_run(run.info.run_id)
        result({
            "history": [
                [m.step, "nan" if math.isnan(m.value) else m.value]
                for m in client.get_metric_history(run.info.run_id, "loss")
            ],
            "latest": {k: str(v) for k, v in fetched.data.metrics.items()},
            "above": len(mlflow.search_runs(filter_string="metrics.loss > 0.1",
                                            output_format="list")),
        })
        """
    )

    assert found["history"] == [[0, 0.5], [1, "nan"]]
    assert found["latest"] == {"loss": "nan", "grad_norm": "inf", "floor": "-inf"}
    assert found["above"] == 0  # NaN is not greater than anything
    assert math.isnan(Metric.objects.filter(key="loss", step=1).get().value)
