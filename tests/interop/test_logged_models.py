"""Logged models through the real mlflow client: version tracking with set_active_model, the
model APIs, and a models-from-code agent logged with its config, loaded back and called."""

from __future__ import annotations

from tracking.models import LoggedModel, Run, Span, Trace


def test_set_active_model_links_the_traces_made_under_it(run_mlflow):
    first, second = run_mlflow(
        """
        mlflow.set_experiment("versions")
        mlflow.set_active_model(name="support-agent-abc12345")

        @mlflow.trace
        def agent(question):
            return question.upper()

        agent("hi")
        agent("again")
        mlflow.flush_trace_async_logging()
        model_id = mlflow.get_active_model_id()
        linked = mlflow.search_traces(model_id=model_id, return_type="list")
        result({"model_id": model_id, "linked": [t.data.spans[0].outputs for t in linked]})

        mlflow.set_active_model(name="support-agent-abc12345")  # found, not created again
        result({"same": mlflow.get_active_model_id() == model_id})
        """
    )

    model = LoggedModel.objects.get(name="support-agent-abc12345")
    assert first["model_id"] == model.model_id
    assert model.status == "LOGGED_MODEL_READY"
    assert model.tags["mlflow.model.isExternal"] == "true"
    assert sorted(first["linked"]) == ["AGAIN", "HI"]
    assert second == {"same": True}
    assert list(Trace.objects.values_list("model_id", flat=True)) == [model.model_id] * 2


def test_logged_model_apis_search_filters_order_and_pages(run_mlflow):
    (found,) = run_mlflow(
        """
        exp = mlflow.set_experiment("models")
        client = mlflow.MlflowClient()
        a = mlflow.create_external_model(name="agent-a", params={"prompt_version": "3"},
                                         model_type="agent", tags={"team": "cs"})
        mlflow.log_model_params({"llm": "gpt-4o"}, model_id=a.model_id)
        mlflow.set_logged_model_tags(a.model_id, {"stage": "prod"})
        mlflow.delete_logged_model_tag(a.model_id, "team")
        b = mlflow.initialize_logged_model(name="agent-b", tags={"stage": "dev"})
        mlflow.finalize_logged_model(b.model_id, "READY")
        c = mlflow.initialize_logged_model(name="agent-c")

        def names(**kwargs):
            return [m.name for m in mlflow.search_logged_models(output_format="list", **kwargs)]

        pages, token = [], None
        while True:
            page = client.search_logged_models([exp.experiment_id], max_results=2,
                                               page_token=token)
            pages.append([m.name for m in page])
            token = page.token
            if not token:
                break
        fetched = mlflow.get_logged_model(a.model_id)
        result({
            "newest_first": names(),
            "by_name": names(filter_string="name='agent-b'"),
            "by_name_spaced": names(filter_string="name = 'agent-b'"),
            "by_param_and_type": names(
                filter_string="params.prompt_version = '3' AND model_type = 'agent'"),
            "by_tag": names(filter_string="tags.stage LIKE 'pr%'"),
            "pending": names(filter_string="status = 'LOGGED_MODEL_PENDING'"),
            "by_name_asc": names(order_by=[{"field_name": "name", "ascending": True}]),
            "by_name_desc": names(order_by=[{"field_name": "name", "ascending": False}]),
            "pages": pages,
            "params": fetched.params,
            "tags": {k: v for k, v in fetched.tags.items() if not k.startswith("mlflow.")},
            "status": str(fetched.status),
        })
        client.delete_logged_model(c.model_id)
        """
    )

    assert found == {
        "newest_first": ["agent-c", "agent-b", "agent-a"],
        "by_name": ["agent-b"],
        "by_name_spaced": ["agent-b"],
        "by_param_and_type": ["agent-a"],
        "by_tag": ["agent-a"],
        "pending": ["agent-c"],
        "by_name_asc": ["agent-a", "agent-b", "agent-c"],
        "by_name_desc": ["agent-c", "agent-b", "agent-a"],
        "pages": [["agent-c", "agent-b"], ["agent-a"]],
        "params": {"prompt_version": "3", "llm": "gpt-4o"},
        "tags": {"stage": "prod"},
        "status": "READY",
    }
    assert sorted(LoggedModel.objects.values_list("name", flat=True)) == ["agent-a", "agent-b"]


# The seeds' oracle/judge agent (ChatModel tutorial), with the model-serving endpoint replaced
# by a canned answer so that the test needs no network.
AGENT = """
import mlflow
from mlflow.models import set_model
from mlflow.pyfunc import ChatModel
from mlflow.types.llm import ChatChoice, ChatCompletionResponse, ChatMessage


class BasicAgent(ChatModel):
    def __init__(self):
        self.models = {}
        self.models_config = {}
        self.conversation_history = []

    def load_context(self, context):
        self.models = context.model_config.get("models", {})
        self.models_config = context.model_config.get("configuration", {})

    def _get_system_message(self, role):
        return ChatMessage(role="system", content=self.models[role]["instruction"]).to_dict()

    @mlflow.trace(name="Raw Agent Response")
    def _get_agent_response(self, message_list, endpoint, params=None):
        return {"role": "assistant", "content": f"{endpoint} says: {message_list[-1]['content']}"}

    @mlflow.trace(name="Agent Call")
    def _call_agent(self, message, role, params=None):
        message_list = [self._get_system_message(role), message.to_dict()]
        response = self._get_agent_response(message_list, self.models[role]["endpoint"], params)
        self.conversation_history.extend([message.to_dict(), response])
        return response

    def predict(self, context, messages, params=None):
        with mlflow.start_span(name="Audit Agent") as root_span:
            root_span.set_inputs(messages)
            root_span.set_attributes({**self.models_config, "custom_inputs": params.custom_inputs})
            oracle = self._call_agent(messages[0], "oracle", {"temperature": 0.9})
            judge = self._call_agent(ChatMessage(**oracle), "judge", {"temperature": 0.5})
            self.conversation_history = []
            output = ChatCompletionResponse(
                choices=[ChatChoice(index=0, message=ChatMessage(**judge))],
                model=self.models["judge"]["endpoint"],
                custom_outputs={"echo": params.custom_inputs},
            )
            root_span.set_outputs(output)
            return output


set_model(BasicAgent())
"""

MODEL_CONFIG = {
    "models": {
        "judge": {"endpoint": "judge-llm", "instruction": "Judge the answer.", "temperature": 0.5},
        "oracle": {"endpoint": "oracle-llm", "instruction": "Answer briefly.", "temperature": 0.9},
    },
    "configuration": {"user_response_instruction": "Can you make the answer better?"},
}


def test_a_models_from_code_agent_is_logged_loaded_and_called(run_mlflow):
    logged, predicted = run_mlflow(
        f"""
        mlflow.set_experiment("agents")
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(
                name="agent",
                python_model="agent.py",
                model_config={MODEL_CONFIG!r},
                input_example={{"messages": [{{"role": "user", "content": "What is MLflow?"}}]}},
                pip_requirements=["mlflow"],
            )
        result({{"model_id": info.model_id, "run_id": run.info.run_id}})

        request = {{"messages": [{{"role": "user", "content": "hello there"}}],
                    "custom_inputs": {{"session": "s-1"}}}}
        by_model = mlflow.pyfunc.load_model(info.model_uri).predict(request)
        by_run = mlflow.pyfunc.load_model(f"runs:/{{run.info.run_id}}/agent").predict(request)
        mlflow.flush_trace_async_logging()
        traces = mlflow.search_traces(model_id=info.model_id, return_type="list")
        result({{
            "answers": [p["choices"][0]["message"]["content"] for p in (by_model, by_run)],
            "custom_outputs": by_model["custom_outputs"],
            "traces": [sorted(s.name for s in t.data.spans) for t in traces],
            "previews": [t.info.request_preview for t in traces],
        }})
        """,
        files={"agent.py": AGENT},
    )

    model = LoggedModel.objects.get(model_id=logged["model_id"])
    assert model.model_config == MODEL_CONFIG
    assert model.status == "LOGGED_MODEL_READY"
    assert model.source_run == Run.objects.get(run_id=logged["run_id"])
    assert predicted["answers"] == ["judge-llm says: oracle-llm says: hello there"] * 2
    assert predicted["custom_outputs"] == {"echo": {"session": "s-1"}}
    spans = ["Agent Call", "Agent Call", "Audit Agent", "Raw Agent Response", "Raw Agent Response"]
    assert predicted["traces"] == [spans, spans]
    # The client computes the preview from the root span's inputs (here the messages).
    assert all("hello there" in preview for preview in predicted["previews"])
    trace = Trace.objects.filter(model_id=model.model_id).first()
    root = Span.objects.get(trace=trace, name="Audit Agent")
    assert root.attributes["custom_inputs"] == {"session": "s-1"}


def test_a_description_set_by_the_client_shows_and_one_edited_here_reads_back(run_mlflow, client):
    # MLflow keeps a logged model's description in the `mlflow.note.content` tag.
    (logged,) = run_mlflow(
        """
        mlflow.set_experiment("described")
        model = mlflow.create_external_model(name="support-agent")
        mlflow.set_logged_model_tags(model.model_id, {"mlflow.note.content": "Uses **RAG**."})
        result(model.model_id)
        """
    )

    page = client.get(f"/models/{logged}/").content.decode()
    saved = client.post(f"/models/{logged}/description/", {"description": "Answers *briefly*."})
    (read_back,) = run_mlflow(
        f"""
        result(mlflow.get_logged_model("{logged}").tags.get("mlflow.note.content"))
        """
    )

    assert "Uses <strong>RAG</strong>." in page
    assert saved.status_code == 302
    assert read_back == "Answers *briefly*."
