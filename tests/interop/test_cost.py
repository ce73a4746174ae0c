"""Cost at ingest, end to end: LLM calls against a local OpenAI-compatible server, traced
and exported by a real client, are priced by Spyglass, and the mlflow client reads the costs
back from `get_trace` in MLflow's shapes (`mlflow.llm.cost`, `mlflow.trace.cost`).

Two clients, two conventions: `mlflow.openai.autolog()` around the real `openai` package
(`mlflow.chat.tokenUsage` and the request's `model`, cached prompt tokens included), and the
OpenTelemetry SDK in the GenAI conventions (`gen_ai.*`, as OpenTelemetry's own OpenAI
instrumentation records a call), exported over OTLP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import genai_prices
import pytest

from tests.playground.agent_server import KNOWN_CACHED_USAGE, KNOWN_USAGE, AgentServer
from tracking.models import Trace

AUTOLOG_SCRIPT = """
import openai

mlflow.set_experiment("cost")
mlflow.openai.autolog()


@mlflow.trace(name="agent")
def agent(question):
    messages = [{"role": "user", "content": question}]
    usages = []
    for mode in ("usage", "cached-usage"):
        client = openai.OpenAI(base_url=f"{LLM_URL}/{mode}/v1", api_key="x", max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        usages.append(answer.usage.model_dump(exclude_none=True))
    return usages


usages = agent("what is two plus two")
mlflow.flush_trace_async_logging()
trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
spans = sorted(trace.data.spans, key=lambda s: s.start_time_ns)
result({
    "usages": usages,
    "spans": [
        {"name": s.name, "type": s.span_type, "model": s.model_name, "cost": s.llm_cost}
        for s in spans
    ],
    "trace_cost": json.loads(trace.info.trace_metadata["mlflow.trace.cost"]),
})
"""

OTEL_SCRIPT = """
import urllib.request

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import format_trace_id

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
    endpoint=mlflow.get_tracking_uri() + "/v1/traces",
    headers={"x-mlflow-experiment-id": mlflow.set_experiment("cost").experiment_id},
)))
tracer = provider.get_tracer("cost-interop")

question = {"role": "user", "content": "what is two plus two"}
request = {"model": "gpt-4o-mini", "messages": [question]}
with tracer.start_as_current_span("agent") as agent:
    with tracer.start_as_current_span("chat gpt-4o-mini") as call:
        call.set_attribute("gen_ai.operation.name", "chat")
        call.set_attribute("gen_ai.request.model", request["model"])
        http = urllib.request.Request(
            LLM_URL, json.dumps(request).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(http) as answer:
            response = json.load(answer)
        call.set_attribute("gen_ai.response.model", response["model"])
        call.set_attribute("gen_ai.usage.input_tokens", response["usage"]["prompt_tokens"])
        call.set_attribute("gen_ai.usage.output_tokens", response["usage"]["completion_tokens"])
provider.shutdown()

trace = mlflow.get_trace("tr-" + format_trace_id(agent.get_span_context().trace_id))
llm = next(s for s in trace.data.spans if s.name == "chat gpt-4o-mini")
result({
    "usage": response["usage"],
    "span_cost": llm.llm_cost,
    "span_type": llm.span_type,
    "trace_cost": json.loads(trace.info.trace_metadata["mlflow.trace.cost"]),
    "root_cost": trace.data.spans[0].llm_cost if trace.data.spans[0].name == "agent" else "?",
})
"""


@pytest.fixture(scope="module")
def llm_server() -> Iterator[AgentServer]:
    server = AgentServer().start()
    yield server
    server.stop()


def library_cost(usage: dict, cached_tokens: int = 0) -> dict[str, float]:
    """What genai-prices charges for gpt-4o-mini, by its own general calculation."""
    calculation = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            cache_read_tokens=cached_tokens or None,
        ),
        "gpt-4o-mini",
    )
    input_cost, output_cost = float(calculation.input_price), float(calculation.output_price)
    return {"input_cost": input_cost, "output_cost": output_cost,
            "total_cost": input_cost + output_cost}  # fmt: skip


def test_autologged_openai_calls_are_priced_and_read_back_by_the_client(run_mlflow, llm_server):
    (found,) = run_mlflow(AUTOLOG_SCRIPT.replace("LLM_URL", repr(llm_server.url)))

    # What the openai package read from the server is what was priced.
    assert [u["prompt_tokens"] for u in found["usages"]] == [1200, 1200]
    assert found["usages"][1]["prompt_tokens_details"]["cached_tokens"] == 1024
    plain = library_cost(KNOWN_USAGE)
    cached = library_cost(KNOWN_CACHED_USAGE, cached_tokens=1024)
    assert cached["input_cost"] < plain["input_cost"]  # cached prompt tokens cost less
    root, *calls = found["spans"]
    assert (root["name"], root["cost"]) == ("agent", None)
    assert [(c["type"], c["model"]) for c in calls] == [("CHAT_MODEL", "gpt-4o-mini")] * 2
    assert calls[0]["cost"] == pytest.approx(plain, rel=1e-12)
    assert calls[1]["cost"] == pytest.approx(cached, rel=1e-12)
    both = {key: plain[key] + cached[key] for key in plain}
    assert found["trace_cost"] == pytest.approx(both, rel=1e-12)
    trace = Trace.objects.get()
    assert trace.cost == pytest.approx(both["total_cost"], rel=1e-12)


def test_an_otel_genai_call_is_priced_and_read_back_by_the_client(run_mlflow, llm_server):
    (found,) = run_mlflow(OTEL_SCRIPT.replace(
        "LLM_URL", repr(f"{llm_server.url}/usage/v1/chat/completions")
    ))  # fmt: skip

    assert found["usage"] == KNOWN_USAGE
    expected = library_cost(KNOWN_USAGE)
    assert found["span_cost"] == pytest.approx(expected, rel=1e-12)
    assert found["trace_cost"] == pytest.approx(expected, rel=1e-12)
    assert found["root_cost"] is None
    assert found["span_type"] == "CHAT_MODEL"  # as tracking/genai.py types a gen_ai "chat" span
    trace = Trace.objects.get()
    assert trace.cost == pytest.approx(expected["total_cost"], rel=1e-12)
    assert json.loads(trace.metadata["mlflow.trace.cost"]) == found["trace_cost"]
