"""Peak memory of a gunicorn worker ingesting one maximal OTLP request.

    .venv/bin/python bench/otlp_memory.py [--spans 1000,10000,50000] [--big-mb 8,32]

Serves Spyglass with `gunicorn webapp.wsgi -w 1 --threads 1` (a fresh worker per shape, so
each peak is its own) and sends one `POST /v1/traces` per shape:

- many spans: N small spans (names, two short attributes) in one trace;
- big fields: 64 spans whose `input.value` attributes add up to M MB of the body.

It reads the worker's peak resident set (VmHWM in /proc) before and after the request, and
prints the body size, the status and the peak. The figures in README.md ("Memory per web
worker") come from this script.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import REPO, answers, bench_env, free_port, scratch, server
from tests.payloads import otlp_body


def big_body(trace_id: bytes, megabytes: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1 import trace_pb2

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    per_span = megabytes * 1024 * 1024 // 64 - 200
    for i in range(64):
        spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=(i + 1).to_bytes(8, "big"),
                parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
                name=f"step-{i}",
                start_time_unix_nano=1_795_294_591_376_191_837 + i,
                end_time_unix_nano=1_795_294_591_376_191_837 + 10_000 + i,
                attributes=[
                    KeyValue(key="input.value", value=AnyValue(string_value="x" * per_span))
                ],
            )
        )
    return request.SerializeToString()


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def worker_pid(master: int) -> int:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True
    )
    return int(out.stdout.split()[0])


def measure(label: str, body: bytes) -> None:
    with scratch("spyglass-otlpmem-") as tmp:
        env = bench_env(tmp)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO, env=env, check=True,
        )  # fmt: skip
        port = free_port()
        command = [str(Path(sys.executable).parent / "gunicorn"), "webapp.wsgi", "-w", "1",
                   "--threads", "1", "-b", f"127.0.0.1:{port}", "--timeout", "600"]  # fmt: skip
        with server(command, env, tmp / "gunicorn.log",
                    lambda: answers(port, "GET", "/static/img/favicon.svg")) as proc:  # fmt: skip
            pid = worker_pid(proc.pid)
            before = peak_kib(pid)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            started = time.monotonic()
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            status = conn.getresponse().status
            took = time.monotonic() - started
            after = peak_kib(pid)
        print(
            f"{label:>22}  body {len(body) / 2**20:6.1f} MiB  status {status}  "
            f"{took:6.1f} s  worker peak {before / 1024:6.0f} -> {after / 1024:6.0f} MiB "
            f"(+{(after - before) / 1024:.0f})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", default="1000,10000,50000")
    parser.add_argument("--big-mb", default="8,32")
    args = parser.parse_args()
    for n in [int(x) for x in args.spans.split(",") if x]:
        measure(f"{n} small spans", otlp_body(os.urandom(16), n))
    for mb in [int(x) for x in args.big_mb.split(",") if x]:
        measure(f"64 spans, {mb} MiB fields", big_body(os.urandom(16), mb))


if __name__ == "__main__":
    main()
