"""Version history by app, through the real mlflow client: the naming patterns of the seed
documents each show as one history on /models/, and the trace query finds a registered
model's traces by its name and alias."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tracking.models import LoggedModel, Trace

# Seed 002: each commit's agent is its own logged model, named for the commit.
COMMIT_NAMED_VERSION = """
import subprocess

commit = subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
mlflow.set_experiment("customer-support")
mlflow.set_active_model(name=f"customer_support_agent-{commit[:8]}")


@mlflow.trace
def agent(question):
    return f"answer from {commit[:8]}"


agent("where is my order?")
mlflow.flush_trace_async_logging()
result({"commit": commit, "model_id": mlflow.get_active_model_id()})
"""

AGENT = """
import mlflow
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Agent(PythonModel):
    def predict(self, context, model_input, params=None):
        return ["ok"]


set_model(Agent())
"""


def _commit(repo: Path, message: str) -> None:
    (repo / "agent_version.txt").write_text(message)
    git = ["git", "-c", "user.name=alice", "-c", "user.email=alice@example.com"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True, capture_output=True)
    subprocess.run([*git, "commit", "-qm", message], cwd=repo, check=True, capture_output=True)


def test_versions_named_for_their_commit_are_one_history_of_their_app(
    run_mlflow, client, tmp_path: Path
):
    repo = tmp_path / "client"  # run_mlflow's working directory: the agent's git checkout
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "script.py").write_text("")
    _commit(repo, "first prompt")
    (first,) = run_mlflow(COMMIT_NAMED_VERSION)
    _commit(repo, "second prompt")
    (second,) = run_mlflow(COMMIT_NAMED_VERSION)

    response = client.get("/models/")

    assert first["commit"] != second["commit"]
    assert response.context["by"] == "experiment"
    (history,) = response.context["groups"]
    assert history.name == "customer-support"
    assert [v.model_id for v in history.versions] == [second["model_id"], first["model_id"]]
    assert [v.name for v in history.versions] == [
        f"customer_support_agent-{second['commit'][:8]}",
        f"customer_support_agent-{first['commit'][:8]}",
    ]
    html = response.content.decode()
    # The commit of each version, from the git tag the client records.
    for found in (first, second):
        assert LoggedModel.objects.get(model_id=found["model_id"]).git_commit == found["commit"]
        assert f">{found['commit'][:7]}<" in html
    assert [v.counts.count for v in history.versions] == [1, 1]


def test_versions_logged_as_agent_are_one_history_of_their_registered_model(run_mlflow, client):
    (found,) = run_mlflow(
        """
        from mlflow import MlflowClient

        mlflow.set_experiment("support-chat")
        versions = []
        for _ in range(2):
            logged = mlflow.pyfunc.log_model(
                name="agent", python_model="agent.py", pip_requirements=["mlflow"],
                registered_model_name="support_chat_agent",
            )
            versions.append(logged.model_id)
        MlflowClient().set_registered_model_alias("support_chat_agent", "champion", 2)
        MlflowClient().set_registered_model_alias("support_chat_agent", "baseline", 1)

        @mlflow.trace
        def answer(question):
            return question.upper()

        for model_id, questions in zip(versions, (["old"], ["new", "newer"])):
            mlflow.set_active_model(model_id=model_id)
            for question in questions:
                answer(question)
        mlflow.flush_trace_async_logging()
        result({"versions": versions})
        """,
        files={"agent.py": AGENT},
    )
    first, second = found["versions"]

    page = client.get("/models/")
    champion = client.get("/traces/", {"q": "model = support_chat_agent@champion"})
    every = client.get("/traces/", {"q": "model = support_chat_agent"})
    baseline = client.get("/models/", {"q": "model = 'support_chat_agent@baseline'"})

    assert page.context["by"] == "registered"
    (history,) = page.context["groups"]
    assert history.name == "support_chat_agent"
    assert [(v.model_id, v.number_label, v.name) for v in history.versions] == [
        (second, "2", "agent"),
        (first, "1", "agent"),
    ]
    assert history.aliases == {"champion": 2, "baseline": 1}
    assert "@champion → v2" in page.content.decode()

    assert champion.status_code == 200
    assert {t.trace_id for t in champion.context["traces"]} == set(
        Trace.objects.filter(model_id=second).values_list("trace_id", flat=True)
    )
    assert len(champion.context["traces"]) == 2
    assert len(every.context["traces"]) == 3
    (group,) = baseline.context["groups"]
    assert [v.model_id for v in group.versions] == [first]
