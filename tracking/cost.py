"""What an LLM call cost, computed once at ingest from its token usage and model name.

Stored as MLflow's own server stores it (`mlflow/tracing/otel/translation`, its SQL store):
`mlflow.llm.cost` = {"input_cost", "output_cost", "total_cost"} (USD) on every span that has
token usage and a model name, unless the client already set one, and `mlflow.trace.cost`, the
same three keys summed over the trace, in the trace metadata. Prices come from the maintained
`genai-prices` library; `SPYGLASS_MODEL_PRICES` (dollars per million tokens) wins over it, for
self-hosted models. A model that neither knows has no cost (None), never a cost of zero.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import genai_prices
import orjson
from django.conf import settings
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice, TimeOfDateConstraint

if TYPE_CHECKING:
    from tracking.models import Span

COST_ATTRIBUTE = "mlflow.llm.cost"
MODEL_ATTRIBUTE = "mlflow.llm.model"
PROVIDER_ATTRIBUTE = "mlflow.llm.provider"
USAGE_ATTRIBUTE = "mlflow.chat.tokenUsage"
TRACE_COST_METADATA = "mlflow.trace.cost"
COST_KEYS = ("input_cost", "output_cost", "total_cost")

# Where each convention names the model, in MLflow's order of preference: its own attribute,
# then OpenTelemetry GenAI (the model that answered before the one asked for), OpenInference.
_MODEL_KEYS = (
    MODEL_ATTRIBUTE,
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.response.model_name",
    "llm.model_name",
    "llm.request.model_name",
)
_PROVIDER_KEYS = (PROVIDER_ATTRIBUTE, "gen_ai.provider.name", "gen_ai.system", "llm.provider")
# (input, output) token count attributes of the other conventions, first present wins.
_TOKEN_KEYS = (
    ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"),
    ("gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens"),
    ("llm.token_count.prompt", "llm.token_count.completion"),
)
# Every attribute that can hold a count: most spans have none, and one set test says so.
_USAGE_KEYS = frozenset({USAGE_ATTRIBUTE, *(key for pair in _TOKEN_KEYS for key in pair)})
# MLflow skips its own routing ids: no price list knows them.
_SKIP_PREFIXES = ("gateway:/", "endpoints:/")
_MAX_TOKENS = 2**53
_MILLION = 1_000_000


def span_model(
    attributes: Mapping[str, Any], inputs: Any = None, outputs: Any = None
) -> str | None:
    """The model a span called, as MLflow finds it: attributes first, then a `model` field
    of the request or the response (what autologged OpenAI-style calls carry)."""
    for key in _MODEL_KEYS:
        value = attributes.get(key)
        if type(value) is str and value:
            return value
    for payload in (inputs, outputs):
        if isinstance(payload, dict):
            model = payload.get("model")
            if type(model) is str and model:
                return model
    return None


def span_provider(attributes: Mapping[str, Any]) -> str | None:
    for key in _PROVIDER_KEYS:
        value = attributes.get(key)
        if type(value) is str and value:
            return value.lower()
    return None


def span_usage(attributes: Mapping[str, Any]) -> dict[str, int] | None:
    """Token counts as MLflow's `mlflow.chat.tokenUsage` holds them, from whichever
    convention the span uses; None without an input or output count."""
    if _USAGE_KEYS.isdisjoint(attributes):
        return None
    usage = attributes.get(USAGE_ATTRIBUTE)
    if isinstance(usage, dict):
        counts = {k: v for k, v in usage.items() if _is_count(v)}
        if "input_tokens" in counts or "output_tokens" in counts:
            return counts
    for input_key, output_key in _TOKEN_KEYS:
        input_tokens, output_tokens = attributes.get(input_key), attributes.get(output_key)
        if _is_count(input_tokens) or _is_count(output_tokens):
            return {
                "input_tokens": input_tokens if _is_count(input_tokens) else 0,
                "output_tokens": output_tokens if _is_count(output_tokens) else 0,
            }
    return None


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value < _MAX_TOKENS


def price(
    model: str,
    usage: Mapping[str, int],
    provider: str | None = None,
    when: datetime | None = None,
) -> dict[str, float] | None:
    """{"input_cost", "output_cost", "total_cost"} in USD for `usage` on `model`, or None
    when no price is known (or there is nothing to price)."""
    input_tokens = usage.get("input_tokens", 0)
    output_tokens = usage.get("output_tokens", 0)
    if not (input_tokens or output_tokens) or model.startswith(_SKIP_PREFIXES):
        return None
    override = settings.SPYGLASS_MODEL_PRICES.get(model)
    if override is not None:
        return _cost(
            input_tokens * override.get("input", 0) / 1e6,
            output_tokens * override.get("output", 0) / 1e6,
        )
    found = _library_model(model, provider)
    if found is None:
        return None
    library_provider, library_model, all_day = found
    when = when or datetime.now(UTC)
    cache_read = usage.get("cache_read_input_tokens")
    cache_write = usage.get("cache_creation_input_tokens")
    if not (cache_read or cache_write):
        # The common case, plain text tokens at flat per-million rates, is the library's own
        # arithmetic (rate * count / 1e6 in Decimal) on the rates it picks for the moment of
        # the call; its general calculation costs ~100 us a span, most of an ingest's time.
        if all_day:
            rates = _rates_on_day(model, provider, _utc_day(when))
        else:
            rates = _rates(library_model, when)
        if rates is not None:
            return _cost(
                float(rates[0] * input_tokens / _MILLION),
                float(rates[1] * output_tokens / _MILLION),
            )
    counts = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    # Cached tokens are part of the input count (MLflow's usage, like OpenAI's), priced lower.
    if cache_read and cache_read <= input_tokens:
        counts["cache_read_tokens"] = cache_read
    if cache_write and cache_write + counts.get("cache_read_tokens", 0) <= input_tokens:
        counts["cache_write_tokens"] = cache_write
    try:
        calculation = library_model.calc_price(
            genai_prices.Usage(**counts),
            library_provider,
            genai_request_timestamp=when,
            auto_update_timestamp=None,
        )
    except (ValueError, LookupError, ArithmeticError):
        return None  # counts the price list cannot take (e.g. past a tier it does not price)
    return _cost(float(calculation.input_price), float(calculation.output_price))


def _cost(input_cost: float, output_cost: float) -> dict[str, float] | None:
    if not (math.isfinite(input_cost) and math.isfinite(output_cost)):
        return None
    return {
        "input_cost": input_cost,
        "output_cost": output_cost,
        "total_cost": input_cost + output_cost,
    }


@functools.lru_cache(maxsize=1024)
def _library_model(model: str, provider: str | None) -> tuple[Any, Any, bool] | None:
    """The library's (provider, model, whether its price holds all day) for a model name,
    cached per name: a miss scans every provider's list, and ingest asks for every LLM span.
    A price changes at a date (`StartDateConstraint`) or, for off-peak prices, at a time of
    day (`TimeOfDateConstraint`): only the first can be looked up once a day."""
    snapshot = data_snapshot.get_snapshot()
    for provider_id in (provider, None) if provider else (None,):
        try:
            library_provider, library_model = snapshot.find_provider_model(
                model, None, provider_id, None
            )
        except LookupError:
            continue
        prices = library_model.prices
        all_day = isinstance(prices, ModelPrice) or not any(
            isinstance(p.constraint, TimeOfDateConstraint) for p in prices
        )
        return library_provider, library_model, all_day
    return None


def _utc_day(when: datetime) -> date:
    # As the library reads a timestamp: naive is UTC, an aware one is converted to UTC.
    if when.tzinfo is not UTC:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.date()


def _rates(library_model: Any, when: datetime) -> tuple[Decimal, Decimal] | None:
    """The model's (input, output) dollars per million tokens at `when`, or None when they
    are not flat rates (tiers by token count): the general calculation prices those."""
    model_price = library_model.get_prices(when)
    rates = getattr(model_price, "input_mtok", None), getattr(model_price, "output_mtok", None)
    return rates if all(isinstance(rate, Decimal) for rate in rates) else None


@functools.lru_cache(maxsize=4096)
def _rates_on_day(model: str, provider: str | None, day: date) -> tuple[Decimal, Decimal] | None:
    """`_rates` for a model whose price holds all day, looked up once per (model, provider,
    UTC day): ingest prices every LLM span, mostly of a few models on the same day."""
    found = _library_model(model, provider)
    return None if found is None else _rates(found[1], datetime.combine(day, time(), UTC))


def annotate_span(
    attributes: dict[str, Any], inputs: Any = None, outputs: Any = None, start_ns: int = 0
) -> None:
    """Set `mlflow.llm.cost` (and `mlflow.llm.model`, where another convention named the
    model) on a span's attributes, as MLflow's server does when storing a span. A cost the
    client sent is kept, an explicit null one included."""
    if COST_ATTRIBUTE in attributes:
        return
    usage = span_usage(attributes)
    if usage is None:
        return
    model = span_model(attributes, inputs, outputs)
    if model is None:
        return
    attributes.setdefault(MODEL_ATTRIBUTE, model)
    when = datetime.fromtimestamp(start_ns / 1e9, UTC) if start_ns else None
    cost = price(model, usage, span_provider(attributes), when)
    if cost is not None:
        attributes[COST_ATTRIBUTE] = cost


def usage_and_cost(span: Span) -> dict[str, Any]:
    """An LLM span's tokens, model and cost (as stored at ingest) for the span's facts on the
    trace and trace diff pages; {} for a span with no token usage."""
    attributes = span.attributes if isinstance(span.attributes, dict) else {}
    usage = span_usage(attributes)
    if usage is None:
        return {}
    total = usage.get("total_tokens")
    if total is None:
        total = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    return {
        "usage": {**usage, "total": total},
        "cost": valid_cost(attributes.get(COST_ATTRIBUTE)),
        "model": span_model(attributes, span.inputs, span.outputs),
    }


def valid_cost(value: Any) -> dict[str, float] | None:
    """A stored or client-sent cost dict with its three numbers finite and within MAX_COST
    dollars, else None."""
    if type(value) is not dict:
        return None
    # A missing key counts as 0.0, as in MLflow's aggregation.
    numbers = (
        value.get("input_cost", 0.0),
        value.get("output_cost", 0.0),
        value.get("total_cost", 0.0),
    )
    for number in numbers:
        if type(number) not in _NUMBER_TYPES or not abs(number) <= MAX_COST:
            return None
    return {"input_cost": numbers[0], "output_cost": numbers[1], "total_cost": numbers[2]}


_NUMBER_TYPES = (int, float)
# No span or trace costs a billion dollars: a bigger number is a client's bug, not a price.
# The bound keeps every sum of stored costs (per trace, per rollup hour, per chart bucket)
# finite: PostgreSQL's SUM raises on a float overflow and SQLite's gives inf, either a 500.
MAX_COST = 1e9


def trace_cost(spans: Iterable[tuple[str, str, Any]]) -> dict[str, float] | None:
    """The trace's cost from its spans' (span_id, parent_span_id, cost); see `sum_costs`."""
    parents: dict[str, str] = {}
    costs: dict[str, Any] = {}
    for span_id, parent, span_cost in spans:
        parents[span_id] = parent
        if span_cost is not None:
            costs[span_id] = span_cost
    return sum_costs(costs, parents)


def sum_costs(costs: Mapping[str, Any], parents: Mapping[str, str]) -> dict[str, float] | None:
    """The trace's cost from the costs of its priced spans (by span id) and every span's
    parent id: MLflow's tree-aware sum, which skips a span whose ancestor already has a
    cost (a rolled-up parent counts once, not again with its children). None when no span
    has a valid cost. Only the priced spans are visited: most spans are not LLM calls."""
    priced: dict[str, dict[str, float]] = {}
    for span_id, span_cost in costs.items():
        if (valid := valid_cost(span_cost)) is not None:
            priced[span_id] = valid
    if not priced:
        return None
    counted = [
        span_cost
        for span_id, span_cost in priced.items()
        if not _has_priced_ancestor(span_id, parents, priced)
    ]
    # fsum, exact and then rounded once, is the same in whatever order the spans come:
    # summed from a request's spans or from the stored rows, a trace gets one cost.
    return {key: math.fsum(c[key] for c in counted) for key in COST_KEYS}


def _has_priced_ancestor(span_id: str, parents: Mapping[str, str], priced: dict) -> bool:
    # Walked up from the few priced spans rather than down from the root over every span;
    # `seen` ends the walk on a (malformed) cycle of parent ids.
    seen = {span_id}
    parent = parents.get(span_id)
    while parent and parent not in seen:
        if parent in priced:
            return True
        seen.add(parent)
        parent = parents.get(parent)
    return False


def total_of(metadata_cost: str | None) -> float | None:
    """The trace cost column's value from the `mlflow.trace.cost` metadata text."""
    if not metadata_cost:
        return None
    try:
        cost = valid_cost(orjson.loads(metadata_cost))
    except orjson.JSONDecodeError:
        return None
    return None if cost is None else cost["total_cost"]
