"""The model registry through the real mlflow client: registering a logged agent, a second
version, aliases, `models:/` URIs loaded and called, searches, tags and deletes."""

from __future__ import annotations

import json

from tracking.models import LoggedModel, ModelVersion, RegisteredModel

AGENT = """
import mlflow
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class EchoAgent(PythonModel):
    def load_context(self, context):
        self.prefix = context.model_config.get("prefix", "")

    def predict(self, context, model_input, params=None):
        return [f"{self.prefix}{question}" for question in model_input["question"]]


set_model(EchoAgent())
"""


def test_a_logged_agent_is_registered_aliased_loaded_and_searched(run_mlflow):
    (found,) = run_mlflow(
        """
        import pandas as pd
        from mlflow import MlflowClient

        mlflow.set_experiment("registry")
        client = MlflowClient()
        with mlflow.start_run() as run:
            first = mlflow.pyfunc.log_model(
                name="agent", python_model="agent.py", model_config={"prefix": "v1: "},
                pip_requirements=["mlflow"], registered_model_name="support-agent",
            )
        second = mlflow.pyfunc.log_model(
            name="agent", python_model="agent.py", model_config={"prefix": "v2: "},
            pip_requirements=["mlflow"],
        )
        registered = mlflow.register_model(f"models:/{second.model_id}", "support-agent")
        client.set_registered_model_alias("support-agent", "champion", registered.version)
        client.set_registered_model_tag("support-agent", "team", "cs")
        client.set_model_version_tag("support-agent", "1", "validated", "yes")
        client.set_model_version_tag("support-agent", "1", "scratch", "x")
        client.delete_model_version_tag("support-agent", "1", "scratch")
        client.update_registered_model("support-agent", description="answers tickets")

        question = pd.DataFrame({"question": ["hello"]})
        by_alias = mlflow.pyfunc.load_model("models:/support-agent@champion").predict(question)
        by_number = mlflow.pyfunc.load_model("models:/support-agent/1").predict(question)
        champion = client.get_model_version_by_alias("support-agent", "champion")
        model = client.get_registered_model("support-agent")
        v1 = client.get_model_version("support-agent", "1")

        client.create_registered_model("scratch-model")
        client.create_model_version("scratch-model", f"models:/{first.model_id}",
                                    model_id=first.model_id)
        client.create_model_version("scratch-model", f"models:/{first.model_id}",
                                    model_id=first.model_id)
        client.delete_model_version("scratch-model", "1")
        result({
            "first_version": first.registered_model_version,
            "second_version": registered.version,
            "answers": [list(by_alias), list(by_number)],
            "champion": [champion.version, champion.source, list(champion.aliases)],
            "aliases": model.aliases,
            "tags": model.tags,
            "description": model.description,
            "v1": [v1.run_id == run.info.run_id, v1.source == f"models:/{first.model_id}",
                   v1.tags, v1.status, v1.current_stage],
            "models": [m.name for m in mlflow.search_registered_models()],
            "models_like": [m.name for m in mlflow.search_registered_models(
                filter_string="name LIKE 'support%'")],
            "models_ordered": [m.name for m in client.search_registered_models(
                order_by=["name DESC"], max_results=1)],
            "latest": [v.version for v in client.get_latest_versions("support-agent")],
            "versions": [v.version for v in mlflow.search_model_versions(
                filter_string="name = 'support-agent'")],
            "by_run": [[v.name, v.version] for v in mlflow.search_model_versions(
                filter_string=f"run_id = '{run.info.run_id}'")],
            "scratch": [v.version for v in client.search_model_versions("name='scratch-model'")],
            "first_model_id": first.model_id,
            "second_model_id": second.model_id,
        })
        client.delete_registered_model("scratch-model")
        """,
        files={"agent.py": AGENT},
    )

    assert found["first_version"] == "1"
    assert found["second_version"] == "2"
    assert found["answers"] == [["v2: hello"], ["v1: hello"]]
    assert found["champion"] == ["2", f"models:/{found['second_model_id']}", ["champion"]]
    assert found["aliases"] == {"champion": "2"}
    assert found["tags"] == {"team": "cs"}
    assert found["description"] == "answers tickets"
    assert found["v1"] == [True, True, {"validated": "yes"}, "READY", "None"]
    assert found["models"] == ["scratch-model", "support-agent"]
    assert found["models_like"] == ["support-agent"]
    assert found["models_ordered"] == ["support-agent"]
    assert found["latest"] == ["2"]
    assert found["versions"] == ["2", "1"]
    # scratch-model v2 was made from the first logged model, so it has that model's run.
    assert found["by_run"] == [["scratch-model", "2"], ["support-agent", "1"]]
    assert found["scratch"] == ["2"]

    registered = RegisteredModel.objects.get()
    assert registered.name == "support-agent"
    assert [v.version for v in registered.versions.order_by("version")] == [1, 2]
    assert ModelVersion.objects.count() == 2
    # The logged models know their versions, as on MLflow's server; register_model then
    # appends its own entry (the version as a string) from the client side.
    first = LoggedModel.objects.get(model_id=found["first_model_id"])
    assert json.loads(first.tags["mlflow.modelVersions"]) == [
        {"name": "support-agent", "version": 1},
        {"name": "support-agent", "version": "1"},
        {"name": "scratch-model", "version": 1},
        {"name": "scratch-model", "version": 2},
    ]
