"""Demo data: a customer-support agent in three logged versions and a week of its traces.

The builders here are pure: they return what an MLflow 3 client sends (TraceInfoV3 dicts and
`traces.json` span dicts, mlflow-protocol.md §5 and §6.1) and plain descriptions of the model
versions, without touching the database. `manage.py demo_data` stores the traces through
`tracking.ingest` like any client, so the demo exercises the real path; `bench/ingest.py`
reuses the batch-evaluation builder for its payloads.

Everything derives from a seed through one `random.Random` per model version, session or
trace, so building again gives the same model, run, trace and span ids (re-sending them is
idempotent) and asking for more traces does not change the ones before. Times are offsets
from `now`.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

EXPERIMENT_NAME = "support-agent"
MODEL_NAME = "support-agent"
REPO_URL = "https://github.com/acme/support-agent"
DEFAULT_SEED = 7
DEFAULT_TRACE_COUNT = 64
BATCH_EVAL_SPANS = 5_001  # the root + 1,250 examples x (chain, retrieve, llm, score)

MS = 1_000_000  # nanoseconds
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Json = dict[str, Any]


@dataclass(frozen=True)
class ModelVersion:
    """One logged version of the support agent and the run that logged and evaluated it."""

    version: int
    model_id: str
    created_at: datetime
    params: dict[str, str]
    tags: dict[str, str]
    model_config: Json
    run_id: str
    run_name: str
    run_params: dict[str, str]
    metrics: dict[str, float]
    # How the version behaves in its traces, so that comparing versions shows differences.
    error_rate: float
    latency_scale: float

    @property
    def commit(self) -> str:
        return self.tags["mlflow.source.git.commit"]

    @property
    def tools(self) -> list[str]:
        return self.model_config["tools"]


@dataclass(frozen=True)
class TracePayload:
    info: Json
    spans: list[Json]

    @property
    def trace_id(self) -> str:
        return self.info["trace_id"]


@dataclass(frozen=True)
class DemoData:
    versions: list[ModelVersion]
    traces: list[TracePayload]  # the support agent's, oldest session first
    batch: TracePayload  # one nightly evaluation job of BATCH_EVAL_SPANS spans


def build(
    *,
    experiment_id: int | str,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    trace_count: int = DEFAULT_TRACE_COUNT,
    batch_spans: int = BATCH_EVAL_SPANS,
) -> DemoData:
    """Everything `manage.py demo_data` loads, for traces filed under `experiment_id`."""
    now = now or datetime.now(UTC)
    versions = build_versions(seed, now)
    traces = support_traces(
        versions, experiment_id=experiment_id, seed=seed, now=now, count=trace_count
    )
    batch = batch_evaluation_trace(
        random.Random(f"{seed}:batch"),
        experiment_id=experiment_id,
        start_ns=_to_ns(now - timedelta(hours=26)),
        n_spans=batch_spans,
        model_id=versions[-1].model_id,
    )
    return DemoData(versions=versions, traces=traces, batch=batch)


# --- Model versions -------------------------------------------------------------------------

_PROMPT_V1 = (
    "You are Acme's customer support assistant. Answer using the help-center articles "
    "provided. If the customer asks about an order, look it up before answering. "
    "Be brief and polite."
)
_PROMPT_V2 = _PROMPT_V1 + (
    " Always quote the order number. When a refund is requested, check the refund policy "
    "for the product category and open a ticket if the item qualifies. Never promise a "
    "refund amount."
)
_PROMPT_V3 = (
    "You are Acme's senior customer support agent. Ground every statement in the help-center "
    "articles or tool results; say so when you do not know. Look orders up before answering, "
    "open a ticket for refunds that qualify, and escalate to a human when the customer asks "
    "for one or is upset. Answer in the customer's language."
)
_JUDGE_PROMPT = (
    "You review a support agent's draft answer. Reply with JSON {verdict, issues}: the "
    "verdict is pass when every claim is supported by the context and the tone is polite."
)
_BASE_TOOLS = ["lookup_order", "refund_policy"]

# What changed from one version to the next: model, sampling, retrieval, prompt and tools.
_VERSION_SPECS: list[Json] = [
    {
        "days_ago": 9.3,
        "branch": "main",
        "llm": {"endpoint": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512},
        "retriever": {"index": "helpcenter-2025-05", "top_k": 3, "rerank": False},
        "prompt": _PROMPT_V1,
        "tools": _BASE_TOOLS,
        "metrics": {"accuracy": 0.78, "faithfulness": 0.83, "p95": 2450.0, "cost": 0.0011},
        "error_rate": 0.10,
        "latency_scale": 1.0,
    },
    {
        "days_ago": 5.3,
        "branch": "feature/refund-tickets",
        "llm": {"endpoint": "gpt-4o-mini", "temperature": 0.4, "max_tokens": 768},
        "retriever": {"index": "helpcenter-2025-06", "top_k": 5, "rerank": False},
        "prompt": _PROMPT_V2,
        "tools": [*_BASE_TOOLS, "create_ticket", "track_shipment"],
        "metrics": {"accuracy": 0.85, "faithfulness": 0.88, "p95": 3120.0, "cost": 0.0016},
        "error_rate": 0.07,
        "latency_scale": 1.15,
    },
    {
        "days_ago": 2.6,
        "branch": "feature/escalation-judge",
        "llm": {"endpoint": "gpt-4o", "temperature": 0.7, "max_tokens": 1024},
        "retriever": {"index": "helpcenter-2025-06", "top_k": 4, "rerank": True},
        "prompt": _PROMPT_V3,
        "tools": [
            *_BASE_TOOLS,
            "create_ticket",
            "track_shipment",
            "check_inventory",
            "escalate_to_human",
        ],
        "judge": {"endpoint": "gpt-4o-mini", "temperature": 0.0, "instruction": _JUDGE_PROMPT},
        "metrics": {"accuracy": 0.83, "faithfulness": 0.91, "p95": 4870.0, "cost": 0.0092},
        "error_rate": 0.18,
        "latency_scale": 1.6,
    },
]
_RUN_ADJECTIVES = ["bold", "calm", "eager", "gentle", "merry", "quiet", "sunny", "witty"]
_RUN_ANIMALS = ["heron", "otter", "lynx", "finch", "panda", "moose", "gecko", "crane"]


def build_versions(seed: int = DEFAULT_SEED, now: datetime | None = None) -> list[ModelVersion]:
    """The three versions of `support-agent`, oldest first, logged a few days apart."""
    now = now or datetime.now(UTC)
    return [_version(number, spec, seed, now) for number, spec in enumerate(_VERSION_SPECS, 1)]


def _version(number: int, spec: Json, seed: int, now: datetime) -> ModelVersion:
    rng = random.Random(f"{seed}:model:{number}")
    llm, retriever = spec["llm"], spec["retriever"]
    params = {
        "llm": llm["endpoint"],
        "temperature": str(llm["temperature"]),
        "max_tokens": str(llm["max_tokens"]),
        "retriever_top_k": str(retriever["top_k"]),
        "prompt_version": f"support-v{number}",
    }
    config: Json = {
        "llm": llm,
        "system_prompt": spec["prompt"],
        "retriever": retriever,
        "tools": spec["tools"],
        "max_tool_rounds": 2 if number == 1 else 3,
    }
    if "judge" in spec:
        config["judge"] = spec["judge"]
    metrics = spec["metrics"]
    return ModelVersion(
        version=number,
        model_id=f"m-{_hex(rng, 16)}",
        created_at=now - timedelta(days=spec["days_ago"]),
        params=params,
        tags={
            "mlflow.source.git.commit": _hex(rng, 20),
            "mlflow.source.git.branch": spec["branch"],
            "mlflow.source.git.repoURL": REPO_URL,
            "mlflow.source.name": "agent.py",
            "mlflow.source.type": "LOCAL",
            "mlflow.user": "maria",
        },
        model_config=config,
        run_id=_hex(rng, 16),
        run_name=f"{rng.choice(_RUN_ADJECTIVES)}-{rng.choice(_RUN_ANIMALS)}-{rng.randint(10, 99)}",
        run_params={**params, "eval_dataset": "support-golden-v3", "judge": "gpt-4o-mini"},
        metrics={
            "eval/accuracy": metrics["accuracy"],
            "eval/faithfulness": metrics["faithfulness"],
            "latency_p95_ms": metrics["p95"],
            "cost_per_request_usd": metrics["cost"],
        },
        error_rate=spec["error_rate"],
        latency_scale=spec["latency_scale"],
    )


# --- Spans ----------------------------------------------------------------------------------


class _Failure(Exception):
    """An exception raised inside the simulated agent, unwinding through its open spans."""

    def __init__(self, exc_type: str, message: str, at_ns: int) -> None:
        super().__init__(message)
        self.exc_type = exc_type
        self.message = message
        self.at_ns = at_ns  # when it was raised
        self.end_ns = at_ns  # when it has unwound to the span being exited
        self.frames: list[str] = []


class _Span:
    def __init__(self, trace: _TraceBuilder, name: str, span_type: str, start_ns: int) -> None:
        self.trace = trace
        self.span_id = _nonzero_bytes(trace.rng, 8)
        self.parent: _Span | None = None
        self.name = name
        self.span_type = span_type
        self.start_ns = start_ns
        self.end_ns: int | None = None
        self.inputs: Any = None
        self.outputs: Any = None
        self.attributes: Json = {}
        self.error: _Failure | None = None
        self.stacktrace = ""

    def finish(self, end_ns: int, outputs: Any = None) -> int:
        self.end_ns = max(end_ns, self.start_ns)
        self.outputs = outputs
        return self.end_ns

    def fail(self, failure: _Failure) -> None:
        # Every span an exception leaves records it, as MLflow's span context manager does.
        failure.frames.append(self.name)
        failure.end_ns += self.trace.rng.randint(20_000, 400_000)  # unwinding takes a moment
        self.end_ns = max(failure.end_ns, self.start_ns)
        self.error = failure
        frames = "".join(
            f'  File "/app/support_agent/agent.py", line {40 + 17 * i}, in {frame}\n    ...\n'
            for i, frame in enumerate(reversed(failure.frames))
        )
        self.stacktrace = f"Traceback (most recent call last):\n{frames}{failure.exc_type}: "
        self.stacktrace += failure.message

    def to_dict(self) -> Json:
        attributes = {
            "mlflow.traceRequestId": self.trace.trace_id,
            "mlflow.spanType": self.span_type,
            "mlflow.spanInputs": self.inputs,
            **self.attributes,
        }
        status = {"code": "STATUS_CODE_OK", "message": ""}
        events = []
        if self.error:  # a failed span has no outputs, and log level 40
            message = f"{self.error.exc_type}: {self.error.message}"
            status = {"code": "STATUS_CODE_ERROR", "message": message}
            events.append(self._exception_event(self.error))
            attributes["mlflow.spanLogLevel"] = 40
        else:
            attributes["mlflow.spanOutputs"] = self.outputs
            attributes["mlflow.spanLogLevel"] = 10 if self.span_type in ("CHAIN", "UNKNOWN") else 20
        return {
            "trace_id": self.trace.otel_trace_id,
            "span_id": _b64(self.span_id),
            "parent_span_id": _b64(self.parent.span_id) if self.parent else None,
            "name": self.name,
            "start_time_unix_nano": self.start_ns,
            "end_time_unix_nano": self.end_ns,
            "events": events,
            "status": status,
            # Span attribute values are JSON-encoded strings in traces.json (protocol §6.1).
            "attributes": {k: json.dumps(v, ensure_ascii=False) for k, v in attributes.items()},
            "links": [],
        }

    def _exception_event(self, failure: _Failure) -> Json:
        # Event attribute values, unlike span attributes, are plain.
        return {
            "name": "exception",
            "time_unix_nano": failure.at_ns,
            "attributes": {
                "exception.type": failure.exc_type,
                "exception.message": failure.message,
                "exception.stacktrace": self.stacktrace,
            },
        }


class _TraceBuilder:
    """The spans of one trace; `span()` nests like MLflow's `mlflow.start_span()`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        raw_id = _nonzero_bytes(rng, 16)
        self.trace_id = f"tr-{raw_id.hex()}"
        self.otel_trace_id = _b64(raw_id)
        self.spans: list[_Span] = []
        self._open: list[_Span] = []

    @contextmanager
    def span(
        self, name: str, span_type: str, start_ns: int, inputs: Any = None, **attributes: Any
    ) -> Iterator[_Span]:
        span = _Span(self, name, span_type, start_ns)
        span.parent = self._open[-1] if self._open else None
        span.inputs, span.attributes = inputs, attributes
        self.spans.append(span)
        self._open.append(span)
        try:
            yield span
        except _Failure as failure:
            span.fail(failure)
            raise
        finally:
            self._open.pop()
        if span.end_ns is None:
            raise RuntimeError(f"span {name!r} was never finished")

    @property
    def root(self) -> _Span:
        return self.spans[0]

    def span_dicts(self) -> list[Json]:
        return [span.to_dict() for span in self.spans]  # root first, as the client writes them

    def token_usage(self) -> dict[str, int]:
        total = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        for span in self.spans:
            usage = span.attributes.get("mlflow.chat.tokenUsage")
            if usage and not span.error:
                for key in total:
                    total[key] += usage[key]
        return total

    def info(self, experiment_id: str, metadata: dict[str, str], tags: dict[str, str]) -> Json:
        """The TraceInfoV3 the client sends in StartTraceV3 once the root span has ended."""
        root = self.root
        trace_metadata = {
            "mlflow.trace_schema.version": "3",
            "mlflow.trace.tokenUsage": json.dumps(self.token_usage()),
            "mlflow.traceInputs": _truncate(json.dumps(root.inputs, ensure_ascii=False)),
        }
        if not root.error:
            trace_metadata["mlflow.traceOutputs"] = _truncate(
                json.dumps(root.outputs, ensure_ascii=False)
            )
        return {
            "trace_id": self.trace_id,
            "trace_location": {
                "type": "MLFLOW_EXPERIMENT",
                "mlflow_experiment": {"experiment_id": experiment_id},
            },
            "request_time": _rfc3339(root.start_ns),
            "execution_duration": f"{(root.end_ns - root.start_ns) // MS / 1000:.3f}s",
            "state": "ERROR" if root.error else "OK",
            "trace_metadata": {**trace_metadata, **metadata},
            "tags": {"mlflow.traceName": root.name, **tags},
        }


# --- What customers ask and what the help center says -----------------------------------

_ITEMS = [  # (name, category, sku)
    ("wireless headphones", "electronics", "SKU-HP-220"),
    ("running shoes", "apparel", "SKU-RS-118"),
    ("espresso machine", "kitchen", "SKU-EM-900"),
    ("standing desk", "furniture", "SKU-SD-140"),
    ("winter jacket", "apparel", "SKU-WJ-310"),
    ("smartwatch", "electronics", "SKU-SW-045"),
    ("cast-iron skillet", "kitchen", "SKU-CS-026"),
    ("office chair", "furniture", "SKU-OC-502"),
]
_COLORS = ["black", "navy", "forest green", "sand", "red"]
_DAYS = ["yesterday", "on Monday", "last Friday", "two days ago"]
_CARRIERS = [("UPS", "1Z"), ("FedEx", "7749"), ("DHL", "JD01")]
_HUBS = ["Memphis, TN", "Louisville, KY", "Reno, NV", "Allentown, PA"]

# (intent, message); {order}, {item}, {color} and {day} are filled per conversation.
_QUESTIONS = [
    ("order_status", "Hi, where is my order {order}? It was supposed to arrive {day}."),
    ("order_status", "My {item} still hasn't shown up. Order number {order}."),
    ("order_status", "Can you tell me when order {order} will be delivered?"),
    ("order_status", "我的订单 {order} 什么时候能到?已经等了一个星期了。"),
    ("refund", "The {item} I got is broken. I want a refund, order {order}."),
    ("refund", "Can I get my money back for the {item}? It doesn't fit. Order {order}"),
    ("refund", "I was charged twice for order {order}, please refund one of the charges."),
    ("return_policy", "How many days do I have to return a {item}?"),
    ("return_policy", "Do I need the original box to return something?"),
    ("return_policy", "Is return shipping free?"),
    ("product", "Do you have the {item} in {color}?"),
    ("product", "When will the {item} be back in stock?"),
    ("account", "How do I change the email address on my account?"),
    ("account", "I forgot my password and the reset email never arrives."),
    ("account", "Can I delete my account and all my data?"),
    ("escalation", "This is the third time I'm writing about order {order}. I want a human."),
    ("escalation", "Your bot keeps giving me the same answer. Get me a real person please."),
]
_FOLLOW_UPS = [
    ("return_policy", "OK. And how long does the refund take to show up on my card?"),
    ("order_status", "Can I still change the delivery address for {order}?"),
    ("smalltalk", "Thanks, that's all I needed."),
    ("smalltalk", "Great, thank you!"),
    ("escalation", "That doesn't help at all. Can I talk to someone?"),
]


@dataclass(frozen=True)
class _Article:
    uri: str
    title: str
    intents: tuple[str, ...]
    text: str


_ARTICLES = [
    _Article("kb/returns/return-window.md", "Return window", ("return_policy", "refund"),
             "Most items can be returned within 30 days of delivery; electronics within 15 "
             "days. Items must be unused and in their original packaging."),
    _Article("kb/returns/refund-timing.md", "Refund timing", ("refund", "return_policy"),
             "Refunds go to the original payment method within 2 business days of the return "
             "reaching our warehouse; banks take 5-10 business days to show them."),
    _Article("kb/returns/damaged-items.md", "Damaged or defective items", ("refund",),
             "If an item arrives damaged you are entitled to a full refund or a replacement. "
             "Items under $50 need not be sent back."),
    _Article("kb/shipping/tracking.md", "Tracking your order", ("order_status",),
             "Follow your parcel from Orders > Track. Tracking numbers become active within "
             "24 hours of shipping."),
    _Article("kb/shipping/delays.md", "Delayed deliveries", ("order_status", "escalation"),
             "Carrier delays are usually resolved within 3 business days. If an order is more "
             "than 5 days late, we reship or refund it."),
    _Article("kb/shipping/change-address.md", "Changing the delivery address", ("order_status",),
             "The address can be changed until the order ships. After that, ask the carrier "
             "for a redirect with your tracking number."),
    _Article("kb/account/change-email.md", "Changing your email address", ("account",),
             "Go to Account > Profile > Email, enter the new address and confirm the link we "
             "send to it. The old address gets a notice."),
    _Article("kb/account/password-reset.md", "Password reset emails", ("account",),
             "Reset emails come from no-reply@acme.example and expire after 30 minutes. Check "
             "spam, or ask support to resend them to a verified address."),
    _Article("kb/account/delete-account.md", "Deleting your account", ("account",),
             "Delete your account under Account > Privacy. Order records are kept for 7 years "
             "for tax purposes; everything else is erased within 30 days."),
    _Article("kb/products/restock.md", "Out-of-stock items", ("product",),
             "Use 'Notify me' on the product page to get an email when an item is back. Most "
             "items are restocked within 2-3 weeks."),
    _Article("kb/contact/human-support.md", "Talking to a person", ("escalation",),
             "Our support team answers weekdays 8:00-20:00 at support@acme.example or "
             "+1 800 555 0199."),
]  # fmt: skip

_ROUTER_PROMPT = (
    "Classify the customer's message. Reply with JSON: intent (order_status, refund, "
    "return_policy, product, account, escalation, smalltalk), order_id or null, language."
)


# --- Support conversations ------------------------------------------------------------------


@dataclass
class _Conversation:
    """What one customer's session shares across its turns."""

    session_id: str
    user_id: str
    channel: str
    env: str
    order_id: str
    item: tuple[str, str, str]
    color: str
    day: str
    custom_inputs: Json | None
    history: list[Json] = field(default_factory=list)

    def fill(self, template: str) -> str:
        return template.format(
            order=self.order_id, item=self.item[0], color=self.color, day=self.day
        )

    @property
    def tracking_number(self) -> str:
        return f"{_carrier(self)[1]}{int(self.order_id[1:]) * 7919:012d}"


def support_traces(
    versions: list[ModelVersion],
    *,
    experiment_id: int | str,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    count: int = DEFAULT_TRACE_COUNT,
) -> list[TracePayload]:
    """`count` traces of the support agent over the last 7 days, in sessions of 1-3 turns."""
    now = now or datetime.now(UTC)
    traces: list[TracePayload] = []
    session = 0
    while len(traces) < count:
        rng = random.Random(f"{seed}:session:{session}")
        traces.extend(_session(rng, versions, str(experiment_id), now))
        session += 1
    return traces[:count]


def _session(
    rng: random.Random, versions: list[ModelVersion], experiment_id: str, now: datetime
) -> list[TracePayload]:
    conversation = _Conversation(
        session_id=f"sess-{_hex(rng, 4)}",
        user_id=f"cust-{rng.randint(1000, 9999)}",
        channel=rng.choice(["web", "web", "app", "email"]),
        env="staging" if rng.random() < 0.15 else "prod",
        order_id=f"A{rng.randint(10000, 99999)}",
        item=rng.choice(_ITEMS),
        color=rng.choice(_COLORS),
        day=rng.choice(_DAYS),
        custom_inputs=None,
    )
    if rng.random() < 0.3:  # the playground's custom_inputs gear, or an API caller's
        tier = rng.choice(["gold", "silver", "basic"])
        conversation.custom_inputs = {"customer_tier": tier, "locale": "en-US"}
    start = now - timedelta(seconds=rng.uniform(20 * 60, 7 * 86_400))
    version = _version_at(rng, versions, start, conversation.env)
    traces = []
    for turn in range(rng.choices([1, 2, 3], weights=[60, 25, 15])[0]):
        intent, template = rng.choice(_FOLLOW_UPS if turn else _QUESTIONS)
        agent = _SupportAgent(rng, version, conversation, experiment_id)
        traces.append(agent.answer(_to_ns(start), intent, conversation.fill(template)))
        if traces[-1].info["state"] == "ERROR":
            break  # the customer gave up
        start += timedelta(seconds=rng.uniform(40, 240))
    return traces


def _version_at(
    rng: random.Random, versions: list[ModelVersion], at: datetime, env: str
) -> ModelVersion:
    # Staging runs a version as soon as it is logged; production half a day later.
    rollout = timedelta(0) if env == "staging" else timedelta(hours=12)
    live = [v for v in versions if v.created_at + rollout <= at] or versions[:1]
    if len(live) > 1 and rng.random() < 0.1:  # a canary slice still on the previous version
        return live[-2]
    return live[-1]


# Where the simulated agent can fail, and how (exception type, message).
_FAILURES = {
    "retriever": (
        "qdrant_client.http.exceptions.ResponseHandlingException",
        "[Errno 111] Connection refused: http://qdrant:6333/collections/helpcenter/points/search",
    ),
    "lookup_order": ("TimeoutError", "orders-api did not answer within 5.0 s"),
    "compose_answer": (
        "openai.RateLimitError",
        "Error code: 429 - Rate limit reached in organization org-acme on tokens per min "
        "(TPM): Limit 30000, Used 29412, Requested 1850.",
    ),
    "escalate_to_human": (
        "pydantic_core.ValidationError",
        "1 validation error for EscalationRequest\nreason\n  Field required [type=missing]",
    ),
}


class _SupportAgent:
    """One turn of the simulated support agent, laid out on a nanosecond clock.

    Each step takes the time it starts and returns the time it ends, so children lie within
    their parents. A failure is a `_Failure` raised inside a span: it marks that span and
    every ancestor it unwinds through as ERROR, as a real exception would.
    """

    def __init__(
        self,
        rng: random.Random,
        version: ModelVersion,
        conversation: _Conversation,
        experiment_id: str,
    ) -> None:
        self.rng = rng
        self.version = version
        self.conversation = conversation
        self.experiment_id = experiment_id
        self.trace = _TraceBuilder(rng)
        self.intent = ""
        self.failure_point = ""
        self.sources: list[str] = []
        self.results: Json = {}  # tool name -> result

    def answer(self, start_ns: int, intent: str, question: str) -> TracePayload:
        user_message = {"role": "user", "content": question}
        messages = [*self.conversation.history, user_message]
        inputs: Json = {"messages": messages}
        if self.conversation.custom_inputs:
            inputs["custom_inputs"] = self.conversation.custom_inputs
        self.intent = intent
        self.failure_point = self._pick_failure(intent)
        answer = None
        start_ns += self.rng.randint(0, 999_999)  # clocks are not millisecond-aligned
        try:
            with self.trace.span(
                "support_agent", "AGENT", start_ns, inputs, **{"mlflow.spanFunctionName": "predict"}
            ) as root:
                end, answer = self._steps(start_ns + self._ms(0.3, 2), intent, messages)
                root.finish(end + self._ms(0.2, 1.5), self._outputs(answer, intent))
        except _Failure:
            answer = None
        else:
            self.conversation.history += [user_message, {"role": "assistant", "content": answer}]
        return self._payload(question, answer)

    def _pick_failure(self, intent: str) -> str:
        if intent == "smalltalk" or self.rng.random() >= self.version.error_rate:
            return ""
        tools = {name for names in self._tool_rounds(intent) for name in names}
        return self.rng.choice(["retriever", "compose_answer", *(tools & _FAILURES.keys())])

    def _steps(self, t: int, intent: str, messages: list[Json]) -> tuple[int, str]:
        question = messages[-1]["content"]
        t = self._plan(t, question, intent)
        context: list[Json] = []
        if intent != "smalltalk":
            t, context = self._retrieve(t + self._ms(0.1, 1), question)
        chat = [self._system_message(context), *messages]
        for names in self._tool_rounds(intent):
            t, request = self._choose_tools(t + self._ms(0.1, 1), chat, names)
            t, replies = self._run_tools(t + self._ms(0.1, 1), request["tool_calls"])
            chat += [request, *replies]
        answer = _ANSWERS[intent](self, question)
        t = self._llm("compose_answer", t + self._ms(0.1, 1), chat, content=answer)
        if "judge" in self.version.model_config:
            t = self._review(t + self._ms(0.1, 1), question, answer, context)
        return t, answer

    # -- steps

    def _plan(self, t: int, question: str, intent: str) -> int:
        with self.trace.span("plan", "CHAIN", t, {"question": question}) as plan:
            order_id = self.conversation.order_id
            decision = {
                "intent": intent,
                "order_id": order_id if order_id in question else None,
                "language": "zh" if _has_cjk(question) else "en",
            }
            messages = [
                {"role": "system", "content": _ROUTER_PROMPT},
                {"role": "user", "content": question},
            ]
            end = self._llm(
                "classify_intent", t + self._ms(0.05, 0.5), messages,
                content=json.dumps(decision), model="gpt-4o-mini", temperature=0.0,
            )  # fmt: skip
            return plan.finish(end + self._ms(0.05, 0.4), decision)

    def _retrieve(self, t: int, query: str) -> tuple[int, list[Json]]:
        config = self.version.model_config["retriever"]
        top_k = config["top_k"]
        if self.version.version == 1:  # v1 searched the help center directly, in one span
            inputs = {"query": query, "top_k": top_k}
            with self.trace.span("search_help_center", "RETRIEVER", t, inputs) as search:
                self._maybe_fail("retriever", t + self._ms(30, 120))
                docs = self._documents(query, top_k)
                return search.finish(t + self._ms(60, 250), docs), docs
        with self.trace.span("retrieve_context", "CHAIN", t, {"query": query}) as chain:
            t = self._embed(t + self._ms(0.05, 0.3), query)
            fetch = top_k * 3 if config["rerank"] else top_k  # rerankers want a wider net
            inputs = {"query": query, "top_k": fetch, "index": config["index"]}
            t += self._ms(0.05, 0.3)
            with self.trace.span("vector_search", "RETRIEVER", t, inputs) as search:
                self._maybe_fail("retriever", search.start_ns + self._ms(30, 120))
                docs = self._documents(query, fetch)
                t = search.finish(search.start_ns + self._ms(30, 160), docs)
            if config["rerank"]:
                t, docs = self._rerank(t + self._ms(0.05, 0.3), query, docs, top_k)
            return chain.finish(t + self._ms(0.05, 0.5), docs), docs

    def _embed(self, t: int, query: str) -> int:
        model = {"embedding.model": "text-embedding-3-small"}
        with self.trace.span("embed_query", "EMBEDDING", t, {"input": query}, **model) as embed:
            return embed.finish(t + self._ms(18, 70), {"dimensions": 1536})

    def _rerank(self, t: int, query: str, docs: list[Json], top_k: int) -> tuple[int, list[Json]]:
        inputs = {"query": query, "documents": len(docs), "top_n": top_k}
        with self.trace.span("rerank", "RERANKER", t, inputs) as rerank:
            return rerank.finish(t + self._ms(80, 260), docs[:top_k]), docs[:top_k]

    def _tool_rounds(self, intent: str) -> list[list[str]]:
        """The tools the model calls, round by round; calls in one round run in parallel."""
        tools = self.version.tools
        rounds = {
            "order_status": [["lookup_order"], ["track_shipment"]],
            "refund": [["lookup_order", "refund_policy"], ["create_ticket"]],
            "product": [["check_inventory"]],
            "escalation": [["escalate_to_human"]]
            if "escalate_to_human" in tools
            else [["create_ticket"]],
        }.get(intent, [])
        kept = [[name for name in names if name in tools] for names in rounds]
        return [names for names in kept if names]

    def _choose_tools(self, t: int, chat: list[Json], names: list[str]) -> tuple[int, Json]:
        calls = [
            {
                "id": f"call_{_alnum(self.rng, 24)}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(self._tool_arguments(name))},
            }
            for name in names
        ]
        schemas = [_tool_schema(name) for name in self.version.tools]
        end = self._llm("choose_tools", t, chat, tool_calls=calls, tools=schemas)
        return end, {"role": "assistant", "content": None, "tool_calls": calls}

    def _run_tools(self, t: int, calls: list[Json]) -> tuple[int, list[Json]]:
        if len(calls) == 1:
            end = self._tool(t, calls[0])
        else:  # the agent runs a round's calls concurrently, under one chain
            names = [call["function"]["name"] for call in calls]
            with self.trace.span("execute_tools", "CHAIN", t, {"tool_calls": names}) as chain:
                ends = [self._tool(t + self._ms(0.05, 0.8), call) for call in calls]
                end = chain.finish(max(ends) + self._ms(0.05, 0.5), {"completed": len(calls)})
        replies = [
            {
                "role": "tool",
                "tool_call_id": call["id"],
                "content": json.dumps(self.results[call["function"]["name"]]),
            }
            for call in calls
        ]
        return end, replies

    def _tool(self, t: int, call: Json) -> int:
        name = call["function"]["name"]
        arguments = json.loads(call["function"]["arguments"])
        attributes = {"mlflow.spanFunctionName": name, "tool.call_id": call["id"]}
        try:
            with self.trace.span(name, "TOOL", t, arguments, **attributes) as span:
                if _TOOLS[name].http:
                    end = self._http_call(t + self._ms(0.2, 2), name, arguments)
                else:
                    self._maybe_fail(name, t + self._ms(2, 15))
                    end = t + self._ms(*_TOOLS[name].latency_ms)
                result = _TOOLS[name].result(self.rng, self.conversation, arguments)
                self.results[name] = result
                return span.finish(end + self._ms(0.1, 2), result)
        except _Failure as failure:
            if failure.exc_type != "CarrierAPIError":
                raise
            # The agent catches this one: the span shows the error, the answer goes on.
            self.results[name] = {"error": failure.message}
            return failure.end_ns

    def _http_call(self, t: int, tool: str, arguments: Json) -> int:
        method, url = _TOOLS[tool].http
        url = url.format(**arguments)
        attributes = {"http.method": method, "http.url": url}
        with self.trace.span(f"{method} {url}", "UNKNOWN", t, None, **attributes) as http:
            self._maybe_fail(tool, t + 5_000 * MS)  # the client's timeout
            if tool == "track_shipment" and self.rng.random() < 0.25:
                http.attributes["http.status_code"] = 404
                at_ns = t + self._ms(150, 400)
                raise _Failure("CarrierAPIError", "404: tracking number not active yet", at_ns)
            http.attributes["http.status_code"] = 200
            return http.finish(t + self._ms(*_TOOLS[tool].latency_ms), {"status": 200})

    def _review(self, t: int, question: str, answer: str, context: list[Json]) -> int:
        """v3's judge (the oracle/judge pattern): a second model checks the draft answer."""
        judge = self.version.model_config["judge"]
        with self.trace.span("review_answer", "GUARDRAIL", t, {"answer": answer}) as review:
            verdict = {"verdict": "pass", "issues": []}
            sources = [d["metadata"]["doc_uri"] for d in context]
            draft = {"question": question, "draft": answer, "context": sources}
            messages = [
                {"role": "system", "content": judge["instruction"]},
                {"role": "user", "content": json.dumps(draft, ensure_ascii=False)},
            ]
            end = self._llm(
                "judge", t + self._ms(0.1, 0.5), messages, content=json.dumps(verdict),
                model=judge["endpoint"], temperature=judge["temperature"],
            )  # fmt: skip
            return review.finish(end + self._ms(0.05, 0.3), verdict)

    def _llm(
        self,
        name: str,
        t: int,
        messages: list[Json],
        *,
        content: str | None = None,
        tool_calls: list[Json] | None = None,
        tools: list[Json] | None = None,
        model: str | None = None,
        temperature: float | None = None,
    ) -> int:
        config = self.version.model_config["llm"]
        model = model or config["endpoint"]
        inputs: Json = {
            "messages": messages,
            "model": model,
            "temperature": config["temperature"] if temperature is None else temperature,
            "max_tokens": config["max_tokens"],
        }
        if tools:
            inputs["tools"] = tools
        usage = _usage(_count_tokens(inputs), _count_tokens(content or tool_calls))
        attributes: Json = {"mlflow.chat.tokenUsage": usage, "mlflow.message.format": "openai"}
        if tools:
            attributes["mlflow.chat.tools"] = tools
        with self.trace.span(name, "LLM", t, inputs, **attributes) as span:
            self._maybe_fail(name, t + self._ms(80, 400))
            outputs = _completion(self.rng, model, t, content, tool_calls, usage)
            return span.finish(t + self._llm_latency(model, usage), outputs)

    def _llm_latency(self, model: str, usage: dict[str, int]) -> int:
        # Time to first token grows with the prompt; then a steady rate per output token.
        per_token_ms = 20 if model == "gpt-4o" else 10
        ms = 150 + usage["input_tokens"] * 0.05 + usage["output_tokens"] * per_token_ms
        return int(ms * self.rng.uniform(0.8, 1.4) * self.version.latency_scale * MS)

    # -- content

    def _documents(self, query: str, n: int) -> list[Json]:
        """The articles of the question's intent first, the closest match to it first."""
        words = _words(query)
        relevant = [a for a in _ARTICLES if self.intent in a.intents]
        relevant.sort(key=lambda article: -len(words & _words(article.text)))
        others = [a for a in _ARTICLES if self.intent not in a.intents]
        self.rng.shuffle(others)
        chosen = (relevant + others)[:n]
        self.sources = [a.uri for a in chosen[:2]]
        score = self.rng.uniform(0.82, 0.93)
        docs = []
        for article in chosen:
            docs.append(_document(article, score))
            score -= self.rng.uniform(0.02, 0.12)
        return docs

    def _system_message(self, context: list[Json]) -> Json:
        prompt = self.version.model_config["system_prompt"]
        if context:
            articles = "\n\n".join(
                f"{d['metadata']['title']}: {d['page_content']}" for d in context
            )
            prompt = f"{prompt}\n\nArticles:\n{articles}"
        return {"role": "system", "content": prompt}

    def _tool_arguments(self, name: str) -> Json:
        conv = self.conversation
        return {
            "lookup_order": {"order_id": conv.order_id},
            "track_shipment": {"tracking_number": conv.tracking_number},
            "refund_policy": {"category": conv.item[1]},
            "create_ticket": {"order_id": conv.order_id, "reason": "refund_request"},
            "check_inventory": {"sku": conv.item[2], "color": conv.color},
            "escalate_to_human": {"conversation_id": conv.session_id, "priority": "high"},
        }[name]

    def _outputs(self, answer: str, intent: str) -> Json:
        """The agent's response: a chat completion, plus custom_outputs for the UI."""
        custom: Json = {"intent": intent, "sources": self.sources}
        if "ticket_id" in self.results.get("create_ticket", {}):
            custom["ticket_id"] = self.results["create_ticket"]["ticket_id"]
        return {
            "object": "chat.completion",
            "model": MODEL_NAME,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "custom_outputs": custom,
        }

    def _payload(self, question: str, answer: str | None) -> TracePayload:
        conv, version = self.conversation, self.version
        spans = self.trace.span_dicts()
        metadata = {
            "mlflow.modelId": version.model_id,
            "mlflow.trace.session": conv.session_id,
            "mlflow.trace.user": conv.user_id,
            "mlflow.user": "support-bot",
            "mlflow.source.name": "agent.py",
            "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": version.commit,
            "mlflow.source.git.branch": version.tags["mlflow.source.git.branch"],
            "mlflow.source.git.repoURL": REPO_URL,
            "mlflow.trace.sizeBytes": str(len(json.dumps({"spans": spans}))),
        }
        tags = {"session": conv.session_id, "env": conv.env, "channel": conv.channel}
        info = self.trace.info(self.experiment_id, metadata, tags)
        # The client previews the last user message; a failed trace has no response preview.
        info["request_preview"] = question
        if answer is not None:
            info["response_preview"] = answer
        return TracePayload(info=info, spans=spans)

    def _maybe_fail(self, point: str, at_ns: int) -> None:
        if self.failure_point == point:
            raise _Failure(*_FAILURES[point], at_ns)

    def _ms(self, low: float, high: float) -> int:
        return _rand_ms(self.rng, low, high)


# --- Tools ----------------------------------------------------------------------------------


def _lookup_order(rng: random.Random, conv: _Conversation, arguments: Json) -> Json:
    name, _, sku = conv.item
    return {
        "order_id": conv.order_id,
        "status": rng.choice(["shipped", "shipped", "delayed", "delivered"]),
        "items": [{"sku": sku, "name": name, "qty": 1, "price": round(rng.uniform(19, 480), 2)}],
        "carrier": _carrier(conv)[0],
        "tracking_number": conv.tracking_number,
    }


def _track_shipment(rng: random.Random, conv: _Conversation, arguments: Json) -> Json:
    eta = f"in {rng.randint(1, 4)} days"
    return {"status": "in_transit", "last_scan": rng.choice(_HUBS), "estimated_delivery": eta}


def _refund_policy(rng: random.Random, conv: _Conversation, arguments: Json) -> Json:
    window = 15 if arguments["category"] == "electronics" else 30
    return {"category": arguments["category"], "window_days": window, "restocking_fee": "0%"}


def _create_ticket(rng: random.Random, conv: _Conversation, arguments: Json) -> Json:
    return {"ticket_id": f"SUP-{rng.randint(40000, 59999)}", "queue": "refunds", "sla_hours": 24}


def _check_inventory(rng: random.Random, conv: _Conversation, arguments: Json) -> Json:
    quantity = rng.choice([0, 0, 3, 12, 40])
    restock = None if quantity else rng.randint(5, 21)
    return {**arguments, "in_stock": quantity > 0, "quantity": quantity, "restock_days": restock}


def _escalate_to_human(rng: random.Random, conv: _Conversation, arguments: Json) -> Json:
    return {
        "handoff_id": f"HO-{_hex(rng, 3)}",
        "queue": "tier-2",
        "wait_minutes": rng.randint(2, 15),
    }


@dataclass(frozen=True)
class _Tool:
    description: str
    latency_ms: tuple[float, float]
    result: Callable[[random.Random, _Conversation, Json], Json]
    http: tuple[str, str] | None = None  # the request it makes, shown as a child span


_TOOLS = {
    "lookup_order": _Tool(
        "Look up an order by id: status, items, carrier and tracking number.",
        (40, 300), _lookup_order, ("GET", "http://orders-api/v2/orders/{order_id}"),
    ),
    "track_shipment": _Tool(
        "Where a parcel is now and when it should arrive.",
        (200, 900), _track_shipment, ("GET", "https://carrier-gw.acme.internal/track/{tracking_number}"),
    ),
    "refund_policy": _Tool("The refund policy of a product category.", (3, 25), _refund_policy),
    "create_ticket": _Tool(
        "Open a support ticket for a human to follow up by email.",
        (150, 500), _create_ticket, ("POST", "https://acme.zendesk.com/api/v2/tickets"),
    ),
    "check_inventory": _Tool("Stock of a product in a colour.", (30, 120), _check_inventory),
    "escalate_to_human": _Tool("Hand over to a person now.", (100, 400), _escalate_to_human),
}  # fmt: skip


def _tool_schema(name: str) -> Json:
    """The OpenAI function-calling schema the agent sends with its tool-choosing calls."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": _TOOLS[name].description,
            "parameters": {"type": "object", "additionalProperties": True},
        },
    }


# --- Answers, by intent ---------------------------------------------------------------------


def _order_answer(agent: _SupportAgent, question: str) -> str:
    conv, order = agent.conversation, agent.results.get("lookup_order", {})
    if _has_cjk(question) and "customer's language" in agent.version.model_config["system_prompt"]:
        return (
            f"您的订单 {conv.order_id} 已由 {order.get('carrier', '快递')} 发出,预计 1-4 天内送达。"
        )
    if not order:
        return f"I can't look orders up yet; track {conv.order_id} under Orders > Track."
    text = (
        f"Your order {conv.order_id} ({conv.item[0]}) is {order['status']} with {order['carrier']}."
    )
    shipment = agent.results.get("track_shipment", {})
    if "last_scan" in shipment:
        text += f" It was last scanned in {shipment['last_scan']}"
        return text + f" and should arrive {shipment['estimated_delivery']}."
    return text + f" Tracking number: {order['tracking_number']}."


def _refund_answer(agent: _SupportAgent, question: str) -> str:
    window = agent.results.get("refund_policy", {}).get("window_days", 30)
    text = (
        f"I'm sorry about the {agent.conversation.item[0]}. It's within the {window}-day window, "
        "so you qualify for a full refund to your original payment method."
    )
    ticket = agent.results.get("create_ticket", {}).get("ticket_id")
    return (
        f"{text} I've opened ticket {ticket}; we'll email you within 24 hours." if ticket else text
    )


def _product_answer(agent: _SupportAgent, question: str) -> str:
    item, color = agent.conversation.item[0], agent.conversation.color
    stock = agent.results.get("check_inventory")
    if not stock:
        return f"I can't see live stock, but the {item} page shows it; 'Notify me' emails you."
    if stock["in_stock"]:
        return f"Good news: the {item} in {color} is in stock ({stock['quantity']} left)."
    return (
        f"The {item} in {color} is sold out; we expect more in about {stock['restock_days']} days."
    )


def _escalation_answer(agent: _SupportAgent, question: str) -> str:
    if handoff := agent.results.get("escalate_to_human"):
        return (
            "I'm sorry for the trouble. A colleague is taking over this conversation "
            f"(reference {handoff['handoff_id']}); the wait is about {handoff['wait_minutes']} min."
        )
    if ticket := agent.results.get("create_ticket", {}).get("ticket_id"):
        return f"I've opened ticket {ticket} so that a colleague follows up by email."
    return "I understand. You can reach a person at support@acme.example or +1 800 555 0199."


def _article_answer(agent: _SupportAgent, question: str) -> str:
    article = next(a for a in _ARTICLES if a.uri == agent.sources[0])
    return f'{article.text} (See "{article.title}" in the help center.)'


_ANSWERS: dict[str, Callable[[_SupportAgent, str], str]] = {
    "order_status": _order_answer,
    "refund": _refund_answer,
    "product": _product_answer,
    "escalation": _escalation_answer,
    "return_policy": _article_answer,
    "account": _article_answer,
    "smalltalk": lambda agent, question: "You're welcome! Have a great day.",
}


# --- The batch evaluation trace -------------------------------------------------------------

_EVAL_QUESTIONS = [
    "How long do I have to return a {item}?",
    "My {item} arrived damaged, what are my options?",
    "Where can I track the {item} I ordered?",
    "Is there a restocking fee for a {item}?",
    "Can I change the address after my {item} shipped?",
    "When will the {item} be back in stock?",
]
_EVAL_LANES = 8  # the evaluation job scores this many examples at once


def batch_evaluation_trace(
    rng: random.Random,
    *,
    experiment_id: int | str,
    start_ns: int,
    n_spans: int = BATCH_EVAL_SPANS,
    model_id: str = "",
) -> TracePayload:
    """A nightly evaluation job as one trace of exactly `n_spans` spans.

    The AGENT root scores examples on 8 lanes at once; each example is a CHAIN with retrieve
    (RETRIEVER), generate_answer (LLM) and score (EVALUATOR) children. About 1% of the
    answers hit a rate limit: those chains are ERROR and the job carries on.
    """
    if n_spans < 1:
        raise ValueError("A trace has at least one span.")
    trace = _TraceBuilder(rng)
    inputs: Json = {"dataset": "support-golden-v3", "concurrency": _EVAL_LANES}
    scores: list[float] = []
    examples = 0
    with trace.span("nightly_kb_eval", "AGENT", start_ns, inputs) as root:
        lanes = [start_ns + _rand_ms(rng, 1, 5)] * _EVAL_LANES  # when each lane is free
        # A failed example has no score span, so count spans rather than examples.
        while len(trace.spans) < n_spans:
            lane = lanes.index(min(lanes))
            try:
                lanes[lane], score = _evaluate_example(trace, rng, examples, lanes[lane])
                scores.append(score)
            except _Failure as failure:
                lanes[lane] = failure.end_ns
            examples += 1
        inputs["examples"] = examples
        outputs = {
            "evaluated": len(scores),
            "failed": examples - len(scores),
            "mean_score": round(sum(scores) / max(len(scores), 1), 4),
            "accuracy": round(sum(s >= 0.5 for s in scores) / max(len(scores), 1), 4),
        }
        root.finish(max(lanes) + _rand_ms(rng, 5, 40), outputs)
    metadata = {"mlflow.user": "ci", "mlflow.source.name": "evaluate.py"}
    if model_id:
        metadata["mlflow.modelId"] = model_id
    info = trace.info(str(experiment_id), metadata, {"env": "ci", "job": "nightly-eval"})
    info["request_preview"] = json.dumps(inputs)
    info["response_preview"] = json.dumps(outputs)
    # Spans are in pre-order, so cutting the list keeps every kept span's parent.
    return TracePayload(info=info, spans=trace.span_dicts()[:n_spans])


def _evaluate_example(
    trace: _TraceBuilder, rng: random.Random, example: int, t: int
) -> tuple[int, float]:
    item = _ITEMS[example % len(_ITEMS)][0]
    question = _EVAL_QUESTIONS[example % len(_EVAL_QUESTIONS)].format(item=item)
    article = _ARTICLES[example % len(_ARTICLES)]
    inputs = {"example_id": f"ex-{example:05d}", "question": question}
    with trace.span("evaluate_example", "CHAIN", t, inputs) as chain:
        t = _rand_ms(rng, 0.05, 0.3) + t
        with trace.span("retrieve", "RETRIEVER", t, {"query": question}) as retrieve:
            docs = [_document(article, rng.uniform(0.7, 0.95))]
            t = retrieve.finish(t + _rand_ms(rng, 20, 140), docs)
        answer = article.text.split(". ")[0] + "."
        t = _eval_llm(trace, rng, t + _rand_ms(rng, 0.05, 0.3), question, article, answer)
        score = round(min(1.0, max(0.0, rng.gauss(0.8, 0.18))), 3)
        inputs = {"answer": answer, "expected_source": article.uri}
        with trace.span("score", "EVALUATOR", t + _rand_ms(rng, 0.05, 0.3), inputs) as scorer:
            rationale = "Grounded in the cited article." if score >= 0.5 else "Misses the policy."
            verdict = {"score": score, "correct": score >= 0.5, "rationale": rationale}
            t = scorer.finish(scorer.start_ns + _rand_ms(rng, 2, 30), verdict)
        return chain.finish(t + _rand_ms(rng, 0.05, 0.5), {"score": score}), score


def _eval_llm(
    trace: _TraceBuilder, rng: random.Random, t: int, question: str, article: _Article, answer: str
) -> int:
    messages = [
        {"role": "system", "content": "Answer from the article only, in one sentence."},
        {"role": "user", "content": f"{article.text}\n\nQuestion: {question}"},
    ]
    inputs = {"messages": messages, "model": "gpt-4o-mini", "temperature": 0.0}
    usage = _usage(_count_tokens(inputs), _count_tokens(answer))
    attributes = {"mlflow.chat.tokenUsage": usage, "mlflow.message.format": "openai"}
    with trace.span("generate_answer", "LLM", t, inputs, **attributes) as llm:
        if rng.random() < 0.01:
            raise _Failure(*_FAILURES["compose_answer"], t + _rand_ms(rng, 50, 300))
        outputs = _completion(rng, "gpt-4o-mini", t, answer, None, usage)
        return llm.finish(t + _rand_ms(rng, 350, 1600), outputs)


# --- Small helpers --------------------------------------------------------------------------


def _document(article: _Article, score: float) -> Json:
    """A retrieved document as MLflow's RETRIEVER spans hold it."""
    metadata = {"doc_uri": article.uri, "title": article.title, "score": round(score, 3)}
    return {"page_content": article.text, "metadata": metadata, "id": article.uri.split("/")[-1]}


def _completion(
    rng: random.Random,
    model: str,
    t: int,
    content: str | None,
    tool_calls: list[Json] | None,
    usage: dict[str, int],
) -> Json:
    """An OpenAI chat-completion response, as the OpenAI client returns it."""
    message: Json = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    finish_reason = "tool_calls" if tool_calls else "stop"
    return {
        "id": f"chatcmpl-{_alnum(rng, 29)}",
        "object": "chat.completion",
        "created": t // 1_000_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": usage["input_tokens"],
            "completion_tokens": usage["output_tokens"],
            "total_tokens": usage["total_tokens"],
        },
    }


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    total = input_tokens + output_tokens
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": total}


def _count_tokens(value: Any) -> int:
    """About what a tokenizer counts: 4 characters a token in English, fewer for Chinese."""
    if value is None:
        return 0
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, math.ceil(len(text) / (4 if text.isascii() else 1.5)))


def _carrier(conversation: _Conversation) -> tuple[str, str]:
    return _CARRIERS[int(conversation.order_id[1:]) % len(_CARRIERS)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{4,}", text.lower()))


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)


def _truncate(text: str, limit: int = 250) -> str:
    """As the client truncates `mlflow.traceInputs` / `mlflow.traceOutputs`."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rand_ms(rng: random.Random, low: float, high: float) -> int:
    return int(rng.uniform(low, high) * MS)


def _nonzero_bytes(rng: random.Random, size: int) -> bytes:
    return (rng.getrandbits(size * 8) or 1).to_bytes(size, "big")  # all-zero ids are invalid


def _hex(rng: random.Random, size: int) -> str:
    return _nonzero_bytes(rng, size).hex()


def _alnum(rng: random.Random, size: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(size))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _to_ns(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _rfc3339(nanos: int) -> str:
    """A protobuf Timestamp as the mlflow client writes it: milliseconds and a Z."""
    moment = _EPOCH + timedelta(microseconds=nanos // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
