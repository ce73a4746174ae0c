"""Two versions of an agent logged by the real mlflow client (models-from-code with different
`model_config`s, traces made under `set_active_model`), then compared on the compare page."""

from __future__ import annotations

from tracking.models import LoggedModel, Trace

AGENT = """
import mlflow
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Agent(PythonModel):
    def predict(self, context, model_input, params=None):
        return ["ok"]


set_model(Agent())
"""

CONFIGS = [
    {"llm": {"endpoint": "gpt-4o-mini", "temperature": 0.2}, "tools": ["lookup_order"]},
    {
        "llm": {"endpoint": "gpt-4o", "temperature": 0.2, "max_tokens": 768},
        "tools": ["lookup_order", "refund_policy"],
    },
]


def test_compare_page_shows_two_logged_versions_and_their_trace_statistics(run_mlflow, client):
    (versions,) = run_mlflow(
        f"""
        import time

        mlflow.set_experiment("compare")
        REPO = "https://github.com/acme/support-agent"

        @mlflow.trace
        def answer(question, delay):
            time.sleep(delay)
            if question == "fail":
                raise ValueError("the tool timed out")
            return question.upper()

        ids = []
        for number, (config, delay, commit) in enumerate(
            [({CONFIGS[0]!r}, 0.06, "a" * 40), ({CONFIGS[1]!r}, 0.005, "b" * 40)]
        ):
            with mlflow.start_run() as run:
                info = mlflow.pyfunc.log_model(
                    name="support-agent", python_model="agent.py", model_config=config,
                    pip_requirements=["mlflow"],
                )
                # The fluent call also sends runs/log-inputs (the model as the run's input).
                mlflow.log_metric("accuracy", 0.7 + number / 10, model_id=info.model_id)
            mlflow.set_logged_model_tags(info.model_id, {{
                "mlflow.source.git.commit": commit,
                "mlflow.source.git.repoURL": REPO,
            }})
            mlflow.set_active_model(model_id=info.model_id)
            for question in ["hi", "where is my order", "refund", "fail" if number == 0 else "ok"]:
                try:
                    answer(question, delay)
                except ValueError:
                    pass
            ids.append(info.model_id)
        mlflow.flush_trace_async_logging()
        result(ids)
        """,
        files={"agent.py": AGENT},
    )
    old, new = versions
    assert LoggedModel.objects.get(model_id=old).model_config == CONFIGS[0]
    assert Trace.objects.filter(model_id=new).count() == 4

    response = client.get(f"/models/compare/?ids={new},{old}")

    assert response.status_code == 200
    assert [v.model_id for v in response.context["versions"]] == [old, new]
    sections = {s.title: {r.key: r for r in s.rows} for s in response.context["sections"]}
    config = sections["Config"]
    assert [c.text for c in config["llm.endpoint"].cells] == ["gpt-4o-mini", "gpt-4o"]
    assert config["llm.endpoint"].changed
    assert not config["llm.temperature"].changed
    assert [c.missing for c in config["llm.max_tokens"].cells] == [True, False]
    assert [c.missing for c in config["tools[1]"].cells] == [True, False]
    assert [c.best for c in sections["Metrics"]["accuracy"].cells] == [False, True]
    stats = sections["Trace statistics"]
    assert [c.text for c in stats["Traces"].cells] == ["4", "4"]
    assert [c.text for c in stats["Error rate"].cells] == ["25.0 %", "0.0 %"]
    assert [c.best for c in stats["Latency p50"].cells] == [False, True]  # v2 sleeps less
    html = response.content.decode()
    assert f"https://github.com/acme/support-agent/compare/{'a' * 40}...{'b' * 40}" in html
    assert html.count("<svg viewBox") == 2

    only_diff = client.get(f"/models/compare/?ids={old},{new}&diff=1")
    keys = {r.key for s in only_diff.context["sections"] for r in s.rows}
    assert "llm.endpoint" in keys and "llm.temperature" not in keys

    artifacts = client.get(f"/models/{new}/artifacts/", {"path": "MLmodel"})
    assert artifacts.status_code == 200
    assert "python_function" in artifacts.context["file"]["mlmodel"]["flavors"]


def test_compare_page_lines_up_the_answers_the_mlflow_client_traced(run_mlflow, client):
    (versions,) = run_mlflow(
        """
        mlflow.set_experiment("compare-answers")

        ids = []
        for number in (1, 2):
            model_id = mlflow.create_external_model(name="support-agent").model_id
            mlflow.set_active_model(model_id=model_id)

            @mlflow.trace(span_type="CHAT_MODEL")
            def answer(messages):
                question = messages[-1]["content"]
                return {"choices": [{"message": {
                    "role": "assistant", "content": f"v{number} says: {question.upper()}",
                }}]}

            for question in ["hi", "where is my order"]:
                answer([{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": question}])
            ids.append(model_id)
        mlflow.flush_trace_async_logging()
        result(ids)
        """
    )
    old, new = versions

    response = client.get(f"/models/compare/answers/?ids={old},{new}")

    assert response.status_code == 200
    rows = response.context["answer_rows"]
    assert [row.request for row in rows] == ["where is my order", "hi"]
    assert [a.text for a in rows[0].answers] == [
        "v1 says: WHERE IS MY ORDER",
        "v2 says: WHERE IS MY ORDER",
    ]
    assert all(row.changed for row in rows)
