"""Trace links and tags through the real mlflow client: `link_traces_to_run` (as
`mlflow.genai.evaluate` calls it) then `search_traces(run_id=...)`, and trace tags set and
deleted by the v3 client."""

from __future__ import annotations

SCRIPT = """
    from mlflow import MlflowClient

    mlflow.set_experiment("links")

    @mlflow.trace
    def agent(question):
        return question.upper()

    agent("a")
    agent("b")
    mlflow.flush_trace_async_logging()
    trace_ids = [t.info.trace_id for t in mlflow.search_traces(return_type="list")]
    client = MlflowClient()
    with mlflow.start_run() as run:
        pass
    client.link_traces_to_run(trace_ids[:1], run.info.run_id)
    found = mlflow.search_traces(run_id=run.info.run_id, return_type="list")
    result([t.info.trace_id for t in found] == trace_ids[:1])
    client.set_trace_tag(trace_ids[1], "reviewed", "yes")
    tagged = client.get_trace(trace_ids[1]).info.tags.get("reviewed")
    client.delete_trace_tag(trace_ids[1], "reviewed")
    result([tagged, client.get_trace(trace_ids[1]).info.tags.get("reviewed")])
"""


def test_linked_traces_and_tags_through_the_client(run_mlflow):
    assert run_mlflow(SCRIPT) == [True, ["yes", None]]
