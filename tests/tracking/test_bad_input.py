"""Client input that once answered 500 (an independent probe, issue 12): each repro is one
request, answered 4xx with a message that says what is wrong, or stored, as values too deep
to read are stored (as text); either way nothing stored before changes. Run on SQLite and on
PostgreSQL, which refuses NUL and 64-bit overflows where SQLite did not."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.forms.models import model_to_dict
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.payloads import mlflow_client_trace
from tracking import ingest
from tracking.models import Assessment, Experiment, LoggedModel, Run, Span, Trace
from webapp import json_limits

T0 = 1_795_294_591_376_191_837
DEEP_BODY = b'{"name":' + b"[" * 5000 + b"]" * 5000 + b"}"
TOO_DEEP = "nested deeper than 64 levels"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _artifacts_of_its_own(artifact_root: Path) -> Path:
    return artifact_root


@pytest.fixture
def experiment() -> Experiment:
    Experiment.objects.get_or_create(pk=0, defaults={"name": "Default"})
    return Experiment.objects.create(name="stored-before", tags={"team": "a"})


@pytest.fixture
def stored(experiment: Experiment) -> dict[str, Any]:
    """A trace with two spans, a run and a model: what a bad request must leave as it was."""
    info, spans = mlflow_trace(experiment.pk)
    ingest.store_trace(info, spans)
    Run.objects.create(experiment=experiment, name="a-run", params={"alpha": "0.5"})
    LoggedModel.objects.create(experiment=experiment, name="agent")
    return {"experiment": experiment, "trace_id": info["trace_id"], "info": info}


def snapshot() -> dict[str, list[dict[str, Any]]]:
    models = (Experiment, Run, LoggedModel, Trace, Span, Assessment)
    return {
        model.__name__: [model_to_dict(row) for row in model.objects.order_by("pk")]
        for model in models
    }


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def mlflow_trace(experiment_id: int, **info_fields: Any) -> tuple[dict, list[dict]]:
    return mlflow_client_trace(experiment_id, ("root", "child"), **info_fields)


def traces_json_url(experiment_id: int, trace_id: str) -> str:
    return (
        f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/traces/{trace_id}"
        "/artifacts/traces.json"
    )


def otlp_json_span(trace_hex: str, span_hex: str, attributes: list[dict]) -> dict:
    return {
        "traceId": trace_hex,
        "spanId": span_hex,
        "name": "span",
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 1000),
        "attributes": attributes,
    }


def otlp_json(*spans: dict) -> bytes:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}
    return json.dumps(body).encode()


def nested_text(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# --- JSON nested too deep: refused before it reaches any parser that recurses ----------------


def deep_endpoints(stored: dict[str, Any]) -> list[tuple[str, str]]:
    trace_id = stored["trace_id"]
    return [
        ("post", "/api/2.0/mlflow/experiments/create"),
        ("post", "/api/2.0/mlflow/runs/search"),
        ("post", "/api/3.0/mlflow/traces/search"),
        ("post", f"/api/3.0/mlflow/traces/{trace_id}/assessments"),
        ("put", traces_json_url(stored["experiment"].pk, trace_id)),
        ("post", "/api/v1/traces/"),
        ("post", "/api/v1/experiments/"),
        ("patch", f"/api/v1/traces/{trace_id}/tags/"),
        ("post", "/v1/traces"),
    ]


def test_json_nested_too_deep_is_a_400_naming_the_limit_everywhere(client, stored):
    before = snapshot()

    for method, path in deep_endpoints(stored):
        response = getattr(client, method)(path, DEEP_BODY, content_type="application/json")

        assert response.status_code == 400, (path, response.content[:200])
        if path.startswith("/api/v1/"):
            message = response.json()["detail"]
        elif path == "/v1/traces":  # a google.rpc.Status, in the request's encoding (JSON)
            status = json_format.Parse(response.content, Status())
            assert status.code == 3  # INVALID_ARGUMENT
            message = status.message
        else:
            assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
            message = response.json()["message"]
        assert TOO_DEEP in message, (path, message)
    assert snapshot() == before


def test_the_depth_limit_is_exact_and_leaves_shallower_bodies_alone():
    at_limit = b"[" * json_limits.MAX_DEPTH + b"]" * json_limits.MAX_DEPTH

    assert json_limits.loads(at_limit) == json.loads(at_limit)
    with pytest.raises(json_limits.JsonError, match=TOO_DEEP):
        json_limits.loads(b"[" + at_limit + b"]")
    # The trick it rests on: orjson's own limit, which a new orjson could change.
    import orjson

    orjson.loads(b"[" * json_limits.ORJSON_MAX_DEPTH + b"]" * json_limits.ORJSON_MAX_DEPTH)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(b"[" * (json_limits.ORJSON_MAX_DEPTH + 1) + b"]" * 1025)


@pytest.mark.parametrize("body", [b"1, 2", b"1], [2", b"{} {}", b"[1"])
def test_what_is_not_one_json_value_is_still_invalid(body):
    with pytest.raises(json_limits.JsonError, match="not valid JSON"):
        json_limits.loads(body)


def test_nan_bodies_are_depth_checked_too(client, stored):
    before = snapshot()
    body = b'{"run_id": "x", "key": "m", "value": NaN, "extra": ' + b"[" * 200 + b"]" * 200 + b"}"

    response = client.post("/api/2.0/mlflow/runs/log-metric", body, content_type="application/json")

    assert response.status_code == 400
    assert TOO_DEEP in response.json()["message"]
    assert snapshot() == before


def test_otlp_json_nested_1000_deep_is_a_400_status(client, stored):
    before = snapshot()
    value: dict = {"stringValue": "leaf"}
    for _ in range(1000):
        value = {"arrayValue": {"values": [value]}}
    span = otlp_json_span("ab" * 16, "cd" * 8, [{"key": "deep", "value": value}])
    body = b'{"resourceSpans": [{"scopeSpans": [{"spans": [' + _dumps_deep(span) + b"]}]}]}"

    response = client.post("/v1/traces", body, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert TOO_DEEP in json_format.Parse(response.content, Status()).message
    assert snapshot() == before


def test_otlp_protobuf_nested_deep_is_a_400_protobuf_status(client, stored):
    before = snapshot()
    # Written by hand: protobuf itself refuses to build a message this deep.
    value = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(300):
        array = _field(1, value)  # ArrayValue.values
        value = _field(5, array)  # AnyValue.array_value
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes.fromhex("ab" * 16), span_id=bytes.fromhex("cd" * 8), name="s",
        start_time_unix_nano=T0,
    )  # fmt: skip
    span.attributes.add(key="deep")
    shallow = request.SerializeToString()
    # Splice the deep value in as the attribute's `value` (KeyValue field 2).
    key_value = _field(1, b"deep") + _field(2, value)
    body = _rebuild(shallow, key_value)

    response = client.post("/v1/traces", body, content_type="application/x-protobuf")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/x-protobuf"
    assert Status.FromString(response.content).code == 3
    assert snapshot() == before


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _rebuild(shallow: bytes, key_value: bytes) -> bytes:
    request = ExportTraceServiceRequest.FromString(shallow)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    del span.attributes[:]
    span_bytes = span.SerializeToString() + _field(9, key_value)  # Span.attributes
    scope = _field(2, span_bytes)  # ScopeSpans.spans
    resource = _field(2, scope)  # ResourceSpans.scope_spans
    return _field(1, resource)  # ExportTraceServiceRequest.resource_spans


def _dumps_deep(value: Any) -> bytes:
    return json_limits.text_of(value).encode()


# --- Values too deep to keep as JSON: stored as text, the batch kept -------------------------


@pytest.mark.parametrize("depth", [254, 255, 300, 1024, 5000])
def test_otlp_span_inputs_nested_too_deep_are_stored_as_text(client, stored, depth):
    before = snapshot()
    deep = nested_text(depth)
    trace_hex = os.urandom(16).hex()
    body = otlp_json(
        otlp_json_span(trace_hex, "01" * 8, [
            {"key": "mlflow.spanInputs", "value": {"stringValue": deep}},
            {"key": "mlflow.spanOutputs", "value": {"stringValue": '"fine"'}},
        ]),
        otlp_json_span(trace_hex, "02" * 8, [
            {"key": "mlflow.spanInputs", "value": {"stringValue": '{"q": "shallow"}'}},
        ]) | {"parentSpanId": "01" * 8},
    )  # fmt: skip

    response = client.post("/v1/traces", body, content_type="application/json")

    assert response.status_code == 200, response.content[:300]
    spans = {s.span_id: s for s in Span.objects.filter(trace__trace_id=f"tr-{trace_hex}")}
    assert set(spans) == {"01" * 8, "02" * 8}  # the whole batch is kept
    deep_inputs = spans["01" * 8].inputs
    if depth < 255:  # orjson writes it: kept as JSON
        assert deep_inputs == json.loads(deep)
    else:  # shown as text, the text it was sent as
        assert isinstance(deep_inputs, str)
        assert deep_inputs.replace(" ", "") == deep
    assert spans["02" * 8].inputs == {"q": "shallow"}
    trace = Trace.objects.get(trace_id=f"tr-{trace_hex}")
    assert trace.request_preview  # the preview of the root's inputs, cut short
    assert client.get(f"/traces/tr-{trace_hex}/").status_code == 200
    detail = client.get(f"/traces/tr-{trace_hex}/spans/{'01' * 8}/", headers={"HX-Request": "1"})
    assert detail.status_code == 200
    after = snapshot()
    assert {k: v for k, v in after.items() if k not in ("Trace", "Span")} == {
        k: v for k, v in before.items() if k not in ("Trace", "Span")
    }
    assert all(row in after["Trace"] for row in before["Trace"])
    assert all(row in after["Span"] for row in before["Span"])


def test_span_values_orjson_cannot_write_are_stored_as_text_through_ingest(stored):
    deep: list = []
    for _ in range(400):
        deep = [deep]
    info, spans = mlflow_trace(stored["experiment"].pk)
    spans[0]["attributes"]["big"] = 2**70  # a Python client's value, not JSON text
    spans[0]["attributes"]["fine"] = json.dumps({"x": 1})
    spans[0]["events"] = [{"name": "e", "attributes": {"deep": deep, "ok": 1}}]

    ingest.store_trace(info, spans)
    span = Span.objects.get(trace__trace_id=info["trace_id"], name="root")
    assert span.attributes["fine"] == {"x": 1}  # a neighbour of a bad value stays JSON
    assert span.attributes["big"] == str(2**70)
    assert span.events[0]["attributes"]["ok"] == 1
    assert isinstance(span.events[0]["attributes"]["deep"], str)

    deep_inputs: Any = {"q": "x"}
    for _ in range(600):
        deep_inputs = {"a": deep_inputs}
    playground_span = ingest.make_span(
        trace_id=info["trace_id"], span_id="0f" * 8, parent_span_id="", name="direct",
        start_ns=T0, inputs=deep_inputs,
    )  # fmt: skip
    ingest.store(spans=[playground_span])
    stored_inputs = Span.objects.get(span_id="0f" * 8).inputs
    assert isinstance(stored_inputs, str) and stored_inputs.startswith('{"a":{"a":')


def test_a_deep_attribute_in_traces_json_is_kept_as_text(client, stored):
    info, spans = mlflow_trace(stored["experiment"].pk)
    spans[1]["attributes"]["mlflow.spanInputs"] = nested_text(5000)
    spans[1]["attributes"]["nan"] = "[NaN, " + nested_text(3000) + "]"
    client.post(
        "/api/3.0/mlflow/traces",
        json.dumps({"trace": {"trace_info": info}}),
        content_type="application/json",
    )

    response = client.put(
        traces_json_url(stored["experiment"].pk, info["trace_id"]),
        json.dumps({"spans": spans}),
        content_type="application/json",
    )

    assert response.status_code == 200, response.content[:300]
    child = Span.objects.get(trace__trace_id=info["trace_id"], name="child")
    assert child.inputs == nested_text(5000)
    assert child.attributes["nan"].startswith("[NaN, ")
    read_back = client.get(traces_json_url(stored["experiment"].pk, info["trace_id"]))
    assert read_back.status_code == 200


# --- NUL: stripped in ingest, the same on both databases; refused in URLs -------------------


def test_nul_in_a_trace_info_and_span_type_is_dropped_not_a_500(client, stored):
    before = snapshot()
    info, spans = mlflow_trace(
        stored["experiment"].pk,
        request_preview="hel\u0000lo",
        trace_metadata={"k\u0000ey": "va\u0000lue", "mlflow.modelId": "m-\u0000"},
        tags={"t\u0000": "v\u0000", "mlflow.traceName": "na\u0000me"},
    )
    spans[0]["attributes"]["mlflow.spanType"] = json.dumps("LL\u0000M")
    spans[0]["attributes"]["ke\u0000y"] = json.dumps("va\u0000l \\u0000 kept")
    spans[0]["name"] = "ro\u0000ot"

    started = client.post(
        "/api/3.0/mlflow/traces",
        json.dumps({"trace": {"trace_info": info}}),
        content_type="application/json",
    )
    uploaded = client.put(
        traces_json_url(stored["experiment"].pk, info["trace_id"]),
        json.dumps({"spans": spans}),
        content_type="application/json",
    )

    assert started.status_code == 200, started.content
    assert uploaded.status_code == 200, uploaded.content
    trace = Trace.objects.get(trace_id=info["trace_id"])
    assert trace.request_preview == "hello"
    assert trace.metadata["key"] == "value"
    assert trace.tags["t"] == "v" and trace.name == "name"
    root = Span.objects.get(trace=trace, parent_span_id="")
    assert (root.name, root.span_type) == ("root", "LLM")
    assert root.attributes["key"] == "val \\u0000 kept"  # the text "\u0000" is not a NUL
    after = snapshot()
    assert [r for r in after["Trace"] if r["trace_id"] != info["trace_id"]] == before["Trace"]


def test_nul_through_otlp_is_dropped(client, stored):
    trace_hex = os.urandom(16).hex()
    body = otlp_json(
        otlp_json_span(trace_hex, "01" * 8, [
            {"key": "mlflow.spanType", "value": {"stringValue": "TO\u0000OL"}},
            {"key": "mlflow.spanInputs", "value": {"stringValue": '{"q\\u0000": "a\\u0000"}'}},
            {"key": "k\u0000", "value": {"stringValue": "v\u0000"}},
        ])
    )  # fmt: skip

    response = client.post("/v1/traces", body, content_type="application/json")

    assert response.status_code == 200, response.content
    span = Span.objects.get(trace__trace_id=f"tr-{trace_hex}")
    assert span.span_type == "TOOL"
    assert span.inputs == {"q": "a"}
    assert span.attributes["k"] == "v"


@pytest.mark.parametrize(
    "url",
    [
        "/traces/tr-%00/",
        "/traces/tr-%00/layout/",
        "/traces/?q=%00",
        "/models/m-%00/",
        "/models/m-%00/traces/",
        "/models/compare/?ids=m-%00",
        "/models/?name=a%00",
        "/playground/?replay=tr-%00",
        "/playground/?model=m-%00",
        "/api/v1/traces/tr-%00/",
        "/api/v1/traces/?name=%00",
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=a%00",
        "/api/2.0/mlflow/logged-models/m-%00",
    ],
)
def test_nul_in_a_url_is_a_400_never_a_500(client, stored, url):
    before = snapshot()

    response = client.get(url)

    assert response.status_code == 400
    assert "NUL" in response.content.decode()
    if url.startswith("/api/2.0/"):
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert snapshot() == before


# --- Numbers out of range and values of the wrong type in a trace info -----------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("execution_duration", "1e300s", "execution_duration must be a duration such as"),
        ("execution_duration", "NaNs", "execution_duration must be a duration such as"),
        ("execution_duration", "Infinitys", "execution_duration must be a duration such as"),
        ("execution_duration", "-1s", "execution_duration must be a duration such as"),
        ("execution_duration", "9999999999s", "execution_duration must be a duration such as"),
        ("execution_duration", 5, "execution_duration must be a duration"),
        ("state", [None], "state must be OK, ERROR or IN_PROGRESS"),
        ("state", {"a": 1}, "state must be OK, ERROR or IN_PROGRESS"),
        ("request_time", 1e300, "request_time is out of range"),
        ("request_preview", ["x"], "request_preview must be a string"),
        ("trace_metadata", ["x"], "trace_metadata must map strings to strings"),
        ("tags", {"reviewed": True}, "tags must map strings to strings"),
        ("trace_metadata", {"retries": 3}, "trace_metadata must map strings to strings"),
        (
            "trace_location",
            {"mlflow_experiment": {"experiment_id": "99999999999999999999"}},
            "experiment_id is out of range",
        ),
    ],
)
def test_a_trace_info_out_of_range_or_of_the_wrong_type_is_a_400(
    client, stored, field, value, message
):
    before = snapshot()
    info = {**stored["info"], field: value}  # the stored trace, re-sent with one bad field

    mlflow = client.post(
        "/api/3.0/mlflow/traces",
        json.dumps({"trace": {"trace_info": info}}),
        content_type="application/json",
    )
    native = client.post(
        "/api/v1/traces/", json.dumps({"trace_info": info}), content_type="application/json"
    )

    assert mlflow.status_code == 400
    assert mlflow.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in mlflow.json()["message"]
    assert native.status_code == 400
    assert message in native.json()["detail"]
    assert snapshot() == before


def test_a_huge_token_total_in_metadata_is_not_counted(client, stored):
    info, _ = mlflow_trace(
        stored["experiment"].pk,
        trace_metadata={"mlflow.trace.tokenUsage": json.dumps({"total_tokens": 10**30})},
    )

    response = client.post(
        "/api/3.0/mlflow/traces",
        json.dumps({"trace": {"trace_info": info}}),
        content_type="application/json",
    )

    assert response.status_code == 200
    assert Trace.objects.get(trace_id=info["trace_id"]).total_tokens is None


# --- Found by a fuzz of the MLflow endpoints (the captured client calls, each field swapped
# for a wrong type, a huge number, NUL, deep nesting) ---------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/2.0/mlflow/experiments/search", {"view_type": []}),
        ("/api/2.0/mlflow/runs/search", {"experiment_ids": ["1"], "run_view_type": {"a": 1}}),
        ("/api/2.0/mlflow/runs/update", {"run_id": "0" * 32, "status": [None]}),
    ],
)
def test_an_enum_sent_as_a_list_or_object_is_a_400(client, stored, path, body):
    before = snapshot()

    response = client.post(path, json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "must be one of" in response.json()["message"]
    assert snapshot() == before


def test_an_artifact_path_too_long_for_a_filesystem_is_a_400(client, stored):
    response = client.get("/api/2.0/mlflow-artifacts/artifacts", {"path": "a" * 300})

    assert response.status_code == 400
    assert "255 bytes a segment" in response.json()["message"]


def test_the_span_panel_shows_a_value_nested_past_its_depth_as_text():
    from tracking import json_tree

    value: Any = "leaf"
    for _ in range(250):  # as deep as ingest keeps JSON (orjson writes up to 254 levels)
        value = {"a": value}

    html = json_tree.render(value, "/full/", "s")

    assert html.count('<details class="jt"') == json_tree.MAX_DEPTH
    assert "{&quot;a&quot;:{&quot;a&quot;:" in html  # the rest, as its JSON text


def test_text_of_writes_what_orjson_refuses():
    deep: Any = [2**70]
    for _ in range(2000):
        deep = [deep]

    text = json_limits.text_of({"deep": deep, "bad": "\ud800", 1: float("nan")})

    assert text.startswith('{"deep":' + "[" * 2001 + str(2**70))
    assert text.endswith('"bad":"\ufffd","1":null}')
