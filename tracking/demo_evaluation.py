"""Demo data for the evaluation loop: the `support-golden` dataset, an evaluation of each
support-agent version on it, and people's feedback on some of the week's traces.

Pure, like tracking/demo.py: the builders return the dataset's records as
`merge_records` takes them, each evaluation's traces as the client sends them (TraceInfoV3
and span dicts) and its assessments and metrics as plain descriptions, for
`manage.py demo_data` to store. They have the shapes `mlflow.genai.evaluate` leaves
(tracking/evaluations.py): a run tagged `mlflow.runType=genai_evaluate`, one trace per row
with `mlflow.sourceRun` and `mlflow.modelId` metadata, a feedback per scorer and an
expectation per record expectation with `mlflow.assessment.sourceRunId` metadata, and
`<scorer>/mean` metrics naming the dataset.

The rows' outcomes are written down, not drawn: v2 fixes most of v1's wrong answers, and v3
fixes three more (it answers in the customer's language, follows the address policy) but
breaks four that v2 got right (it hands simple questions to a human, mixes up return
windows), so comparing v2 with v3 shows regressions first. Ids derive from the seed as in
tracking/demo.py, so loading again finds the same rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tracking.demo import (
    MS,
    DemoData,
    Json,
    ModelVersion,
    TracePayload,
    _completion,
    _count_tokens,
    _hex,
    _rand_ms,
    _to_ns,
    _TraceBuilder,
    _usage,
)
from tracking.evaluations import SOURCE_RUN_KEY

DATASET_NAME = "support-golden"
SCORERS = ("correctness", "is_concise", "relevance_to_query")
JUDGE_ID = "openai:/gpt-4o-mini"  # the judges' model, as MLflow's built-in judges name it
CONCISE_WORDS = 25
DATASET_AGE = timedelta(days=2)
EVALUATED_AGO = timedelta(hours=5)
_RUN_GAP = timedelta(minutes=12)  # the versions were evaluated one after another

_ESCALATION = (
    "I'm sorry for the trouble. A colleague is taking over this conversation; the wait is "
    "about 8 minutes."
)
_FALLBACK = "I'm not sure about that. Please write to support@acme.example and we'll help."


@dataclass(frozen=True)
class _Case:
    question: str
    expected: str
    wrong: str  # what a version that gets it wrong answers
    why_wrong: str  # the correctness judge's rationale for that answer
    outcome: str  # one letter per version: P answers as expected, F answers `wrong`
    custom_inputs: Json | None = None
    wrong_is_relevant: bool = True


_CASES = [
    _Case("How long do I have to return wireless headphones?",
          "Electronics such as wireless headphones can be returned within 15 days of delivery, "
          "unused and in their original packaging.",
          "You can return any item within 30 days of delivery.",
          "The response gives the general 30-day window; electronics have 15 days.", "FPP"),
    _Case("Do I need the original box to return something?",
          "Yes. Items must be unused and in their original packaging to be returned.",
          "No, you can send it back in any box.",
          "The response contradicts the policy: the original packaging is required.", "PPP"),
    _Case("My espresso machine arrived damaged. What are my options?",
          "You are entitled to a full refund or a replacement. Items under $50 need not be "
          "sent back.",
          _ESCALATION,
          "The response hands the customer to a person instead of offering a refund or a "
          "replacement.", "PPF", wrong_is_relevant=False),
    _Case("When will my refund show up on my card?",
          "Refunds reach your original payment method within 2 business days of the return "
          "arriving at our warehouse; banks take 5-10 business days to show them.",
          "Refunds are instant once approved.",
          "The response claims refunds are instant; they take 2 business days plus the bank's "
          "5-10.", "FPP"),
    _Case("How do I change the email address on my account?",
          "Go to Account > Profile > Email, enter the new address and confirm the link we send "
          "to it.",
          "Email addresses can't be changed; please create a new account.",
          "The response says the email cannot be changed; it can, under Account > Profile.",
          "PPP"),
    _Case("I forgot my password and the reset email never arrives.",
          "Reset emails come from no-reply@acme.example and expire after 30 minutes. Check "
          "spam, or ask support to resend them to a verified address.",
          _ESCALATION,
          "The response escalates instead of pointing to the spam folder and the resend "
          "option.", "PPF", wrong_is_relevant=False),
    _Case("Can I delete my account and all my data?",
          "Yes, under Account > Privacy. Order records are kept for 7 years for tax purposes; "
          "everything else is erased within 30 days.",
          "Yes, everything is erased immediately.",
          "The response misses that order records are kept for 7 years.", "PFP"),
    _Case("Can I change the delivery address after my order shipped?",
          "Not once it has shipped: ask the carrier for a redirect with your tracking number.",
          "Yes, update it under Orders > Edit address.",
          "The response says the address can be edited after shipping; only the carrier can "
          "redirect it.", "FFP"),
    _Case("Where can I track my order?",
          "Follow your parcel from Orders > Track. Tracking numbers become active within 24 "
          "hours of shipping.",
          _FALLBACK,
          "The response does not say where to track the order.", "PPP",
          wrong_is_relevant=False),
    _Case("My order is a week late. What happens now?",
          "Carrier delays usually clear within 3 business days; if an order is more than 5 "
          "days late, we reship or refund it.",
          "Delays happen; please wait a few more days.",
          "The response misses that an order over 5 days late is reshipped or refunded.",
          "FPP"),
    _Case("When will the standing desk be back in stock?",
          "Most items are restocked within 2-3 weeks; use 'Notify me' on the product page to "
          "get an email when it is back.",
          "I can't see stock levels, sorry.",
          "The response gives neither the restock time nor the 'Notify me' option.", "FPP",
          custom_inputs={"customer_tier": "gold", "locale": "en-US"}),
    _Case("I want to talk to a person.",
          "Our support team answers weekdays 8:00-20:00 at support@acme.example or "
          "+1 800 555 0199.",
          "I can help you with that myself! What is your question?",
          "The customer asked for a person; the response does not say how to reach one.",
          "PPP", wrong_is_relevant=False),
    _Case("我的订单什么时候能到?",
          "您可以在「订单 > 跟踪」中查看包裹;发货后 24 小时内即可查询物流单号。",
          "Follow your parcel from Orders > Track.",
          "The customer wrote in Chinese; the response is in English.", "FFP",
          custom_inputs={"customer_tier": "silver", "locale": "zh-CN"}),
    _Case("Is there a restocking fee for a smartwatch?",
          "No, there is no restocking fee; electronics can be returned within 15 days.",
          "Yes, there is a 15% restocking fee.",
          "The response invents a restocking fee.", "PPP"),
    _Case("The running shoes don't fit. Can I return them?",
          "Yes: apparel can be returned within 30 days of delivery if unused and in the "
          "original packaging.",
          "Apparel can be returned within 15 days of delivery.",
          "The response gives the 15-day electronics window; apparel has 30 days.", "PPF",
          custom_inputs={"customer_tier": "silver", "locale": "en-US"}),
    _Case("Do you ship to Canada?",
          "The help center does not cover international shipping; please ask "
          "support@acme.example.",
          "Yes, we ship to Canada within 5-7 days.",
          "The response states shipping terms the help center does not have.", "FPF"),
]  # fmt: skip

# The outcomes of the records taken from the week's traces (their own answers expected).
_TRACE_OUTCOMES = ["PPP", "FPP", "PPP", "FPP", "PPP", "PPP", "FPP", "PPP"]


@dataclass(frozen=True)
class Record:
    """One dataset record, as `EvaluationDataset.merge_records` takes it."""

    inputs: Json
    expectations: Json
    source: Json
    tags: dict[str, str]
    # Not stored: how each version answers it (see _Case).
    wrong: str
    why_wrong: str
    outcome: str
    wrong_is_relevant: bool

    def as_dict(self) -> Json:
        return {
            "inputs": self.inputs,
            "expectations": self.expectations,
            "source": self.source,
            "tags": self.tags,
        }


@dataclass(frozen=True)
class AssessmentData:
    """A feedback or expectation on a trace, with the id it always gets."""

    assessment_id: str
    trace_id: str
    span_id: str  # hex, or "" for the whole trace
    name: str
    kind: str  # feedback or expectation
    value: Any
    rationale: str
    source_type: str
    source_id: str
    metadata: dict[str, str]
    created_at: datetime


@dataclass(frozen=True)
class Evaluation:
    """One version's evaluation run on the dataset."""

    version: ModelVersion
    run_id: str
    run_name: str
    start: datetime
    end: datetime
    traces: list[TracePayload]
    assessments: list[AssessmentData]
    metrics: dict[str, float]  # `<scorer>/mean`


@dataclass(frozen=True)
class EvaluationDemo:
    dataset_id: str
    created_at: datetime
    records: list[Record]
    evaluations: list[Evaluation]  # one per version, oldest version first
    feedback: list[AssessmentData]  # people's, on the week's support traces


def build(data: DemoData, *, experiment_id: int | str, seed: int, now: datetime) -> EvaluationDemo:
    """The evaluation demo for the support-agent demo `data` (from tracking.demo.build)."""
    created = now - DATASET_AGE
    records = golden_records(data, created)
    evaluations = [
        _evaluate(version, records, str(experiment_id), seed, now - EVALUATED_AGO + i * _RUN_GAP)
        for i, version in enumerate(data.versions)
    ]
    rng = random.Random(f"{seed}:dataset")
    return EvaluationDemo(
        dataset_id=f"d-{_hex(rng, 16)}",
        created_at=created,
        records=records,
        evaluations=evaluations,
        feedback=user_feedback(data, seed),
    )


# --- The dataset ----------------------------------------------------------------------------


def golden_records(data: DemoData, before: datetime) -> list[Record]:
    """The hand-written cases, then questions taken from first turns of the week's traces
    made before the dataset (their answers offered as expectations, as "Add to dataset"
    does)."""
    records = [
        Record(
            inputs=_inputs(case.question, case.custom_inputs),
            expectations={"expected_response": case.expected},
            source={"source_type": "HUMAN", "source_data": {"source_id": "maria"}},
            tags={"mlflow.user": "maria", "topic": "handbook"},
            wrong=case.wrong,
            why_wrong=case.why_wrong,
            outcome=case.outcome,
            wrong_is_relevant=case.wrong_is_relevant,
        )
        for case in _CASES
    ]
    cutoff = before.isoformat()[:19]
    seen = {case.question for case in _CASES}
    for payload in data.traces:
        if len(records) == len(_CASES) + len(_TRACE_OUTCOMES):
            break
        root_inputs = json.loads(payload.spans[0]["attributes"]["mlflow.spanInputs"])
        question = payload.info.get("request_preview", "")
        answer = payload.info.get("response_preview")
        if (
            payload.info["state"] != "OK"
            or answer is None
            or len(root_inputs["messages"]) != 1  # a first turn stands on its own
            or payload.info["request_time"][:19] >= cutoff
            or question in seen
        ):
            continue
        seen.add(question)
        records.append(
            Record(
                inputs=_inputs(question, root_inputs.get("custom_inputs")),
                expectations={"expected_response": answer},
                source={"source_type": "TRACE", "source_data": {"trace_id": payload.trace_id}},
                tags={"mlflow.user": "maria", "topic": "production"},
                wrong=_FALLBACK,
                why_wrong="The response does not answer the question.",
                outcome=_TRACE_OUTCOMES[len(records) - len(_CASES)],
                wrong_is_relevant=False,
            )
        )
    return records


def _inputs(question: str, custom_inputs: Json | None) -> Json:
    return {"question": question, **({"custom_inputs": custom_inputs} if custom_inputs else {})}


# --- Evaluation runs ------------------------------------------------------------------------


def _evaluate(
    version: ModelVersion, records: list[Record], experiment_id: str, seed: int, start: datetime
) -> Evaluation:
    rng = random.Random(f"{seed}:evaluation:{version.version}")
    run_id = _hex(rng, 16)
    run_name = f"eval-support-golden-v{version.version}"
    traces, assessments = [], []
    sums = dict.fromkeys(SCORERS, 0.0)
    t = _to_ns(start) + _rand_ms(rng, 800, 2000)
    for index, record in enumerate(records):
        passed = record.outcome[version.version - 1] == "P"
        answer = record.expectations["expected_response"] if passed else record.wrong
        payload = _row_trace(rng, version, experiment_id, run_id, t, record.inputs, answer)
        traces.append(payload)
        scores = _scores(record, answer, passed)
        for name, value in scores.items():
            sums[name] += 1.0 if value in (True, "yes") else 0.0
        assessments += _row_assessments(seed, version, run_id, index, payload, record, scores)
        t += _rand_ms(rng, 300, 1200)  # the client evaluates a few rows at once
    end_ns = max(_span_end(p) for p in traces)
    return Evaluation(
        version=version,
        run_id=run_id,
        run_name=run_name,
        start=start,
        end=start + timedelta(microseconds=(end_ns - _to_ns(start)) // 1000 + 1_500_000),
        traces=traces,
        assessments=assessments,
        metrics={f"{name}/mean": total / len(records) for name, total in sums.items()},
    )


def _scores(record: Record, answer: str, passed: bool) -> dict[str, Any]:
    """What the three scorers say: two judges answering yes/no, and a code scorer."""
    return {
        "correctness": "yes" if passed else "no",
        "relevance_to_query": "yes" if passed or record.wrong_is_relevant else "no",
        "is_concise": len(answer.split()) <= CONCISE_WORDS,
    }


def _rationale(name: str, record: Record, value: Any) -> str:
    if name == "correctness":
        if value == "yes":
            return "The response states the facts of the expected response."
        return record.why_wrong
    if name == "relevance_to_query":
        if value == "yes":
            return "The response addresses the customer's question."
        return "The response does not address what the customer asked."
    return ""  # a code scorer gives no rationale


def _row_trace(
    rng: random.Random,
    version: ModelVersion,
    experiment_id: str,
    run_id: str,
    t: int,
    inputs: Json,
    answer: str,
) -> TracePayload:
    """The trace `predict_fn(**inputs)` leaves: the agent's root span with the record's
    inputs (so rows match across runs by them) and the answer, a retrieval and one LLM call."""
    trace = _TraceBuilder(rng)
    llm = version.model_config["llm"]
    with trace.span(
        "predict", "AGENT", t, inputs, **{"mlflow.spanFunctionName": "predict"}
    ) as root:
        t += _rand_ms(rng, 0.3, 2)
        query = {"query": inputs["question"], "top_k": version.model_config["retriever"]["top_k"]}
        with trace.span("retrieve_context", "RETRIEVER", t, query) as retrieve:
            t = retrieve.finish(t + int(_rand_ms(rng, 40, 220) * version.latency_scale), [])
        messages = [
            {"role": "system", "content": version.model_config["system_prompt"]},
            {"role": "user", "content": inputs["question"]},
        ]
        request = {
            "messages": messages,
            "model": llm["endpoint"],
            "temperature": llm["temperature"],
        }
        usage = _usage(_count_tokens(request), _count_tokens(answer))
        attributes = {"mlflow.chat.tokenUsage": usage, "mlflow.message.format": "openai"}
        with trace.span("compose_answer", "LLM", t + MS // 5, request, **attributes) as call:
            per_token_ms = 20 if llm["endpoint"] == "gpt-4o" else 10
            ms = (150 + usage["output_tokens"] * per_token_ms) * rng.uniform(0.8, 1.3)
            took = int(ms * version.latency_scale * MS)
            completion = _completion(rng, llm["endpoint"], t, answer, None, usage)
            t = call.finish(call.start_ns + took, completion)
        root.finish(t + _rand_ms(rng, 0.2, 1.5), answer)
    metadata = {
        "mlflow.sourceRun": run_id,
        "mlflow.modelId": version.model_id,
        "mlflow.user": "maria",
        "mlflow.source.name": "evaluate.py",
        "mlflow.source.type": "LOCAL",
    }
    info = trace.info(experiment_id, metadata, {})
    info["request_preview"] = json.dumps(inputs, ensure_ascii=False)
    info["response_preview"] = answer
    return TracePayload(info=info, spans=trace.span_dicts())


def _row_assessments(
    seed: int,
    version: ModelVersion,
    run_id: str,
    index: int,
    payload: TracePayload,
    record: Record,
    scores: dict[str, Any],
) -> list[AssessmentData]:
    span_id = base64.b64decode(payload.spans[0]["span_id"]).hex()  # the client's is base64
    end = _moment(_span_end(payload))
    metadata = {SOURCE_RUN_KEY: run_id}
    found = []
    for offset, (name, value) in enumerate(scores.items(), start=1):
        judge = name != "is_concise"
        found.append(
            AssessmentData(
                assessment_id=_assessment_id(seed, f"eval:{version.version}:{index}:{name}"),
                trace_id=payload.trace_id,
                span_id=span_id,
                name=name,
                kind="feedback",
                value=value,
                rationale=_rationale(name, record, value),
                source_type="LLM_JUDGE" if judge else "CODE",
                source_id=JUDGE_ID if judge else name,
                metadata=metadata,
                created_at=end + timedelta(milliseconds=400 * offset),
            )
        )
    for name, value in record.expectations.items():
        found.append(
            AssessmentData(
                assessment_id=_assessment_id(seed, f"eval:{version.version}:{index}:{name}"),
                trace_id=payload.trace_id,
                span_id=span_id,
                name=name,
                kind="expectation",
                value=value,
                rationale="",
                source_type="HUMAN",
                source_id="maria",
                metadata=metadata,
                created_at=end + timedelta(milliseconds=100),
            )
        )
    return found


# --- People's feedback on the week's traces -------------------------------------------------


def user_feedback(data: DemoData, seed: int) -> list[AssessmentData]:
    """Thumbs up or down from the customer on about one trace in five, as an app logs them
    with `mlflow.log_feedback(name="user_satisfaction", source=HUMAN)`; failed traces get a
    thumbs down."""
    rng = random.Random(f"{seed}:feedback")
    found = []
    for payload in data.traces:
        if rng.random() >= 0.2:
            continue
        failed = payload.info["state"] == "ERROR"
        happy = not failed and rng.random() < 0.75
        comment = rng.choice(_HAPPY if happy else _UNHAPPY)
        found.append(
            AssessmentData(
                assessment_id=_assessment_id(seed, f"feedback:{payload.trace_id}"),
                trace_id=payload.trace_id,
                span_id="",
                name="user_satisfaction",
                kind="feedback",
                value=happy,
                rationale=comment,
                source_type="HUMAN",
                source_id=payload.info["trace_metadata"]["mlflow.trace.user"],
                metadata={},
                created_at=_moment(_span_end(payload)) + timedelta(seconds=rng.uniform(5, 90)),
            )
        )
    return found


_HAPPY = ["Quick and clear, thanks!", "Solved my problem.", "", "Helpful."]
_UNHAPPY = [
    "The chat stopped answering.",
    "Didn't answer my question.",
    "I had to ask twice.",
    "",
]


# --- Small helpers --------------------------------------------------------------------------


def _assessment_id(seed: int, key: str) -> str:
    return "a-" + hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:32]


def _span_end(payload: TracePayload) -> int:
    return payload.spans[0]["end_time_unix_nano"]


def _moment(nanos: int) -> datetime:
    return datetime.fromtimestamp(nanos / 1e9, tz=UTC)
