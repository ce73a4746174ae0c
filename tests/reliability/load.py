"""A mixed ingest load, as many agents produce it, and the count check after it.

Shared by tests/reliability/test_load.py (bounded) and bench/load.py (bigger). Traces go by
both paths; some are sent twice, some arrive spans-first (before their info), some in two
OTLP requests with the second half first. Whatever the order and repetition, every trace
and span must be stored exactly once.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from dataclasses import dataclass, field

from tests.payloads import (
    mlflow_info,
    mlflow_spans,
    otlp_body,
    traces_json_path,
)

SIZES = (1, 3, 10, 40)
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}


@dataclass
class Planned:
    trace_id: bytes
    size: int
    requests: list[tuple[str, str, bytes, dict]]  # method, path, body, headers


@dataclass
class Outcome:
    seconds: float = 0.0
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def plan(n_traces: int, experiment_id: int = 0) -> list[Planned]:
    out = []
    for i in range(n_traces):
        trace_id = os.urandom(16)
        size = SIZES[i % len(SIZES)]
        if i % 2 == 0:
            if size > 1 and i % 8 == 0:
                # Two requests for one trace, the second half first.
                half = size // 2
                first, second = _split(trace_id, size, half)
                requests = [("POST", "/v1/traces", second, PROTOBUF),
                            ("POST", "/v1/traces", first, PROTOBUF)]  # fmt: skip
            else:
                requests = [("POST", "/v1/traces", otlp_body(trace_id, size), PROTOBUF)]
        else:
            info = ("POST", "/api/3.0/mlflow/traces", mlflow_info(trace_id, experiment_id), JSON)
            spans = ("PUT", traces_json_path(trace_id, experiment_id),
                     mlflow_spans(trace_id, size), TEXT)  # fmt: skip
            requests = [spans, info] if i % 3 == 0 else [info, spans]
        if i % 10 == 0:
            requests = requests + requests  # the client retried after a lost answer
        out.append(Planned(trace_id, size, requests))
    return out


def _split(trace_id: bytes, size: int, half: int) -> tuple[bytes, bytes]:
    """OTLP bodies of spans [0, half) and [half, size) of one trace."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    whole = ExportTraceServiceRequest.FromString(otlp_body(trace_id, size))
    spans = list(whole.resource_spans[0].scope_spans[0].spans)
    bodies = []
    for part in (spans[:half], spans[half:]):
        request = ExportTraceServiceRequest()
        request.resource_spans.add().scope_spans.add().spans.extend(part)
        bodies.append(request.SerializeToString())
    return bodies[0], bodies[1]


def send_all(host: str, port: int, planned: list[Planned], clients: int) -> Outcome:
    """Send every planned trace from `clients` threads on keep-alive connections; a trace's
    requests go in order on one connection."""
    outcome = Outcome()
    items = iter(planned)
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        latencies, failures, requests = [], [], 0
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                break
            for method, path, body, headers in item.requests:
                started = time.perf_counter()
                try:
                    conn.request(method, path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    failures.append(f"{method} {path}: {exc!r}")
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=60)
                    continue
                latencies.append(time.perf_counter() - started)
                requests += 1
                if response.status != 200:
                    failures.append(f"{method} {path}: {response.status} {data[:200]!r}")
        conn.close()
        with lock:
            outcome.latencies += latencies
            outcome.failures += failures
            outcome.requests += requests

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.seconds = time.perf_counter() - started
    return outcome


COUNT_SQL = "SELECT COUNT(*), COALESCE(SUM(span_count), 0) FROM tracking_trace"
SPANS_SQL = "SELECT COUNT(*) FROM tracking_span"
MISCOUNTED_SQL = (
    "SELECT COUNT(*) FROM tracking_trace t WHERE t.span_count != "
    "(SELECT COUNT(*) FROM tracking_span s WHERE s.trace_id = t.id)"
)
