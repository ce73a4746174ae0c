"""Trace detail (waterfall) at 1,000, 10,000 and 50,000 spans: server time, bytes, browser.

    .venv/bin/python bench/waterfall.py [--sizes 1000,10000,50000] [--repeat 20]
                                        [--details 100] [--no-browser]

The database is DATABASE_URL when it names PostgreSQL (migrated first; the database must
exist: `createdb -h 127.0.0.1 -U postgres spyglass_bench_waterfall`), else a fresh SQLite file
in a temporary directory. Spans are bulk-inserted (bulk_create, 5,000 a batch) with realistic
contents: chat messages on LLM spans, documents on retrievers, ~1 KB of inputs and outputs per
span, an exception event on the failing ones. The tree is an agent's: span i's parent is
span (i - 1) // 4, so a few levels deep with wide fan-out.

Server (in-process, Django test Client: middleware, queries, template or JSON encoding),
p50 / p95 over --repeat requests:
- page:    GET /traces/<id>/ (the HTML: header, toolbar; no spans)
- layout:  GET /traces/<id>/layout/ with Accept-Encoding: gzip, as a browser asks for it
           (every span's layout columns as JSON, gzipped by the view: what the page loads)
- page+layout: the two added, what a first visit costs the server
- details: GET /traces/<id>/spans/<span>/ (htmx partial) for --details random spans
- conversation: GET /traces/<id>/conversation/ (htmx partial): the Conversation tab a chat
           trace opens on (the root's messages, the first 200 tool/retriever/model spans)
Bytes: the layout JSON raw, and gzipped as the view sends it.

Browser (headless Chromium via Playwright against `gunicorn webapp.wsgi` on a free loopback
port, DEBUG=0, SPYGLASS_AUTH=0, static files collected), milliseconds from navigation start,
on `?view=waterfall` (the bench's root holds chat messages, so the page would otherwise open
on its Conversation tab):
- rows:        performance mark "wf-rows": the layout is fetched and parsed, the visible-row
               list computed and the first rows are in the DOM, every handler already bound
- interactive: mark "wf-interactive": the first animation frame after that, i.e. the rows
               have been laid out and painted and the page answers input
- key:         one `j` keypress to the next painted frame (selection moved), after load
- scroll:      after "Expand all", the viewport is scrolled from top to bottom of every row
               in steps of two screens per animation frame; printed: frames, the longest
               gap between frames, frames slower than 50 ms, long tasks (> 50 ms) seen by a
               PerformanceObserver, and the most rows that were ever in the DOM
- conversation: the page without `?view=`, until the Conversation tab's items are drawn
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import secrets
import sys
import time
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
TYPES = ["AGENT", "CHAIN", "LLM", "TOOL", "RETRIEVER", "RERANKER", "PARSER", "EMBEDDING"]
# (size, what) -> target in ms, printed beside the figures (a 2-core machine).
TARGETS = {
    (10_000, "server"): 300,
    (50_000, "server"): 1_500,
    (10_000, "interactive"): 1_500,
    (50_000, "interactive"): 3_000,
    (None, "details p95"): 50,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1_000, 10_000, 50_000]
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--details", type=int, default=100)
    parser.add_argument("--no-browser", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with scratch("spyglass-bench-waterfall-") as tmp:
        run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    env = bench_env(tmp)
    (tmp / "var").mkdir()
    os.environ.update({k: env[k] for k in SETTINGS})
    # DEBUG=0 serves hashed static files (whitenoise), so they are collected first.
    manage(env, "migrate", "collectstatic")

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test Client's host is allowed
    vendor = connection.vendor
    print(f"database: {vendor} ({env['DATABASE_URL'].split('@')[-1]})")
    print(machine_line())

    traces = {}
    for size in args.sizes:
        started = time.perf_counter()
        traces[size] = build_trace(size)
        print(f"built a {size:,}-span trace in {time.perf_counter() - started:.1f} s")

    print()
    print("server, in-process (ms)      p50      p95    target")
    server_rows = []
    for size in args.sizes:
        server_rows.append(time_server(size, traces[size], args))
    print()
    print("layout JSON bytes: " + "; ".join(
        f"{size:,} spans {raw:,} raw / {zipped:,} gzipped" for size, raw, zipped in server_rows
    ))  # fmt: skip

    if args.no_browser:
        return
    first = next(iter(traces.values()))
    with gunicorn(env, tmp, f"/traces/{first.trace_id}/") as port:
        time_browser(port, traces, args)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


# --- Rows -----------------------------------------------------------------------------------


def build_trace(size: int):
    from datetime import UTC, datetime

    from tracking.models import Experiment, Span, Trace, TraceState

    rng = random.Random(size)
    experiment, _ = Experiment.objects.get_or_create(name="bench-waterfall")
    duration = size * 1_000_000 + 5_000_000
    trace = Trace.objects.create(
        experiment=experiment,
        trace_id=f"tr-{secrets.token_hex(16)}",
        name=f"agent ({size:,} spans)",
        state=TraceState.ERROR,
        request_time=datetime.fromtimestamp(T0_NS / 1e9, UTC),
        duration_ns=duration,
        span_count=size,
        total_tokens=size * 50,
    )
    batch = []
    for i in range(size):
        span_type = "AGENT" if i == 0 else TYPES[1 + i % (len(TYPES) - 1)]
        start = T0_NS + i * 1_000_000
        end = T0_NS + duration if i == 0 else start + rng.randint(200_000, 3_000_000)
        failed = i % 997 == 13
        batch.append(
            Span(
                trace=trace,
                span_id=f"{i + 1:016x}",
                parent_span_id=f"{(i - 1) // 4 + 1:016x}" if i else "",
                name=f"{span_type.lower()}_step_{i}",
                span_type=span_type,
                start_ns=start,
                end_ns=end,
                status="ERROR" if failed else "OK",
                status_message="TimeoutError: upstream took too long" if failed else "",
                inputs=_inputs(span_type, i),
                outputs=None if failed else _outputs(span_type, i),
                attributes={"mlflow.spanFunctionName": f"step_{i}", "bench.i": i},
                events=[_exception(i)] if failed else [],
            )
        )
        if len(batch) == BATCH:
            Span.objects.bulk_create(batch)
            batch = []
    Span.objects.bulk_create(batch)
    return trace


def _inputs(span_type: str, i: int):
    if span_type in ("LLM", "AGENT"):
        return {
            "messages": [
                {"role": "system", "content": "You are a support agent. " * 8},
                {"role": "user", "content": f"Question {i}: where is **order {i}**? " * 4},
            ],
            "model": "gpt-4o-mini",
            "temperature": 0.2,
        }
    return {"query": f"order {i} status " * 10, "top_k": 5}


def _outputs(span_type: str, i: int):
    if span_type in ("LLM", "AGENT"):
        text = f"Your order {i} has *shipped*. " * 10
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    return [{"page_content": f"Article {j} about orders. " * 8, "id": j} for j in range(3)]


def _exception(i: int) -> dict:
    return {
        "name": "exception",
        "time_unix_nano": T0_NS + i * 1_000_000 + 100_000,
        "attributes": {
            "exception.type": "TimeoutError",
            "exception.message": "upstream took too long",
            "exception.stacktrace": "Traceback (most recent call last):\n  File ...\n" * 5,
        },
    }


# --- Server ---------------------------------------------------------------------------------


def time_server(size: int, trace, args) -> tuple[int, int, int]:
    from django.test import Client

    client = Client()
    page_url = f"/traces/{trace.trace_id}/"
    layout_url = f"/traces/{trace.trace_id}/layout/"
    gzip_ok = {"Accept-Encoding": "gzip"}
    for url in (page_url, layout_url):  # warm: imports, template compilation, caches
        assert client.get(url).status_code == 200
    repeat = max(5, args.repeat // (5 if size >= 50_000 else 1))
    page, layout, both = [], [], []
    body = b""
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(page_url)
        middle = time.perf_counter()
        body = client.get(layout_url, headers=gzip_ok).content
        ended = time.perf_counter()
        assert response.status_code == 200
        page.append((middle - started) * 1000)
        layout.append((ended - middle) * 1000)
        both.append((ended - started) * 1000)
    details = []
    rng = random.Random(1)
    headers = {"HX-Request": "true"}
    for _ in range(args.details):
        span_id = f"{rng.randint(1, size):016x}"
        started = time.perf_counter()
        response = client.get(f"/traces/{trace.trace_id}/spans/{span_id}/", headers=headers)
        details.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    conversation = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(f"/traces/{trace.trace_id}/conversation/", headers=headers)
        conversation.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and b"convo-items" in response.content
    for label, samples, target in [
        ("page", page, None),
        ("layout", layout, None),
        ("page+layout", both, TARGETS.get((size, "server"))),
        ("details", details, TARGETS[(None, "details p95")]),
        ("conversation", conversation, None),
    ]:
        p50, p95 = percentiles(samples)
        shown = f"{target} ms" if target else ""
        if label == "details":
            shown = f"p95 < {target} ms"
        elif target:
            shown = f"p50 < {target} ms"
        print(f"{size:>7,} spans  {label:<12} {p50:8.1f} {p95:8.1f}    {shown}")
    return size, len(gzip.decompress(body)), len(body)


# --- Browser --------------------------------------------------------------------------------

# Registered before the page's scripts run: long tasks are only reported to an observer
# that exists when they happen.
INIT_SCRIPT = """
window.__longTasks = [];
try {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
  }).observe({ type: "longtask", buffered: true });
} catch (e) {}
"""

MARKS = """() => {
  const mark = (name) => {
    const entries = performance.getEntriesByName(name);
    return entries.length ? entries[0].startTime : null;
  };
  return { layout: mark("wf-layout"), rows: mark("wf-rows"),
           interactive: mark("wf-interactive"), longTasks: window.__longTasks.slice(),
           rowsInDom: document.querySelectorAll(".wf-row").length };
}"""

KEY = """() => new Promise((resolve) => {
  const started = performance.now();
  document.getElementById("wf-viewport").focus();
  document.dispatchEvent(new KeyboardEvent("keydown", { key: "j", bubbles: true }));
  requestAnimationFrame(() => requestAnimationFrame(() => resolve({
    ms: performance.now() - started,
    selected: document.querySelectorAll(".wf-row.is-selected").length,
  })));
})"""

SCROLL = """() => new Promise((resolve) => {
  const viewport = document.getElementById("wf-viewport");
  window.__longTasks.length = 0;
  const step = viewport.clientHeight * 2;
  let last = performance.now();
  let frames = 0, maxGap = 0, slow = 0, maxRows = 0;
  viewport.scrollTop = 0;
  function frame(now) {
    const gap = now - last;
    last = now;
    frames++;
    maxGap = Math.max(maxGap, gap);
    if (gap > 50) slow++;
    maxRows = Math.max(maxRows, document.querySelectorAll(".wf-row").length);
    if (viewport.scrollTop + viewport.clientHeight >= viewport.scrollHeight - 1) {
      resolve({ frames, maxGap, slow, maxRows, longTasks: window.__longTasks.slice(),
                height: viewport.scrollHeight });
      return;
    }
    viewport.scrollTop += step;
    requestAnimationFrame(frame);
  }
  requestAnimationFrame((now) => { last = now; requestAnimationFrame(frame); });
})"""


def time_browser(port: int, traces: dict, args) -> None:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    print("browser (ms)            rows  interactive   target   key  long tasks during load")
    scrolls = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for size, trace in traces.items():
            url = f"{base}/traces/{trace.trace_id}/?view=waterfall"
            runs = []
            for attempt in range(3):  # the first visit also fetches the static files
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                context.add_init_script(INIT_SCRIPT)
                page = context.new_page()
                errors = []
                page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
                page.goto(url)
                page.wait_for_selector("#waterfall[data-ready='1']", timeout=60_000)
                marks = page.evaluate(MARKS)
                key = page.evaluate(KEY)
                if attempt == 2:
                    page.get_by_role("button", name="Expand all").click()
                    scrolls.append((size, page.evaluate(SCROLL)))
                if errors:
                    print(f"  page errors: {errors}")
                runs.append((marks, key))
                context.close()
            marks, key = min(runs[1:], key=lambda r: r[0]["interactive"])  # warm cache
            marks["conversation"] = time_conversation(browser, f"{base}/traces/{trace.trace_id}/")
            target = TARGETS.get((size, "interactive"))
            long_tasks = marks["longTasks"]
            print(
                f"{size:>7,} spans   {marks['rows']:7.0f} {marks['interactive']:10.0f}   "
                f"{'< ' + str(target) if target else '':>7}  {key['ms']:5.0f}  "
                f"{len(long_tasks)} (longest {max(long_tasks, default=0):.0f} ms); "
                f"conversation {marks['conversation']:.0f}"
            )
        browser.close()
    print()
    print("scroll (all rows expanded)  frames  longest gap  frames > 50 ms  long tasks  "
          "rows in DOM (max)")  # fmt: skip
    for size, result in scrolls:
        tasks = result["longTasks"]
        print(
            f"{size:>7,} spans           {result['frames']:6d}  {result['maxGap']:8.0f} ms  "
            f"{result['slow']:14d}  {len(tasks):3d} (max {max(tasks, default=0):.0f} ms)  "
            f"{result['maxRows']:6d}   ({result['height']:,} px of rows)"
        )


CONVERSATION = """() => new Promise((resolve) => {
  const done = () => document.querySelector("#conversation .convo-items");
  if (done()) return resolve(performance.now());
  new MutationObserver((_, observer) => {
    if (done()) { observer.disconnect(); resolve(performance.now()); }
  }).observe(document.getElementById("conversation"), { childList: true, subtree: true });
})"""


def time_conversation(browser, url: str) -> float:
    """Milliseconds from navigation start until the Conversation tab's items are drawn (the
    best of three visits)."""
    best = float("inf")
    for _ in range(3):
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.goto(url, wait_until="commit")
        page.wait_for_selector("#conversation", state="attached")
        best = min(best, page.evaluate(CONVERSATION))
        context.close()
    return best


if __name__ == "__main__":
    main()
