"""Side-by-side comparison of model versions: flatten nested configs, diff values per key, say
which value is better when the direction of a metric is known, and line up the versions' answers
to the same requests. Pure functions, no database.

A nested `model_config` becomes one row per leaf: `{"llm": {"temperature": 0.2}}` is the row
`llm.temperature`, list items are `tools[0]`, `tools[1]`. Empty dicts and lists are leaves of
their own, so a config that empties a list still shows a row that changed.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tracking.chat import answer_text, request_text


class _Missing:
    """A key that one version has and another does not: not None, which is a real value."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()

# Key fragments that say which way is better. Checked in order: "error" wins over "score" in
# "error_score". Keys matching neither have no better value.
_LOWER_IS_BETTER = re.compile(
    r"latency|duration|time|p50|p90|p95|p99|cost|error|loss|toxicity|hallucination|tokens",
    re.IGNORECASE,
)
_HIGHER_IS_BETTER = re.compile(
    r"accuracy|score|precision|recall|f1|faithfulness|relevance|correctness|groundedness"
    r"|pass|success|bleu|rouge|exact_match|auc",
    re.IGNORECASE,
)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as {dotted.path[index]: leaf}; a scalar at the top is `prefix`."""
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key in sorted(value, key=str):
            flat.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list | tuple) and value:
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value} if prefix else {}


def same(a: Any, b: Any) -> bool:
    """Equal values of the same type: 1, 1.0, True and "1" all differ from one another,
    because a config whose temperature turned from a number into a string did change."""
    if a is MISSING or b is MISSING:
        return a is b
    return type(a) is type(b) and a == b


def display(value: Any) -> str:
    """A leaf as the compare table shows it: strings as they are, anything else as JSON."""
    if value is MISSING:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def direction(key: str) -> int:
    """-1 when lower is better (latency, cost, errors), 1 when higher is (accuracy, scores),
    0 when the key does not say."""
    if _LOWER_IS_BETTER.search(key):
        return -1
    if _HIGHER_IS_BETTER.search(key):
        return 1
    return 0


def best_index(values: Sequence[Any], sense: int) -> int | None:
    """The index of the single best number among `values`, or None when there is no direction,
    fewer than two numbers, or a tie for best."""
    if not sense:
        return None
    numbers = [
        (v, i)
        for i, v in enumerate(values)
        if isinstance(v, int | float) and not isinstance(v, bool) and v == v  # not NaN
    ]
    if len(numbers) < 2:
        return None
    best = max(v * sense for v, _ in numbers)
    winners = [i for v, i in numbers if v * sense == best]
    return winners[0] if len(winners) == 1 else None


@dataclass(frozen=True)
class Cell:
    value: Any
    text: str
    missing: bool
    changed: bool  # differs from the first (baseline) column
    best: bool = False


@dataclass(frozen=True)
class Row:
    key: str
    cells: list[Cell]
    changed: bool


def diff_rows(
    columns: Sequence[Mapping[str, Any]],
    sense: Callable[[str], int] | None = None,
    text: Callable[[Any], str] = display,
) -> list[Row]:
    """One row per key found in any column, sorted by key; a cell is changed when it differs
    from the first column's value (missing counts as a value). With `sense`, the best number
    of a row is marked when the key's direction is known."""
    keys = sorted({key for column in columns for key in column})
    rows = []
    for key in keys:
        values = [column.get(key, MISSING) for column in columns]
        best = best_index(values, sense(key)) if sense else None
        base = values[0]
        cells = [
            Cell(
                value=v,
                text=text(v) if v is not MISSING else "",
                missing=v is MISSING,
                changed=i > 0 and not same(v, base),
                best=i == best,
            )
            for i, v in enumerate(values)
        ]
        changed = any(not same(v, base) for v in values[1:])
        rows.append(Row(key=key, cells=cells, changed=changed))
    return rows


def _web_repo(repo_url: str) -> str:
    """An http(s) address for a repo URL (ssh `git@host:path` included), or ""."""
    repo = repo_url.strip().removesuffix(".git").rstrip("/")
    if repo.startswith("git@") and ":" in repo:
        host, path = repo[4:].split(":", 1)
        repo = f"https://{host}/{path}"
    return repo if repo.startswith(("https://", "http://")) else ""


def git_commit_url(repo_url: str, commit: str) -> str:
    """The web page of one commit, when the repo URL is an http(s) one we can link to."""
    repo = _web_repo(repo_url or "")
    if not (repo and commit):
        return ""
    return f"{repo}/-/commit/{commit}" if "gitlab" in repo else f"{repo}/commit/{commit}"


def git_compare_url(repo_url: str, base: str, head: str) -> str:
    """A web page comparing two commits, for the hosts whose compare URL we know."""
    repo = _web_repo(repo_url or "")
    if not (repo and base and head) or base == head:
        return ""
    if "gitlab" in repo:
        return f"{repo}/-/compare/{base}...{head}"
    if "github" in repo or "gitea" in repo or "codeberg" in repo:
        return f"{repo}/compare/{base}...{head}"
    return ""


# --- Answers: each version's answer to the same request, side by side --------------------------

ANSWER_ROWS = 20


class AnsweredTrace(Protocol):
    trace_id: str
    state: str
    request_time: datetime
    duration_ns: int | None
    request_preview: str
    response_preview: str
    cancelled: bool  # stopped on purpose: shown as such, not as its OK state


@dataclass(frozen=True)
class Answer:
    trace_id: str
    text: str
    state: str
    cancelled: bool
    duration_ns: int | None
    changed: bool  # reads differently from the row's first answer


@dataclass(frozen=True)
class AnswerRow:
    request: str
    answers: list[Answer | None]  # one per version; None where it has not answered it
    changed: bool


@dataclass(frozen=True)
class Answers:
    rows: list[AnswerRow]
    more: int  # requests several versions answered, beyond the rows shown
    single: int  # requests only one version answered


def request_key(preview: str) -> str:
    """What makes two requests the same: the text a person asked (the last user message of a
    chat, whatever shape it was logged in: the playground stores the text, MLflow's client
    extracts it, OTLP sends the messages' JSON), other JSON in a canonical form, whitespace runs
    as one space. A request cut at the preview's size limit matches only the same cut text."""
    text = request_text(preview)
    if text == preview and text[:1] in ("{", "["):
        with contextlib.suppress(ValueError):  # cut JSON: compared as the text it is
            text = json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    return " ".join(text.split())


def match_answers(columns: Sequence[Sequence[AnsweredTrace]], limit: int = ANSWER_ROWS) -> Answers:
    """Rows of the requests that at least two versions answered, the most recently asked first,
    each with every version's newest answer to it. `columns` holds each version's traces,
    newest first."""
    newest: list[dict[str, AnsweredTrace]] = []
    for traces in columns:
        answered: dict[str, AnsweredTrace] = {}
        for trace in traces:
            key = request_key(trace.request_preview)
            if key and key not in answered:
                answered[key] = trace
        newest.append(answered)
    asked: dict[str, list[AnsweredTrace]] = {}
    for answered in newest:
        for key, trace in answered.items():
            asked.setdefault(key, []).append(trace)
    shared = [key for key, traces in asked.items() if len(traces) > 1]
    shared.sort(key=lambda key: (max(t.request_time for t in asked[key]), key), reverse=True)
    rows = [_answer_row([answered.get(key) for answered in newest]) for key in shared[:limit]]
    return Answers(rows=rows, more=max(0, len(shared) - limit), single=len(asked) - len(shared))


def _answer_row(traces: list[AnsweredTrace | None]) -> AnswerRow:
    texts = [answer_text(t.response_preview) if t else "" for t in traces]
    base = next(text for t, text in zip(traces, texts, strict=True) if t)
    answers = [
        Answer(
            trace_id=t.trace_id,
            text=text,
            state=t.state,
            cancelled=t.cancelled,
            duration_ns=t.duration_ns,
            changed=text != base,
        )
        if t
        else None
        for t, text in zip(traces, texts, strict=True)
    ]
    first = next(t for t in traces if t)
    return AnswerRow(
        request=request_text(first.request_preview),
        answers=answers,
        changed=any(a.changed for a in answers if a),
    )
