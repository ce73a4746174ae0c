"""HTTP ingest throughput through a real gunicorn: OTLP `/v1/traces` and the MLflow trace path.

    .venv/bin/python bench/ingest_http.py [--seconds 5] [--sizes 10,100] [--clients 4]
                                          [--no-mlflow-server]

It serves Spyglass with `gunicorn webapp.wsgi -w 2 --threads 4` on a free loopback port and
sends whole traces from concurrent client threads, each on a keep-alive connection, for a
fixed time per (path, spans per trace):

- otlp:   one `POST /v1/traces` (protobuf) per trace;
- mlflow: StartTraceV3 `POST /api/3.0/mlflow/traces`, then the `traces.json` PUT to the
          artifact location it answers, as the mlflow client exports a trace.

The database is DATABASE_URL when it names PostgreSQL (migrated first; the database must
exist: `createdb -h 127.0.0.1 -U postgres spyglass_bench`), else a fresh SQLite file in a
temporary directory. Payloads are built before the clock starts: spans made with the
OpenTelemetry SDK (an agent calling LLMs, tools and a retriever, with GenAI attributes and
MLflow inputs/outputs), encoded once per size; each trace swaps its own id into those bytes.
After each run the stored rows are counted against what the server acknowledged.

With mlflow installed, the OTLP payloads are also sent to `mlflow server` (SQLite backend,
2 workers) for a ratio. Latencies are per HTTP request; the client threads share the
machine's cores with the server, as a co-located agent would.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
sys.path.insert(0, str(REPO / "bench"))

from harness import BIN, answers, bench_env, free_port, manage, scratch, server  # noqa: E402

# Printed beside the figures (a 2-core machine; see the module docstring).
TARGETS = {
    (vendor, path, size): target
    for path in ("otlp", "mlflow")
    for vendor, size, target in (
        ("sqlite", 100, ("spans/s", 2_000)),
        ("sqlite", 10, ("requests/s", 300)),
        ("postgresql", 100, ("spans/s", 1_500)),
    )
}
# Upper bounds on traces a second, to size the payloads prepared before the clock starts.
MAX_TRACES_PER_SECOND = {10: 2_000, 100: 300}
T0 = 1_795_294_591_376_191_837


# --- Payloads -------------------------------------------------------------------------------


@dataclass
class Payloads:
    """One size's prepared template: OTLP protobuf and MLflow JSON bodies of one trace."""

    size: int
    otlp: bytes
    otel_trace_id: bytes  # the 16 bytes to swap for a fresh id in each body
    mlflow_spans: bytes  # traces.json
    duration_ns: int

    def otlp_bodies(self, n: int) -> list[tuple[str, bytes]]:
        out = []
        for _ in range(n):
            new = os.urandom(16)
            out.append((f"tr-{new.hex()}", self.otlp.replace(self.otel_trace_id, new)))
        return out

    def mlflow_bodies(self, n: int, experiment_id: int) -> list[tuple[str, bytes, bytes]]:
        old_b64 = base64.b64encode(self.otel_trace_id)
        old_id = f"tr-{self.otel_trace_id.hex()}".encode()
        out = []
        for _ in range(n):
            new = os.urandom(16)
            trace_id = f"tr-{new.hex()}"
            spans = self.mlflow_spans.replace(old_b64, base64.b64encode(new)).replace(
                old_id, trace_id.encode()
            )
            out.append((trace_id, self.trace_info(trace_id, experiment_id), spans))
        return out

    def trace_info(self, trace_id: str, experiment_id: int) -> bytes:
        info = {
            "trace_id": trace_id,
            "trace_location": {
                "type": "MLFLOW_EXPERIMENT",
                "mlflow_experiment": {"experiment_id": str(experiment_id)},
            },
            "request_time": datetime.fromtimestamp(T0 / 1e9, UTC).isoformat(),
            "execution_duration": f"{self.duration_ns / 1e9:.3f}s",
            "state": "OK",
            "trace_metadata": {"mlflow.trace_schema.version": "3", "mlflow.user": "bench"},
            "tags": {"mlflow.traceName": "agent"},
            "request_preview": "How do I reset my password?",
            "response_preview": "Open Settings, then Security.",
        }
        return json.dumps({"trace": {"trace_info": info}}).encode()


def build_payloads(size: int) -> Payloads:
    """One agent trace of `size` spans made with the real OTel SDK, encoded by its exporter's
    encoder; span i's parent is span (i - 1) // 4, so the tree is a few levels deep."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import set_span_in_context

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    question = [{"role": "user", "content": "How do I reset my password? " * 4}]
    opened = []
    for i in range(size):
        parent = set_span_in_context(opened[(i - 1) // 4]) if i else None
        name, attributes = _span_attributes(i, question)
        opened.append(
            tracer.start_span(name, context=parent, attributes=attributes, start_time=T0 + i * 1000)
        )
    duration = size * 1000 + 500
    for i, span in reversed(list(enumerate(opened))):
        span.end(end_time=T0 + (duration if i == 0 else i * 1000 + 900))
    provider.shutdown()
    spans = memory.get_finished_spans()
    request = encode_spans(spans)
    trace_id = spans[0].context.trace_id.to_bytes(16, "big")
    return Payloads(
        size=size,
        otlp=request.SerializeToString(),
        otel_trace_id=trace_id,
        mlflow_spans=_traces_json(spans, trace_id),
        duration_ns=duration,
    )


def _span_attributes(i: int, question: list[dict]) -> tuple[str, dict]:
    if i == 0:
        return "agent", {
            "mlflow.spanType": "AGENT",
            "mlflow.spanInputs": json.dumps({"messages": question}),
            "mlflow.spanOutputs": json.dumps({"answer": "Open Settings, then Security."}),
        }
    kind = i % 3
    if kind == 1:
        answer = [{"role": "assistant", "content": "Open Settings, then Security. " * 3}]
        return f"llm-{i}", {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.input.messages": json.dumps(question),
            "gen_ai.output.messages": json.dumps(answer),
            "gen_ai.usage.input_tokens": 42,
            "gen_ai.usage.output_tokens": 17,
        }
    if kind == 2:
        return f"tool-{i}", {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search_docs",
            "gen_ai.tool.call.arguments": json.dumps({"query": "reset password", "k": 3}),
            "gen_ai.tool.call.result": json.dumps({"hits": 3}),
        }
    docs = [{"id": f"kb-{n}", "text": "To reset a password, open Settings. " * 2} for n in range(3)]
    return f"retrieve-{i}", {
        "openinference.span.kind": "RETRIEVER",
        "input.value": "reset password",
        "output.value": json.dumps(docs),
        "output.mime_type": "application/json",
    }


def _traces_json(spans, trace_id: bytes) -> bytes:
    """The same spans as MLflow's `traces.json` (every attribute value JSON-encoded)."""

    def b64(value: int, size: int) -> str:
        return base64.b64encode(value.to_bytes(size, "big")).decode()

    request_id = json.dumps(f"tr-{trace_id.hex()}")
    out = []
    for span in spans:
        attributes = {key: json.dumps(value) for key, value in span.attributes.items()}
        # Inputs and outputs are JSON text already (SDK attributes cannot hold objects).
        for key in ("mlflow.spanInputs", "mlflow.spanOutputs"):
            if key in span.attributes:
                attributes[key] = span.attributes[key]
        attributes.setdefault("mlflow.spanType", json.dumps("UNKNOWN"))
        attributes["mlflow.traceRequestId"] = request_id
        out.append(
            {
                "trace_id": base64.b64encode(trace_id).decode(),
                "span_id": b64(span.context.span_id, 8),
                "parent_span_id": b64(span.parent.span_id, 8) if span.parent else None,
                "name": span.name,
                "start_time_unix_nano": span.start_time,
                "end_time_unix_nano": span.end_time,
                "events": [],
                "status": {"code": "STATUS_CODE_OK", "message": ""},
                "attributes": attributes,
            }
        )
    return json.dumps({"spans": out}).encode()


# --- Clients --------------------------------------------------------------------------------


@dataclass
class Result:
    path: str
    server: str
    size: int
    seconds: float = 0.0
    traces: int = 0
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exhausted: bool = False
    stored: tuple[int, int] | None = None  # (traces, spans) counted afterwards
    server_cpu: float | None = None  # CPU seconds the server's processes used meanwhile

    @property
    def traces_per_second(self) -> float:
        return self.traces / self.seconds

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def spans_per_second(self) -> float:
        return self.traces * self.size / self.seconds

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.server_cpu is None or not self.requests:
            return None
        return self.server_cpu * 1000 / self.requests

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0


def drive(
    result: Result,
    port: int,
    work: list,
    send: Callable[[http.client.HTTPConnection, object, list[float]], int],
    clients: int,
    seconds: float,
    server_pid: int | None = None,
) -> Result:
    """Send work items from `clients` threads, each on one keep-alive connection, until the
    time is up or the prepared items run out."""
    cpu_before = process_tree_cpu(server_pid) if server_pid else None
    items = iter(work)
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies: list[float] = []
        traces = requests = 0
        while time.perf_counter() < stop:
            with lock:
                item = next(items, None)
            if item is None:
                result.exhausted = True
                break
            try:
                requests += send(conn, item, latencies)
                traces += 1
            except Exception as exc:  # reported with the figures
                result.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.close()
        with lock:
            result.latencies += latencies
            result.traces += traces
            result.requests += requests

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    if cpu_before is not None:
        result.server_cpu = process_tree_cpu(server_pid) - cpu_before
    return result


def process_tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (Linux /proc; 0 elsewhere).
    The database server's own processes are not included."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, cpu seconds)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    tree, total, grew = {pid}, 0.0, True
    while grew:
        grew = False
        for child, (parent, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    for member in tree:
        total += stats.get(member, (0, 0.0))[1]
    return total


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict):
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
    return data


def otlp_sender(experiment_id: int):
    headers = {
        "Content-Type": "application/x-protobuf",
        "x-mlflow-experiment-id": str(experiment_id),
    }

    def send(conn, item, latencies: list[float]) -> int:
        _trace_id, body = item
        started = time.perf_counter()
        request(conn, "POST", "/v1/traces", body, headers)
        latencies.append(time.perf_counter() - started)
        return 1

    return send


def mlflow_sender():
    json_headers = {"Content-Type": "application/json"}
    text_headers = {"Content-Type": "text/plain"}

    def send(conn, item, latencies: list[float]) -> int:
        _trace_id, info, spans = item
        started = time.perf_counter()
        answer = json.loads(request(conn, "POST", "/api/3.0/mlflow/traces", info, json_headers))
        middle = time.perf_counter()
        location = answer["trace"]["trace_info"]["tags"]["mlflow.artifactLocation"]
        path = location.removeprefix("mlflow-artifacts:/")
        request(
            conn,
            "PUT",
            f"/api/2.0/mlflow-artifacts/artifacts/{path}/traces.json",
            spans,
            text_headers,
        )
        latencies += [middle - started, time.perf_counter() - middle]
        return 2

    return send


# --- Running --------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10, 100])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--app", default="webapp.wsgi", help="WSGI module for gunicorn (to try out a change)"
    )
    parser.add_argument("--no-mlflow-server", action="store_true", help="skip the comparison")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with scratch("spyglass-bench-http-") as tmp:
        run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    env = bench_env(tmp)
    os.environ.update(
        {k: env[k] for k in ("DATABASE_URL", "SPYGLASS_VAR_DIR", "SPYGLASS_ARTIFACT_ROOT")}
    )
    manage(env, "migrate")

    import django

    django.setup()
    from django.db import connection

    from tracking.models import Experiment, Span, Trace

    vendor = connection.vendor
    nonce = secrets.token_hex(3)
    payloads = {size: build_payloads(size) for size in args.sizes}
    print(f"database: {vendor} ({env['DATABASE_URL'].split('@')[-1]})")
    print(
        f"server: gunicorn {args.app} -w {args.workers} --threads {args.threads}; "
        f"{args.clients} client threads, {args.seconds:g} s per run; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} before the runs (other work skews the figures)"
    )
    print("payload bytes per trace (OTLP protobuf / traces.json): " + ", ".join(
        f"{size} spans {len(p.otlp):,} / {len(p.mlflow_spans):,}" for size, p in payloads.items()
    ))  # fmt: skip

    port = free_port()
    gunicorn = [
        str(BIN / "gunicorn"), args.app, "-w", str(args.workers), "--threads",
        str(args.threads), "-b", f"127.0.0.1:{port}",
    ]  # fmt: skip
    probe = {"Content-Type": "application/x-protobuf"}
    results: list[Result] = []

    def ready() -> bool:
        return answers(port, "POST", "/v1/traces", b"", probe)

    with server(gunicorn, env, tmp / "gunicorn.log", ready) as proc:
        experiments: list[Experiment] = []

        def experiment(label: str) -> Experiment:
            exp = Experiment.objects.create(name=f"bench-http-{label}-{nonce}")
            experiments.append(exp)
            return exp

        # Warm-up: connections, imports and caches in every worker.
        warm = experiment("warm-up")
        drive(Result("warm", "spyglass", 10), port, payloads[args.sizes[0]].otlp_bodies(200),
              otlp_sender(warm.pk), args.clients, 1.0)  # fmt: skip
        mlflow_ready = mlflow_path_available(port, payloads[args.sizes[0]], warm.pk)
        print(HEADER)

        for size in args.sizes:
            pool = int(MAX_TRACES_PER_SECOND.get(size, 200) * args.seconds)
            exp = experiment(f"otlp-{size}")
            work = payloads[size].otlp_bodies(pool)
            result = drive(Result("otlp", "spyglass", size), port, work, otlp_sender(exp.pk),
                           args.clients, args.seconds, proc.pid)  # fmt: skip
            result.stored = count(Trace, Span, exp)
            results.append(result)
            print_row(result, vendor)
            if mlflow_ready:
                exp = experiment(f"mlflow-{size}")
                work = payloads[size].mlflow_bodies(pool, exp.pk)
                result = drive(Result("mlflow", "spyglass", size), port, work, mlflow_sender(),
                               args.clients, args.seconds, proc.pid)  # fmt: skip
                result.stored = count(Trace, Span, exp)
                results.append(result)
                print_row(result, vendor)
        if not mlflow_ready:
            print(
                "note: the MLflow path (StartTraceV3 + traces.json PUT) is not served yet; skipped"
            )
        if vendor == "postgresql":
            # A dedicated database, but keep it small run after run.
            Trace.objects.filter(experiment__in=experiments).delete()
            Experiment.objects.filter(pk__in=[e.pk for e in experiments]).delete()

    if not args.no_mlflow_server:
        results += compare_with_mlflow(
            args, tmp, payloads, [r for r in results if r.path == "otlp"]
        )
    print_summary(results, vendor)


def mlflow_path_available(port: int, payloads: Payloads, experiment_id: int) -> bool:
    (item,) = payloads.mlflow_bodies(1, experiment_id)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        mlflow_sender()(conn, item, [])
        return True
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        print(f"note: MLflow path probe failed: {exc}")
        return False
    finally:
        conn.close()


def count(trace_model, span_model, experiment) -> tuple[int, int]:
    return (
        trace_model.objects.filter(experiment=experiment).count(),
        span_model.objects.filter(trace__experiment=experiment).count(),
    )


def compare_with_mlflow(args, tmp: Path, payloads: dict[int, Payloads], ours: list[Result]):
    """The same OTLP payloads against `mlflow server` on SQLite, when mlflow is installed."""
    if not (BIN / "mlflow").exists():
        print("note: mlflow is not installed; no comparison with mlflow server")
        return []
    port = free_port()
    db = tmp / "mlflow.db"
    command = [
        str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}",
        "--default-artifact-root", str(tmp / "mlflow-artifacts"), "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(args.workers),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    results = []
    with server(command, env, tmp / "mlflow.log", lambda: answers(port, "GET", "/health")) as proc:
        # The Default experiment "0"; the header is required by MLflow's OTLP endpoint.
        warm = payloads[args.sizes[0]].otlp_bodies(50)
        drive(Result("warm", "mlflow", 10), port, warm, otlp_sender(0), args.clients, 1.0)
        before = _mlflow_counts(db)
        for size in args.sizes:
            pool = int(MAX_TRACES_PER_SECOND.get(size, 200) * args.seconds)
            work = payloads[size].otlp_bodies(pool)
            result = drive(Result("otlp", "mlflow server", size), port, work, otlp_sender(0),
                           args.clients, args.seconds, proc.pid)  # fmt: skip
            after = _mlflow_counts(db)
            result.stored = (after[0] - before[0], after[1] - before[1])
            before = after
            results.append(result)
            print_row(result, "sqlite")
    for theirs in results:
        mine = next((r for r in ours if r.size == theirs.size), None)
        if mine and theirs.spans_per_second:
            print(
                f"ratio, {theirs.size}-span traces over OTLP: Spyglass "
                f"{mine.spans_per_second / theirs.spans_per_second:.1f}x mlflow server's spans/s"
            )
    return results


def _mlflow_counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        traces = conn.execute("SELECT count(*) FROM trace_info").fetchone()[0]
        spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    return traces, spans


# --- Printing -------------------------------------------------------------------------------

HEADER = (
    f"{'server':<14}{'path':<8}{'spans/trace':>12}{'traces/s':>10}{'requests/s':>12}"
    f"{'spans/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms/req':>11}  {'db':<11}stored/sent"
)


def print_row(result: Result, vendor: str) -> None:
    cpu = "-" if result.cpu_ms_per_request is None else f"{result.cpu_ms_per_request:.1f}"
    stored = "?"
    if result.stored is not None:
        traces, spans = result.stored
        ok = traces == result.traces and spans == result.traces * result.size
        sent = result.traces * result.size
        verdict = "ok" if ok else "MISMATCH"
        stored = f"{traces}/{result.traces} traces, {spans}/{sent} spans {verdict}"
    print(
        f"{result.server:<14}{result.path:<8}{result.size:>12}{result.traces_per_second:>10,.0f}"
        f"{result.requests_per_second:>12,.0f}{result.spans_per_second:>10,.0f}"
        f"{result.percentile(0.5):>9.1f}{result.percentile(0.95):>9.1f}{cpu:>11}"
        f"  {vendor:<11}{stored}"
    )
    if result.exhausted:
        print(f"  note: the {len(result.latencies)} prepared traces ran out before the time")
    if result.errors:
        print(f"  {len(result.errors)} errors, first: {result.errors[0]}")


def print_summary(results: list[Result], vendor: str) -> None:
    print()
    for (target_vendor, path, size), (unit, target) in TARGETS.items():
        if target_vendor != vendor:
            continue
        result = next(
            (r for r in results if (r.server, r.path, r.size) == ("spyglass", path, size)), None
        )
        if result is None:
            continue
        value = result.spans_per_second if unit == "spans/s" else result.requests_per_second
        verdict = "met" if value >= target else "MISSED"
        print(
            f"target {path} {size}-span traces on {vendor}: >= {target:,} {unit}: "
            f"{value:,.0f} ({verdict})"
        )


if __name__ == "__main__":
    main()
