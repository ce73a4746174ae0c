"""Cost at ingest: token usage and model name from each convention, priced by genai-prices
(or SPYGLASS_MODEL_PRICES), stored as MLflow's server stores it and never counted twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import genai_prices
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tracking import cost, ingest
from tracking.models import Experiment, Span, Trace
from webapp.settings import _model_prices

TRACE_ID = "tr-" + "c0" * 16
T0 = 1_780_000_000_000_000_000
MS = 1_000_000
ROOT, CALL_1, CALL_2 = "d1" * 8, "d2" * 8, "d3" * 8


def library_cost(model: str, input_tokens: int, output_tokens: int) -> dict[str, float]:
    calculation = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens), model
    )
    input_cost, output_cost = float(calculation.input_price), float(calculation.output_price)
    return {
        "input_cost": input_cost,
        "output_cost": output_cost,
        "total_cost": input_cost + output_cost,
    }


# --- Extraction, one convention at a time (pure functions, no database) ----------------------


def test_mlflow_attributes_give_usage_and_model() -> None:
    attributes = {
        "mlflow.chat.tokenUsage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        "mlflow.llm.model": "gpt-4o-mini",
    }
    assert cost.span_usage(attributes) == {
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
    }
    assert cost.span_model(attributes) == "gpt-4o-mini"


def test_an_autologged_request_names_its_model_in_the_inputs() -> None:
    assert cost.span_model({}, {"model": "gpt-4o-mini", "messages": []}) == "gpt-4o-mini"
    assert (
        cost.span_model({}, None, {"model": "gpt-4o-mini-2024-07-18"}) == "gpt-4o-mini-2024-07-18"
    )


def test_otel_genai_attributes_give_usage_and_the_answering_model() -> None:
    attributes = {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 200,
        "gen_ai.usage.output_tokens": 50,
    }
    assert cost.span_usage(attributes) == {"input_tokens": 200, "output_tokens": 50}
    assert cost.span_model(attributes) == "gpt-4o-2024-08-06"
    assert cost.span_model({"gen_ai.request.model": "gpt-4o"}) == "gpt-4o"


def test_openinference_attributes_give_usage_and_model() -> None:
    attributes = {
        "llm.model_name": "claude-3-5-haiku-latest",
        "llm.token_count.prompt": 30,
        "llm.token_count.completion": 7,
        "llm.token_count.total": 37,
    }
    assert cost.span_usage(attributes) == {"input_tokens": 30, "output_tokens": 7}
    assert cost.span_model(attributes) == "claude-3-5-haiku-latest"


def test_counts_that_are_not_counts_are_no_usage() -> None:
    assert cost.span_usage({"gen_ai.usage.input_tokens": "12"}) is None
    assert cost.span_usage({"mlflow.chat.tokenUsage": {"input_tokens": -1}}) is None
    assert cost.span_usage({"llm.token_count.prompt": True}) is None


def test_the_library_prices_known_counts() -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    assert cost.price("gpt-4o-mini", usage) == library_cost("gpt-4o-mini", 1_000_000, 1_000_000)
    # The library's published gpt-4o-mini price: $0.15 in, $0.60 out per million tokens.
    assert cost.price("gpt-4o-mini", usage) == pytest.approx(
        {"input_cost": 0.15, "output_cost": 0.6, "total_cost": 0.75}
    )


def test_tiered_and_cached_prices_are_the_librarys_own_calculation() -> None:
    # Past 200k input tokens gemini-2.5-pro costs more per token: not a flat rate.
    tiered = {"input_tokens": 300_000, "output_tokens": 10}
    assert cost.price("gemini-2.5-pro", tiered) == library_cost("gemini-2.5-pro", 300_000, 10)
    cached = {"input_tokens": 1000, "output_tokens": 10, "cache_read_input_tokens": 800}
    calculation = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=10, cache_read_tokens=800),
        "gpt-4o-mini",
    )
    assert cost.price("gpt-4o-mini", cached)["input_cost"] == float(calculation.input_price)
    assert (
        cost.price("gpt-4o-mini", cached)["input_cost"]
        < cost.price("gpt-4o-mini", {"input_tokens": 1000, "output_tokens": 10})["input_cost"]
    )


def library_cost_at(model: str, when: datetime, provider: str | None = None) -> dict:
    calculation = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=100),
        model,
        provider_id=provider,
        genai_request_timestamp=when,
    )
    input_cost, output_cost = float(calculation.input_price), float(calculation.output_price)
    return {"input_cost": input_cost, "output_cost": output_cost,
            "total_cost": input_cost + output_cost}  # fmt: skip


def test_a_price_that_changes_on_a_date_is_the_one_of_the_calls_day() -> None:
    # o3 went from $10 to $2 per million input tokens on 2025-06-10 (UTC); prices are
    # looked up once per model and day, so each day must still get its own.
    usage = {"input_tokens": 1000, "output_tokens": 100}
    for when in (datetime(2025, 6, 9, 23, 59, tzinfo=UTC), datetime(2025, 6, 10, 0, 1, tzinfo=UTC)):
        assert cost.price("o3", usage, when=when) == library_cost_at("o3", when)
    before, after = (cost.price("o3", usage, when=datetime(2025, 6, d, 12, tzinfo=UTC))
                     for d in (9, 10))  # fmt: skip
    assert before["input_cost"] == pytest.approx(5 * after["input_cost"])


def test_an_off_peak_price_is_the_one_of_the_calls_hour_not_its_day() -> None:
    # DeepSeek's direct prices halve off-peak (16:30-00:30 UTC): not one price per day.
    usage = {"input_tokens": 1000, "output_tokens": 100}
    peak, off_peak = datetime(2026, 1, 5, 12, tzinfo=UTC), datetime(2026, 1, 5, 20, tzinfo=UTC)
    for when in (peak, off_peak, peak):
        expected = library_cost_at("deepseek-chat", when, "deepseek")
        assert cost.price("deepseek-chat", usage, "deepseek", when) == expected
    assert (
        cost.price("deepseek-chat", usage, "deepseek", off_peak)["total_cost"]
        < cost.price("deepseek-chat", usage, "deepseek", peak)["total_cost"]
    )


def test_an_unknown_model_has_no_cost_not_a_zero_cost() -> None:
    assert cost.price("my-own-llama-7b", {"input_tokens": 10, "output_tokens": 5}) is None
    assert cost.price("gateway:/chat", {"input_tokens": 10, "output_tokens": 5}) is None


def test_no_tokens_is_no_cost() -> None:
    assert cost.price("gpt-4o-mini", {"input_tokens": 0, "output_tokens": 0}) is None


@override_settings(
    SPYGLASS_MODEL_PRICES={
        "my-own-llama-7b": {"input": 2, "output": 4},
        "gpt-4o-mini": {"input": 1},
    }
)
def test_configured_prices_win_over_the_library() -> None:
    usage = {"input_tokens": 500_000, "output_tokens": 250_000}
    assert cost.price("my-own-llama-7b", usage) == {
        "input_cost": 1.0,
        "output_cost": 1.0,
        "total_cost": 2.0,
    }
    assert cost.price("gpt-4o-mini", usage) == {
        "input_cost": 0.5,
        "output_cost": 0.0,
        "total_cost": 0.5,
    }


def test_the_prices_setting_is_checked_when_the_server_starts() -> None:
    assert _model_prices("") == {}
    assert _model_prices('{"llama": {"input": 0.2, "output": 1}}') == {
        "llama": {"input": 0.2, "output": 1}
    }
    for bad in ("{", "[1]", '{"llama": 0.2}', '{"llama": {"in": 1}}', '{"llama": {"input": -1}}'):
        with pytest.raises(ImproperlyConfigured, match="SPYGLASS_MODEL_PRICES"):
            _model_prices(bad)


def test_a_cost_the_client_sent_is_kept() -> None:
    sent = {"input_cost": 1.0, "output_cost": 2.0, "total_cost": 3.0}
    attributes = {
        "mlflow.chat.tokenUsage": {"input_tokens": 10, "output_tokens": 5},
        "mlflow.llm.model": "gpt-4o-mini",
        "mlflow.llm.cost": sent,
    }
    cost.annotate_span(attributes)
    assert attributes["mlflow.llm.cost"] == sent


def test_a_cost_over_a_billion_dollars_is_no_cost() -> None:
    # Two traces of 1e308 summed to inf (SQLite) or raised (PostgreSQL) in the rollups.
    assert cost.valid_cost({"total_cost": 1e9}) == {
        "input_cost": 0.0,
        "output_cost": 0.0,
        "total_cost": 1e9,
    }
    for huge in (1e308, -1e308, 1.5e9):
        assert cost.valid_cost({"total_cost": huge}) is None
    assert cost.total_of(json.dumps({"total_cost": 1e308})) is None


def test_the_trace_sum_counts_a_priced_parent_once_not_again_with_its_children() -> None:
    one = {"input_cost": 1.0, "output_cost": 2.0, "total_cost": 3.0}
    spans = [("a", "", None), ("b", "a", one), ("c", "b", one), ("d", "a", one), ("e", "a", "x")]
    assert cost.trace_cost(spans) == {"input_cost": 2.0, "output_cost": 4.0, "total_cost": 6.0}
    assert cost.trace_cost([("a", "", None)]) is None


def test_the_trace_sum_is_the_same_in_any_order_of_spans() -> None:
    # Summed from a request's spans or from the stored rows (in no set order), a trace
    # gets one cost, to the last digit: 0.1 + 0.2 + 0.3 differs from 0.3 + 0.2 + 0.1.
    spans = [(f"s{i}", "", {"input_cost": v, "output_cost": v, "total_cost": v})
             for i, v in enumerate((0.1, 0.2, 0.3))]  # fmt: skip
    assert cost.trace_cost(spans) == cost.trace_cost(spans[::-1])
    assert cost.trace_cost(spans)["total_cost"] == 0.6


# --- At ingest --------------------------------------------------------------------------------


def llm_span(span_id: str, attributes: dict, **fields) -> ingest.SpanData:
    return ingest.make_span(trace_id=TRACE_ID, span_id=span_id, parent_span_id=ROOT,
                            name="ChatCompletion", start_ns=T0 + 1 * MS, end_ns=T0 + 9 * MS,
                            span_type="CHAT_MODEL", status="OK", attributes=attributes,
                            **fields)  # fmt: skip


def root_span() -> ingest.SpanData:
    return ingest.make_span(trace_id=TRACE_ID, span_id=ROOT, parent_span_id="", name="agent",
                            start_ns=T0, end_ns=T0 + 10 * MS, span_type="AGENT",
                            status="OK")  # fmt: skip


def mlflow_call(span_id: str = CALL_1, model: str = "gpt-4o-mini") -> ingest.SpanData:
    usage = {"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500}
    return llm_span(span_id, {"mlflow.chat.tokenUsage": usage}, inputs={"model": model})


def stored_trace() -> Trace:
    return Trace.objects.get(trace_id=TRACE_ID)


@pytest.mark.django_db
def test_ingest_puts_mlflow_shaped_costs_on_the_span_and_the_trace() -> None:
    ingest.store(spans=[root_span(), mlflow_call()])

    span = Span.objects.get(span_id=CALL_1)
    assert span.attributes["mlflow.llm.cost"] == library_cost("gpt-4o-mini", 1200, 300)
    assert span.attributes["mlflow.llm.model"] == "gpt-4o-mini"
    assert "mlflow.llm.cost" not in Span.objects.get(span_id=ROOT).attributes
    trace = stored_trace()
    assert json.loads(trace.metadata["mlflow.trace.cost"]) == library_cost("gpt-4o-mini", 1200, 300)
    assert trace.cost == library_cost("gpt-4o-mini", 1200, 300)["total_cost"]


@pytest.mark.django_db
def test_a_resent_trace_or_spans_arriving_apart_are_counted_once() -> None:
    ingest.store(spans=[root_span(), mlflow_call(CALL_1)])
    ingest.store(spans=[mlflow_call(CALL_2)])  # the second call, in a later request
    ingest.store(spans=[root_span(), mlflow_call(CALL_1), mlflow_call(CALL_2)])  # all again

    assert stored_trace().cost == pytest.approx(
        2 * library_cost("gpt-4o-mini", 1200, 300)["total_cost"]
    )


@pytest.mark.django_db
def test_the_trace_info_arriving_after_the_spans_keeps_their_cost() -> None:
    experiment = Experiment.objects.create(name="cost")
    ingest.store(spans=[root_span(), mlflow_call()], default_experiment_id=experiment.pk)
    usage = '{"total_tokens": 1500}'
    info = ingest.TraceInfo(trace_id=TRACE_ID, experiment_id=experiment.pk, state="OK",
                            request_time=datetime.fromtimestamp(T0 / 1e9, UTC),
                            metadata={"mlflow.trace.tokenUsage": usage})  # fmt: skip
    ingest.store([info])

    trace = stored_trace()
    assert trace.cost == library_cost("gpt-4o-mini", 1200, 300)["total_cost"]
    assert "mlflow.trace.cost" in trace.metadata
    assert trace.metadata["mlflow.trace.tokenUsage"] == usage


@pytest.mark.django_db
def test_otel_and_openinference_spans_are_priced_at_ingest() -> None:
    genai = {"gen_ai.response.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1200,
             "gen_ai.usage.output_tokens": 300}  # fmt: skip
    openinference = {"llm.model_name": "gpt-4o-mini", "llm.token_count.prompt": 1200,
                     "llm.token_count.completion": 300}  # fmt: skip
    ingest.store(spans=[root_span(), llm_span(CALL_1, genai), llm_span(CALL_2, openinference)])

    expected = library_cost("gpt-4o-mini", 1200, 300)
    for span_id in (CALL_1, CALL_2):
        assert Span.objects.get(span_id=span_id).attributes["mlflow.llm.cost"] == expected
    assert stored_trace().cost == pytest.approx(2 * expected["total_cost"])


@pytest.mark.django_db
def test_a_trace_of_unknown_models_has_no_cost() -> None:
    ingest.store(spans=[root_span(), mlflow_call(model="my-own-llama-7b")])

    assert "mlflow.llm.cost" not in Span.objects.get(span_id=CALL_1).attributes
    trace = stored_trace()
    assert trace.cost is None
    assert "mlflow.trace.cost" not in trace.metadata


@pytest.mark.django_db
@override_settings(SPYGLASS_MODEL_PRICES={"my-own-llama-7b": {"input": 1, "output": 2}})
def test_a_configured_price_prices_a_self_hosted_model_at_ingest() -> None:
    ingest.store(spans=[root_span(), mlflow_call(model="my-own-llama-7b")])

    assert stored_trace().cost == pytest.approx(1200 / 1e6 + 2 * 300 / 1e6)
