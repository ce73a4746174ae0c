"""Sessions through the real mlflow client: traces tagged with a session and a user by
`mlflow.update_current_trace(metadata=...)` are grouped on /sessions/ and read turn by turn;
the client reads the metadata back, and OTel-sourced sessions are copied into it."""

from __future__ import annotations

import pytest
from django.test import Client

from tracking.models import Trace, TraceSession

SCRIPT = """
experiment_id = mlflow.set_experiment("support").experiment_id

@mlflow.trace(span_type="AGENT")
def agent(messages, session, user):
    mlflow.update_current_trace(
        metadata={"mlflow.trace.session": session, "mlflow.trace.user": user}
    )
    with mlflow.start_span("lookup_order", span_type="TOOL") as tool:
        tool.set_inputs({"order": 42})
        tool.set_outputs("shipped")
    question = messages[-1]["content"]
    return {"choices": [{"message": {"role": "assistant", "content": "A: " + question}}]}

for n, question in enumerate(["Where is my order?", "When will it arrive?", "Thanks!"]):
    agent([{"role": "user", "content": question}], "conv-a", "alice")
agent([{"role": "user", "content": "Other chat"}], "conv-b", "bob")
mlflow.flush_trace_async_logging()
traces = mlflow.search_traces(experiment_ids=[experiment_id], return_type="list")
result({
    "experiment_id": experiment_id,
    "sessions": sorted(t.info.trace_metadata.get("mlflow.trace.session") for t in traces),
    "users": sorted(t.info.trace_metadata.get("mlflow.trace.user") for t in traces),
})
"""


@pytest.mark.django_db(transaction=True)
def test_client_sessions_are_grouped_on_the_sessions_pages(run_mlflow):
    (found,) = run_mlflow(SCRIPT)

    assert found["sessions"] == ["conv-a", "conv-a", "conv-a", "conv-b"]
    assert found["users"] == ["alice", "alice", "alice", "bob"]
    session = TraceSession.objects.get(session_id="conv-a")
    assert (session.turns, session.user_id, session.error_count) == (3, "alice", 0)
    assert Trace.objects.filter(user_id="bob").count() == 1

    client = Client()
    listing = client.get("/sessions/").content.decode()
    assert ">conv-a</a>" in listing and ">conv-b</a>" in listing
    page = client.get(f"/sessions/conv-a/?experiment={found['experiment_id']}").content.decode()
    questions = ["Where is my order?", "When will it arrive?", "Thanks!"]
    positions = [page.index(q) for q in questions]
    assert positions == sorted(positions)
    assert "A: When will it arrive?" in page
    assert "lookup_order" in page  # its tool call, folded under the turn
