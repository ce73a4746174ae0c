"""Cost at ingest, end to end: an LLM call against a local OpenAI-compatible server, traced
and exported by a real client, is priced by Spyglass, and the mlflow client reads the costs
back from `get_trace` in MLflow's shapes (`mlflow.llm.cost`, `mlflow.trace.cost`).

The `openai` package is not in the test venv, so `mlflow.openai.autolog()` cannot run here:
the call is traced with the OpenTelemetry SDK in the GenAI conventions instead (as
OpenTelemetry's own OpenAI instrumentation records it), from the response's real usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import genai_prices
import pytest

from tests.playground.agent_server import AgentServer
from tracking.models import Trace

CALL_SCRIPT = """
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


def test_an_llm_call_is_priced_and_read_back_by_the_client(run_mlflow, llm_server):
    (found,) = run_mlflow(CALL_SCRIPT.replace(
        "LLM_URL", repr(f"{llm_server.url}/plain/v1/chat/completions")
    ))  # fmt: skip

    usage = found["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    calculation = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]
        ),
        "gpt-4o-mini",
    )
    expected = {
        "input_cost": float(calculation.input_price),
        "output_cost": float(calculation.output_price),
        "total_cost": float(calculation.input_price) + float(calculation.output_price),
    }
    assert found["span_cost"] == pytest.approx(expected, rel=1e-12)
    assert found["trace_cost"] == pytest.approx(expected, rel=1e-12)
    assert found["root_cost"] is None
    assert found["span_type"] == "LLM"  # as tracking/otlp.py types a gen_ai "chat" span
    trace = Trace.objects.get()
    assert trace.cost == pytest.approx(expected["total_cost"], rel=1e-12)
    assert json.loads(trace.metadata["mlflow.trace.cost"]) == found["trace_cost"]
