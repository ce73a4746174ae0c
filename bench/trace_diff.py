"""Trace diff of two 10,000-span and two 50,000-span traces: server time, bytes, (browser).

    .venv/bin/python bench/trace_diff.py [--sizes 10000,50000] [--repeat 20] [--details 50]
                                         [--no-browser]

The database is DATABASE_URL when it names PostgreSQL (migrated first; the database must
exist), else a fresh SQLite file in a temporary directory. Traces of the bench are deleted
at the end.

Each pair is one agent's run twice, A and B, of a realistic shape: a root AGENT span, tasks
(CHAIN) of eight iterations each of plan (LLM), call_tool (TOOL: retrieve, rerank, parse),
reflect (LLM); chat messages on LLM spans, documents on retrievers. B differs as a new version
would: an extra validate step inserted (every 50th task), a reflect step removed (every 50th
task, another one), a plan step failed and retried (every 50th task, a third one), changed
answers on every 37th LLM span, and durations jittered (some steps twice as slow).

Server (in-process, Django test Client, Accept-Encoding: gzip), p50 / p95 over --repeat runs:
- layout:  GET /traces/diff/layout/?a=&b= (both traces' spans and digests, aligned, JSON)
- page:    GET /traces/diff/?a=&b=
- details: GET /traces/diff/spans/?a=&b=&sa=&sb= for --details changed rows
The last line: `p50_ms=<10k layout p50> [browser_ms=..] p50_50k_ms=<50k layout p50> [..]`.
Goals: 10k p50 < 500 ms, 50k p50 < 3 s (a 2-core machine shared with other work).

Browser (unless --no-browser; headless Chromium via Playwright against `gunicorn webapp.wsgi`
on a free loopback port, DEBUG=0, auth off, static files collected), median of 3 warm visits,
milliseconds from navigation start:
- layout:  performance mark "diff-layout": the layout JSON fetched and parsed
- rows:    mark "diff-rows": the summary drawn and the first rows in the DOM (the page sets
           `[data-diff-rows-drawn]` then); goals: 10k < 1.5 s, 50k < 3 s
- next change: one `n` keypress to the next painted frame
- rows in DOM: how many row elements the windowed list holds (not the span count)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from harness import (  # noqa: E402 - after the path is set
    CHROMIUM,
    CHROMIUM_ARGS,
    SETTINGS,
    bench_env,
    gunicorn,
    machine_line,
    manage,
    percentiles,
    scratch,
)

BATCH = 5_000
T0_NS = 1_795_294_591_376_191_837
STEP_NS = 1_000_000
ITERATIONS = 8  # per task
TARGETS = {10_000: 500, 50_000: 3_000}  # layout p50, ms


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 50_000]
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--details", type=int, default=50)
    parser.add_argument("--no-browser", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with scratch("spyglass-bench-trace-diff-") as tmp:
        run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    env = bench_env(tmp)
    (tmp / "var").mkdir()
    os.environ.update({k: env[k] for k in SETTINGS})
    manage(env, "migrate")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test Client's host is allowed
    print(f"database: {connection.vendor} ({env['DATABASE_URL'].split('@')[-1]})")
    print(machine_line())

    pairs: dict[int, Pair] = {}
    try:
        for size in args.sizes:
            started = time.perf_counter()
            pairs[size] = build_pair(size)
            print(f"built two {size:,}-span traces in {time.perf_counter() - started:.1f} s")
        print()
        print("server, in-process (ms)        p50      p95    target")
        p50s = {size: time_server(pair, args) for size, pair in pairs.items()}
        browser = {} if args.no_browser else browser_timings(env, tmp, pairs, args)
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
        print(last_line(p50s, browser))
    finally:
        from tracking.models import Experiment

        Experiment.objects.filter(name="bench-trace-diff").delete()


def last_line(p50s: dict[int, float], browser: dict[int, float]) -> str:
    parts = []
    for size, p50 in p50s.items():
        tag = "" if size == 10_000 else f"_{size // 1000}k"
        parts.append(f"p50{tag}_ms={p50:.0f}")
        if size in browser:
            parts.append(f"browser{tag}_ms={browser[size]:.0f}")
    return " ".join(parts)


def browser_timings(env: dict, tmp: Path, pairs: dict[int, Pair], args) -> dict[int, float]:
    """{size: ms from navigation start until the diff's first rows are drawn}: headless Chromium
    (Playwright) opens /traces/diff/?a=&b= of each pair on `gunicorn webapp.wsgi` (DEBUG=0,
    static files collected, as bench/waterfall.py does) and reads trace_diff.js's "diff-rows"
    performance mark once `[data-diff-rows-drawn]` is set. Visits with a warm cache (the first
    also fetches the static files): the median is reported."""
    from playwright.sync_api import sync_playwright

    # DEBUG=0 serves hashed static files (whitenoise), so they are collected first.
    manage(env, "collectstatic")
    first = next(iter(pairs.values()))
    results: dict[int, float] = {}
    ready_path = f"/traces/diff/?a={first.a}&b={first.b}"
    with gunicorn(env, tmp, ready_path) as port, sync_playwright() as playwright:
        base = f"http://127.0.0.1:{port}"
        print("browser (ms)          layout   rows    target   next change   rows in DOM")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for size, pair in pairs.items():
            url = f"{base}/traces/diff/?a={pair.a}&b={pair.b}"
            visits = [_visit(browser, url) for _ in range(1 + BROWSER_VISITS)][1:]
            rows = statistics.median(v["rows"] for v in visits)
            layout = statistics.median(v["layout"] for v in visits)
            key = statistics.median(v["key"] for v in visits)
            target = BROWSER_TARGETS.get(size)
            goal = f"< {target}" if target else ""
            in_dom = max(v["inDom"] for v in visits)
            print(f"{size:>7,} spans    {layout:7.0f} {rows:6.0f}   {goal:>7}"
                  f"   {key:8.0f}      {in_dom:6d}")  # fmt: skip
            results[size] = rows
        browser.close()
    return results


BROWSER_VISITS = 3  # after one that fills the cache
BROWSER_TARGETS = {10_000: 1_500, 50_000: 3_000}  # ms until the rows are drawn
# `n` (next change) to the next painted frame: the selection moved and the panel was asked for.
NEXT_CHANGE = """() => new Promise((resolve) => {
  const started = performance.now();
  document.dispatchEvent(new KeyboardEvent("keydown", { key: "n", bubbles: true }));
  requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - started), 0));
})"""


def _visit(browser, url: str) -> dict:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("#trace-diff[data-diff-rows-drawn]", timeout=120_000)
    marks = page.evaluate(
        """() => ({
          layout: performance.getEntriesByName("diff-layout")[0].startTime,
          rows: performance.getEntriesByName("diff-rows")[0].startTime,
          inDom: document.querySelectorAll(".td-row:not([hidden])").length,
        })"""
    )
    marks["key"] = page.evaluate(NEXT_CHANGE)
    context.close()
    if errors:
        raise SystemExit(f"page errors at {url}: {errors}")
    return marks


# --- Rows -----------------------------------------------------------------------------------


@dataclass
class Pair:
    size: int
    a: str  # trace ids
    b: str
    changed: list[tuple[str, str]]  # (A span id or "", B span id or "") of rows to open


def build_pair(size: int) -> Pair:
    from datetime import UTC, datetime

    from tracking.models import Experiment, Span, Trace, TraceState

    experiment, _ = Experiment.objects.get_or_create(name="bench-trace-diff")
    ids = {}
    specs = {"a": agent_run(size, False), "b": agent_run(size, True)}
    for side, spans in specs.items():
        trace = Trace.objects.create(
            experiment=experiment,
            trace_id=f"tr-{secrets.token_hex(16)}",
            name=f"agent ({size:,} spans, {side.upper()})",
            state=TraceState.ERROR if side == "b" else TraceState.OK,
            request_time=datetime.fromtimestamp(T0_NS / 1e9, UTC),
            duration_ns=max(s.end for s in spans) - T0_NS,
            span_count=len(spans),
            total_tokens=len(spans) * 40,
        )
        ids[side] = trace.trace_id
        batch = []
        for s in spans:
            batch.append(
                Span(
                    trace=trace,
                    span_id=s.span_id,
                    parent_span_id=s.parent,
                    name=s.name,
                    span_type=s.span_type,
                    start_ns=s.start,
                    end_ns=s.end,
                    status=s.status,
                    status_message="RateLimitError: retry" if s.status == "ERROR" else "",
                    inputs=_inputs(s),
                    outputs=None if s.status == "ERROR" else _outputs(s),
                    attributes=_attributes(s),
                )
            )
            if len(batch) == BATCH:
                Span.objects.bulk_create(batch)
                batch = []
        Span.objects.bulk_create(batch)
    return Pair(size, ids["a"], ids["b"], changed_rows(ids["a"], ids["b"]))


@dataclass
class SpecSpan:
    span_id: str
    parent: str
    name: str
    span_type: str
    start: int = 0
    end: int = 0
    status: str = "OK"
    variant: int = 0  # which answer an LLM span gives
    i: int = 0  # the step (task and iteration): the same in A and B, whatever B inserted


def agent_run(size: int, b: bool) -> list[SpecSpan]:
    """About `size` spans of one agent run in pre-order, with times; B as a new version."""
    rng = random.Random(size * 2 + b)
    spans: list[SpecSpan] = []

    def add(parent: str, name: str, span_type: str, step: int = 0, **extra) -> str:
        span_id = f"{len(spans) + 1:016x}"
        spans.append(SpecSpan(span_id, parent, name, span_type, i=step, **extra))
        return span_id

    root = add("", "agent", "AGENT")
    task = 0
    while len(spans) < size:
        t = add(root, f"task_{task % 20}", "CHAIN", task * ITERATIONS)
        for it in range(ITERATIONS):
            step = task * ITERATIONS + it
            if b and task % 50 == 30 and it == 2:  # a retry: the first attempt fails
                add(t, "plan", "LLM", step, status="ERROR")
            add(t, "plan", "LLM", step, variant=int(b and rng.random() < 1 / 37))
            tool = add(t, "call_tool", "TOOL", step)
            add(tool, "retrieve", "RETRIEVER", step)
            add(tool, "rerank", "RERANKER", step)
            add(tool, "parse", "PARSER", step)
            if b and task % 50 == 10 and it == 3:  # an inserted step
                add(t, "validate", "TOOL", step)
            if not (b and task % 50 == 20 and it == 5):  # a removed step
                add(t, "reflect", "LLM", step, variant=int(b and rng.random() < 1 / 37))
        task += 1
    del spans[size:]
    # Start times in pre-order; a parent ends after its last child.
    by_id = {s.span_id: s for s in spans}
    for n, s in enumerate(spans):
        s.start = T0_NS + n * STEP_NS
        slow = 2.0 if b and rng.random() < 0.02 else 1.0
        jitter = rng.uniform(0.9, 1.1) if b else 1.0
        s.end = s.start + int(rng.randint(300_000, 900_000) * jitter * slow)
    for s in reversed(spans):
        if s.parent:
            parent = by_id[s.parent]
            parent.end = max(parent.end, s.end + 50_000)
    return spans


def _inputs(s: SpecSpan):
    if s.span_type in ("LLM", "AGENT"):
        return {
            "messages": [
                {"role": "system", "content": "You are a support agent. " * 6},
                {"role": "user", "content": f"Step {s.i}: where is **order {s.i % 500}**? " * 3},
            ],
            "model": "gpt-4o-mini",
        }
    return {"query": f"order {s.i % 500} status " * 8, "top_k": 5}


def _outputs(s: SpecSpan):
    if s.span_type in ("LLM", "AGENT"):
        said = "was delayed" if s.variant else "has shipped"
        text = f"Your order {s.i % 500} {said}. " * 8
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    return [{"page_content": f"Article {j} about orders. " * 6, "id": j} for j in range(3)]


def _attributes(s: SpecSpan) -> dict:
    if s.span_type != "LLM":
        return {"mlflow.spanFunctionName": s.name}
    out = 60 + 20 * s.variant
    return {
        "mlflow.chat.tokenUsage": {
            "input_tokens": 200,
            "output_tokens": out,
            "total_tokens": 200 + out,
        },
        "mlflow.llm.model": "gpt-4o-mini",
    }


def changed_rows(a: str, b: str) -> list[tuple[str, str]]:
    """Span id pairs of the diff's changed, added and removed rows, as the page opens them."""
    from django.test import Client

    response = Client().get(f"/traces/diff/layout/?a={a}&b={b}")
    data = json.loads(response.content)
    rows, spans = data["rows"], data["spans"]

    def span_id(side: str, i: int) -> str:
        return spans[side]["ids"][i] if i >= 0 else ""

    return [(span_id("a", rows["a"][r]), span_id("b", rows["b"][r])) for r in data["changes"]]


# --- Server ---------------------------------------------------------------------------------


def time_server(pair: Pair, args) -> float:
    from django.test import Client

    client = Client()
    query = f"a={pair.a}&b={pair.b}"
    layout_url, page_url = f"/traces/diff/layout/?{query}", f"/traces/diff/?{query}"
    gzip_ok = {"Accept-Encoding": "gzip"}
    assert client.get(layout_url, headers=gzip_ok).status_code == 200  # warm
    repeat = max(5, args.repeat // (4 if pair.size >= 50_000 else 1))
    layout, page = [], []
    body = b""
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(layout_url, headers=gzip_ok)
        middle = time.perf_counter()
        assert client.get(page_url).status_code == 200
        page.append((time.perf_counter() - middle) * 1000)
        layout.append((middle - started) * 1000)
        assert response.status_code == 200
        body = response.content
    details = []
    rng = random.Random(1)
    opened = rng.sample(pair.changed, min(args.details, len(pair.changed)))
    for sa, sb in opened:
        started = time.perf_counter()
        response = client.get(f"/traces/diff/spans/?{query}&sa={sa}&sb={sb}")
        details.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    data = json.loads(gzip.decompress(body))
    summary = data["summary"]
    print(f"{pair.size:>7,} spans: {len(data['rows']['a']):,} rows, {len(data['changes']):,} "
          f"changes (added {summary['added']}, removed {summary['removed']}, "
          f"changed {summary['changed']}); JSON {len(gzip.decompress(body)):,} bytes raw, "
          f"{len(body):,} gzipped")  # fmt: skip
    target = TARGETS.get(pair.size)
    for label, samples, shown in [
        ("layout", layout, f"p50 < {target} ms" if target else ""),
        ("page", page, ""),
        ("details", details, ""),
    ]:
        if samples:
            p50, p95 = percentiles(samples)
            print(f"{pair.size:>7,} spans  {label:<12} {p50:8.1f} {p95:8.1f}    {shown}")
    return percentiles(layout)[0]


if __name__ == "__main__":
    main()
