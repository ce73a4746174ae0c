"""Every route x role (viewer, editor, admin) x experiment (the caller's own, where it holds
MANAGE; a foreign one, private to bob; a shared one, where roles decide), with the status the
rules promise and, for a refused write, proof that nothing changed.

Routes come from the URL configuration: each needs a sample request in SAMPLES (keyed by URL
name) or a reason in NOT_EXPERIMENT_ROUTES, so a new route fails here until its rule is stated.
The data is built once for the module; each case runs in its own rolled-back transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from access.models import ExperimentGrant, Level, UserRole
from evaluation import pairwise
from evaluation.models import EvaluationJob
from tracking.mlflow_api.permissions import RULES
from tracking.models import (
    Assessment,
    DatasetExperiment,
    DatasetRecord,
    EvaluationDataset,
    Experiment,
    LabelSchema,
    LoggedModel,
    Metric,
    ModelVersion,
    OnlineConfig,
    RegisteredModel,
    ReviewerStatus,
    ReviewItem,
    ReviewQueue,
    Run,
    Scorer,
    ScorerVersion,
    Span,
    SpanLogEvents,
    Trace,
    TraceSession,
)
from webapp.models import ApiToken

ROLES = ("viewer", "editor", "admin")
TARGETS = ("own", "foreign", "shared")
V2, V3 = "/api/2.0/mlflow/", "/api/3.0/mlflow/"

# Needs: an experiment level, or a right of the role, or a list (whose rows must follow READ).
CREATE, REG_READ, REG_WRITE, ANY, LIST = "create", "reg-read", "reg-write", "any", "list"
ADMIN = "admin"  # the access pages: admins only, 403 for everyone else

# Routes whose rule is not about experiments, and where that rule is tested.
NOT_EXPERIMENT_ROUTES = {
    "healthz": "monitoring, public (tests/webapp/test_healthz.py)",
    "login": "the login page itself, public",
    "logout": "ends the caller's own session",
    "tokens": "the caller's own tokens (tests/webapp/test_auth.py)",
    "revoke-token": "the caller's own tokens (tests/webapp/test_auth.py)",
    "api-root": "the API's index of links, no rows",
    "api-schema": "the OpenAPI schema, no rows",
    "api-docs": "Swagger UI for the schema, no rows",
    "evaluation:new": "the launch form: a role to write, and EDIT on the experiment chosen "
    "(tests/evaluation/test_launch_views.py)",
    "playground:new-chat": "playground chats with agents, ruled by their owners (tests/playground)",
    "playground:conversation": "playground conversations, per user (tests/playground)",
    "playground:send": "playground conversations, per user (tests/playground)",
    "playground:run": "playground conversations, per user (tests/playground)",
    "playground:cancel": "playground conversations, per user (tests/playground)",
    "playground:replay-cancel": "playground conversations, per user (tests/playground)",
    "playground:run-trace": "redirects to the trace page, which applies READ (here)",
    "playground:agents": "playground agents, admins only (tests/playground)",
    "playground:agent": "playground agents, admins only (tests/playground)",
    "playground:agent-delete": "playground agents, admins only (tests/playground)",
    "playground:agent-check-start": "testing an agent, admins only (tests/playground)",
    "playground:agent-check": "an agent's last check, shown in the agents list (tests/playground)",
    "playground:conversation-rename": "playground conversations, their owner (tests/playground)",
    "playground:conversation-delete": "playground conversations, their owner (tests/playground)",
    # MLflow refuses these for proxied artifact storage, after the permission rule: there is
    # no allowed call to sample (tests/tracking/test_mlflow_endpoints.py).
    "mlflow:artifacts-presigned-upload-url": "always refused (presigned URLs need cloud storage)",
    "mlflow:artifacts-presigned-download-url": "always refused (presigned URLs need cloud storage)",
    "mlflow:artifacts-multipart": "always refused (multipart uploads need cloud storage)",
    "mlflow:artifacts-presigned": "always refused (presigned URLs need cloud storage)",
}


def route_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns: list, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    continue  # the admin has its own login and staff checks
                inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
                walk(pattern.url_patterns, inner)
            elif isinstance(pattern, URLPattern) and pattern.name:
                names.add(namespace + pattern.name)

    walk(get_resolver().url_patterns, "")
    return names


@dataclass
class World:
    users: dict[str, User]
    tokens: dict[str, str]
    experiments: dict[str, Experiment]  # own-<role>, foreign, shared
    objects: dict[int, dict[str, str]] = field(default_factory=dict)  # ids by experiment pk


@dataclass
class Call:
    method: str
    path: str
    need: Any  # a Level, CREATE, REG_READ, REG_WRITE, ANY or LIST
    body: Any = None
    marker: str = ""  # LIST (and searches): present exactly when the target is readable
    headers: dict[str, str] = field(default_factory=dict)


def _trace_body(experiment: int) -> dict[str, Any]:
    return {
        "trace_id": "tr-" + uuid.uuid4().hex,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": str(experiment)},
        },
        "request_time": "2025-06-01T12:00:00Z",
        "state": "OK",
    }


def _otlp(experiment: int) -> Call:
    span = {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "name": "s",
        "startTimeUnixNano": "1000",
        "endTimeUnixNano": "2000",
    }
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    return Call(
        "POST", "/v1/traces", Level.EDIT, body, headers={"x-mlflow-experiment-id": str(experiment)}
    )


def _otlp_logs(experiment: int) -> Call:
    record = {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "eventName": "gen_ai.user.message",
        "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "hi"}}]}},
    }
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    return Call(
        "POST", "/v1/logs", Level.EDIT, body, headers={"x-mlflow-experiment-id": str(experiment)}
    )


def _assessment(trace_id: str) -> dict[str, Any]:
    return {
        "assessment": {
            "assessment_name": "quality",
            "trace_id": trace_id,
            "source": {"source_type": "HUMAN", "source_id": "x"},
            "feedback": {"value": True},
        }
    }


Sample = Callable[[int, dict[str, str]], list[Call]]
R, E, M = Level.READ, Level.EDIT, Level.MANAGE

SAMPLES: dict[str, Sample] = {
    # Pages
    "home": lambda e, o: [Call("GET", "/", LIST, marker=o["trace"])],
    "tracking:trace-list": lambda e, o: [
        Call("GET", "/traces/", LIST, marker=o["trace"]),
        Call("GET", f"/traces/?experiment={e}", R),
    ],
    "tracking:trace-bulk": lambda e, o: [
        Call(
            "POST",
            "/traces/bulk/",
            E,
            {"trace": o["trace"], "action": "tag", "tag_key": "k", "tag_value": "v"},
        ),
        Call(
            "POST", "/traces/bulk/", E, {"trace": o["trace"], "action": "delete", "confirm": "yes"}
        ),
    ],
    "tracking:trace-columns": lambda e, o: [
        Call("POST", "/traces/columns/", ANY, {"column": "time"})
    ],
    "tracking:trace-assessment-columns": lambda e, o: [
        Call("GET", "/traces/columns/assessments/", LIST, marker=f"q-{e}-end"),
        Call("GET", f"/traces/columns/assessments/?experiment={e}", R),
    ],
    # The experiment chooser lists readable experiments; the charts count readable traces.
    "tracking:overview": lambda e, o: [
        Call("GET", "/overview/", LIST, marker=f"{o['name']}</option>"),
        Call("GET", f"/overview/?experiment={e}", R, marker=o["model"]),
    ],
    "tracking:session-list": lambda e, o: [
        Call("GET", "/sessions/", LIST, marker=o["session"]),
        Call("GET", f"/sessions/?experiment={e}&user=nobody", ANY),
    ],
    "tracking:session-detail": lambda e, o: [
        Call("GET", f"/sessions/{o['session']}/", R),
        Call("GET", f"/sessions/{o['session']}/?experiment={e}", R),
    ],
    "tracking:trace-detail": lambda e, o: [Call("GET", f"/traces/{o['trace']}/", R)],
    "tracking:trace-layout": lambda e, o: [Call("GET", f"/traces/{o['trace']}/layout/", R)],
    "tracking:trace-diff": lambda e, o: [
        Call("GET", f"/traces/diff/?a={o['trace']}&b={o['trace2']}", R)
    ],
    "tracking:trace-diff-layout": lambda e, o: [
        Call("GET", f"/traces/diff/layout/?a={o['trace']}&b={o['trace2']}", R)
    ],
    "tracking:trace-diff-spans": lambda e, o: [
        Call("GET", f"/traces/diff/spans/?a={o['trace']}&b={o['trace2']}&sa={o['span']}&sb=", R)
    ],
    "tracking:trace-conversation": lambda e, o: [
        Call("GET", f"/traces/{o['trace']}/conversation/", R)
    ],
    "tracking:trace-same-input": lambda e, o: [Call("GET", f"/traces/{o['trace']}/same-input/", R)],
    "tracking:span-detail": lambda e, o: [
        Call("GET", f"/traces/{o['trace']}/spans/{o['span']}/", R)
    ],
    "tracking:feedback-add": lambda e, o: [
        Call(
            "POST",
            f"/traces/{o['trace']}/feedback/",
            E,
            {"kind": "feedback", "name": "ok", "value_type": "pass_fail", "verdict": "pass"},
        )
    ],
    "tracking:feedback-change": lambda e, o: [
        Call(
            "POST",
            f"/traces/{o['trace']}/feedback/{o['assessment']}/",
            E,
            {"action": "delete"},
        )
    ],
    "tracking:span-value": lambda e, o: [
        Call("GET", f"/traces/{o['trace']}/spans/{o['span']}/inputs/", R)
    ],
    "tracking:model-list": lambda e, o: [Call("GET", "/models/", LIST, marker=o["model"])],
    "tracking:model-compare": lambda e, o: [
        Call("GET", f"/models/compare/?ids={o['model']},{o['model2']}", R)
    ],
    "tracking:model-compare-answers": lambda e, o: [
        Call("GET", f"/models/compare/answers/?ids={o['model']},{o['model2']}", R)
    ],
    "tracking:model-detail": lambda e, o: [Call("GET", f"/models/{o['model']}/", R)],
    "evaluation:list": lambda e, o: [
        Call("GET", "/evaluations/", LIST, marker=o["run"]),
        Call("GET", f"/evaluations/?experiment={e}", LIST, marker=o["run"]),
    ],
    "evaluation:run": lambda e, o: [Call("GET", f"/evaluations/{o['run']}/", R)],
    "evaluation:compare": lambda e, o: [
        Call("GET", f"/evaluations/compare/?runs={o['run']},{o['run2']}", R)
    ],
    "tracking:model-traces": lambda e, o: [Call("GET", f"/models/{o['model']}/traces/", R)],
    "tracking:model-description": lambda e, o: [
        Call("POST", f"/models/{o['model']}/description/", E, {"description": "Fixes refunds."})
    ],
    "tracking:model-artifacts": lambda e, o: [Call("GET", f"/models/{o['model']}/artifacts/", R)],
    "tracking:model-artifact-download": lambda e, o: [
        Call("GET", f"/models/{o['model']}/artifacts/download/?path=MLmodel", R)
    ],
    "playground:index": lambda e, o: [
        Call("GET", f"/playground/?replay={o['trace']}", LIST, marker=f"hello from {e}"),
        Call("GET", f"/playground/?model={o['model']}", LIST, marker=f"hello from {e}"),
        Call(
            "GET",
            f"/playground/?replay_session={o['session']}&experiment={e}",
            LIST,
            marker=f"hello from {e}",
        ),
    ],
    "playground:replay-session": lambda e, o: [
        Call("GET", f"/playground/replay/?session={o['session']}&experiment={e}", R),
    ],
    # Pairwise review: READ on both traces to see, EDIT on both to judge
    "evaluation:pairwise": lambda e, o: [
        Call("GET", f"/review/pairwise/?a={o['trace']}&b={o['trace2']}", R),
        Call("POST", f"/review/pairwise/?a={o['trace']}&b={o['trace2']}", E, {"choice": "b"}),
    ],
    "evaluation:pairwise-summary": lambda e, o: [
        Call("GET", "/review/pairwise/summary/", LIST, marker=o["model2"]),
        Call(
            "GET",
            f"/review/pairwise/summary/?a={o['model']}&b={o['model2']}",
            LIST,
            marker="B preferred in 1 of 1",
        ),
    ],
    # Dataset pages: a dataset follows its experiments (o["dataset"] is linked to e only)
    "evaluation:dataset-list": lambda e, o: [Call("GET", "/datasets/", LIST, marker=o["dataset"])],
    "evaluation:dataset": lambda e, o: [Call("GET", f"/datasets/{o['dataset']}/", R)],
    "evaluation:dataset-record": lambda e, o: [
        Call(
            "POST",
            f"/datasets/{o['dataset']}/records/{o['record']}/",
            E,
            {"expectations": '{"expected_response": "hi"}'},
        )
    ],
    "evaluation:dataset-records-delete": lambda e, o: [
        Call("POST", f"/datasets/{o['dataset']}/records/delete/", E, {"record": o["record"]})
    ],
    "evaluation:dataset-add": lambda e, o: [
        Call(
            "POST",
            "/datasets/add/",
            E,
            {"trace": o["trace"], "dataset": "new", "name": "from traces", "confirm": "yes"},
        ),
        Call(
            "POST",
            "/datasets/add/",
            E,
            {"trace": o["trace"], "dataset": o["dataset"], "confirm": "yes"},
        ),
    ],
    # Review queue pages: a queue follows its experiment (o["queue_item"] is the trace's item)
    "evaluation:review-list": lambda e, o: [Call("GET", "/review/", LIST, marker=o["queue"])],
    "evaluation:review": lambda e, o: [Call("GET", f"/review/{o['queue']}/", R)],
    "evaluation:review-answer": lambda e, o: [
        Call("POST", f"/review/{o['queue']}/items/{o['queue_item']}/", E, {"action": "skip"})
    ],
    "evaluation:review-new": lambda e, o: [
        Call("POST", "/review/new/", E, {"experiment": e, "name": "made here"})
    ],
    "evaluation:review-add": lambda e, o: [
        Call(
            "POST", "/review/add/", E, {"trace": o["trace"], "queue": o["queue"], "confirm": "yes"}
        )
    ],
    # The access pages (users, groups, grants): o["bob"], o["group"], o["grant"] are pks
    "access:users": lambda e, o: [
        Call("GET", "/settings/access/", ADMIN),
        Call(
            "POST",
            "/settings/access/",
            ADMIN,
            {
                "username": "n-" + uuid.uuid4().hex[:8],
                "role": "viewer",
                "password": "long-pass-phrase-42",
            },
        ),
    ],
    "access:user": lambda e, o: [Call("GET", f"/settings/access/users/{o['bob']}/", ADMIN)],
    "access:user-role": lambda e, o: [
        Call("POST", f"/settings/access/users/{o['bob']}/role", ADMIN, {"role": "admin"})
    ],
    "access:user-active": lambda e, o: [
        Call("POST", f"/settings/access/users/{o['bob']}/active", ADMIN, {"active": "0"})
    ],
    "access:user-password": lambda e, o: [
        Call(
            "POST",
            f"/settings/access/users/{o['bob']}/password",
            ADMIN,
            {"password": "another-long-phrase-7"},
        )
    ],
    "access:groups": lambda e, o: [
        Call("GET", "/settings/access/groups/", ADMIN),
        Call("POST", "/settings/access/groups/", ADMIN, {"name": "g-" + uuid.uuid4().hex[:8]}),
    ],
    "access:group": lambda e, o: [Call("GET", f"/settings/access/groups/{o['group']}/", ADMIN)],
    "access:group-members": lambda e, o: [
        Call(
            "POST", f"/settings/access/groups/{o['group']}/members", ADMIN, {"username": "admin-m"}
        )
    ],
    "access:group-member-remove": lambda e, o: [
        Call("POST", f"/settings/access/groups/{o['group']}/members/{o['bob']}/remove", ADMIN)
    ],
    "access:group-delete": lambda e, o: [
        Call("POST", f"/settings/access/groups/{o['group']}/delete", ADMIN)
    ],
    "access:experiments": lambda e, o: [Call("GET", "/settings/access/experiments/", ADMIN)],
    "access:experiment": lambda e, o: [
        Call("GET", f"/settings/access/experiments/{e}/", ADMIN),
        Call(
            "POST",
            f"/settings/access/experiments/{e}/",
            ADMIN,
            {"who": f"user:{o['bob']}", "level": "1"},
        ),
    ],
    "access:experiment-audience": lambda e, o: [
        Call("POST", f"/settings/access/experiments/{e}/audience", ADMIN, {"audience": "private"})
    ],
    "access:grant": lambda e, o: [
        Call(
            "POST", f"/settings/access/experiments/{e}/grants/{o['grant']}/", ADMIN, {"level": "2"}
        )
    ],
    "access:grant-delete": lambda e, o: [
        Call("POST", f"/settings/access/experiments/{e}/grants/{o['grant']}/delete", ADMIN)
    ],
    # OTLP
    "otlp-traces": lambda e, o: [_otlp(e)],
    "otlp-logs": lambda e, o: [_otlp_logs(e)],
    # The native API
    "api-experiment-list": lambda e, o: [
        Call("GET", "/api/v1/experiments/", LIST, marker=o["name"]),
        Call("POST", "/api/v1/experiments/", CREATE, {"name": "n-" + uuid.uuid4().hex}),
    ],
    "api-experiment-detail": lambda e, o: [Call("GET", f"/api/v1/experiments/{e}/", R)],
    "api-trace-list": lambda e, o: [
        Call("GET", "/api/v1/traces/", LIST, marker=o["trace"]),
        Call("POST", "/api/v1/traces/", E, {"trace_info": _trace_body(e), "spans": []}),
    ],
    "api-trace-detail": lambda e, o: [
        Call("GET", f"/api/v1/traces/{o['trace']}/", R),
        Call("DELETE", f"/api/v1/traces/{o['trace']}/", E),
    ],
    "api-trace-tags": lambda e, o: [
        Call("PATCH", f"/api/v1/traces/{o['trace']}/tags/", E, {"tags": {"k": "v"}})
    ],
    "api-span-list": lambda e, o: [Call("GET", f"/api/v1/traces/{o['trace']}/spans/", R)],
    "api-model-list": lambda e, o: [Call("GET", "/api/v1/models/", LIST, marker=o["model"])],
    "api-model-detail": lambda e, o: [Call("GET", f"/api/v1/models/{o['model']}/", R)],
    # The MLflow API: experiments
    "mlflow:experiments-create": lambda e, o: [
        Call("POST", V2 + "experiments/create", CREATE, {"name": "n-" + uuid.uuid4().hex})
    ],
    "mlflow:experiments-get": lambda e, o: [
        Call("GET", V2 + f"experiments/get?experiment_id={e}", R)
    ],
    "mlflow:experiments-get-by-name": lambda e, o: [
        Call("GET", V2 + f"experiments/get-by-name?experiment_name={o['name']}", R)
    ],
    "mlflow:experiments-search": lambda e, o: [
        Call("POST", V2 + "experiments/search", LIST, {"max_results": 1000}, marker=o["name"])
    ],
    "mlflow:experiments-update": lambda e, o: [
        Call("POST", V2 + "experiments/update", M, {"experiment_id": str(e), "new_name": "renamed"})
    ],
    "mlflow:experiments-delete": lambda e, o: [
        Call("POST", V2 + "experiments/delete", M, {"experiment_id": str(e)})
    ],
    "mlflow:experiments-restore": lambda e, o: [
        Call("POST", V2 + "experiments/restore", M, {"experiment_id": str(e)})
    ],
    "mlflow:experiments-set-tag": lambda e, o: [
        Call(
            "POST",
            V2 + "experiments/set-experiment-tag",
            E,
            {"experiment_id": str(e), "key": "k", "value": "v"},
        )
    ],
    "mlflow:experiments-delete-tag": lambda e, o: [
        Call(
            "POST",
            V2 + "experiments/delete-experiment-tag",
            E,
            {"experiment_id": str(e), "key": "t"},
        )
    ],
    # Runs
    "mlflow:runs-create": lambda e, o: [
        Call("POST", V2 + "runs/create", E, {"experiment_id": str(e)})
    ],
    "mlflow:runs-get": lambda e, o: [Call("GET", V2 + f"runs/get?run_id={o['run']}", R)],
    "mlflow:runs-update": lambda e, o: [
        Call("POST", V2 + "runs/update", E, {"run_id": o["run"], "status": "FINISHED"})
    ],
    "mlflow:runs-delete": lambda e, o: [Call("POST", V2 + "runs/delete", M, {"run_id": o["run"]})],
    "mlflow:runs-restore": lambda e, o: [
        Call("POST", V2 + "runs/restore", M, {"run_id": o["run"]})
    ],
    "mlflow:runs-log-parameter": lambda e, o: [
        Call("POST", V2 + "runs/log-parameter", E, {"run_id": o["run"], "key": "p", "value": "1"})
    ],
    "mlflow:runs-log-metric": lambda e, o: [
        Call(
            "POST",
            V2 + "runs/log-metric",
            E,
            {"run_id": o["run"], "key": "m", "value": 2.0, "timestamp": 1, "step": 1},
        )
    ],
    "mlflow:runs-log-batch": lambda e, o: [
        Call(
            "POST",
            V2 + "runs/log-batch",
            E,
            {"run_id": o["run"], "metrics": [{"key": "m", "value": 3, "timestamp": 1}]},
        )
    ],
    "mlflow:runs-set-tag": lambda e, o: [
        Call("POST", V2 + "runs/set-tag", E, {"run_id": o["run"], "key": "k", "value": "v"})
    ],
    "mlflow:runs-delete-tag": lambda e, o: [
        Call("POST", V2 + "runs/delete-tag", E, {"run_id": o["run"], "key": "t"})
    ],
    "mlflow:runs-outputs": lambda e, o: [
        Call(
            "POST",
            V2 + "runs/outputs",
            E,
            {"run_id": o["run"], "models": [{"model_id": o["model2"]}]},
        )
    ],
    "mlflow:runs-log-inputs": lambda e, o: [
        Call(
            "POST",
            V2 + "runs/log-inputs",
            E,
            {"run_id": o["run"], "datasets": [{"dataset": {"name": "d", "digest": "1"}}]},
        )
    ],
    "mlflow:runs-search": lambda e, o: [
        Call("POST", V2 + "runs/search", R, {"experiment_ids": [str(e)]}, marker=o["run"])
    ],
    "mlflow:metrics-get-history-bulk-interval": lambda e, o: [
        Call("GET", V2 + f"metrics/get-history-bulk-interval?run_ids={o['run']}&metric_key=m", R)
    ],
    "mlflow:runs-log-model": lambda e, o: [
        Call(
            "POST",
            V2 + "runs/log-model",
            E,
            {
                "run_id": o["run"],
                "model_json": json.dumps(
                    {"artifact_path": "m", "flavors": {}, "utc_time_created": "x", "run_id": "r"}
                ),
            },
        )
    ],
    "mlflow:metrics-get-history": lambda e, o: [
        Call("GET", V2 + f"metrics/get-history?run_id={o['run']}&metric_key=m", R)
    ],
    # Logged models
    "mlflow:logged-models-create": lambda e, o: [
        Call("POST", V2 + "logged-models", E, {"experiment_id": str(e), "name": "new"})
    ],
    "mlflow:logged-models-search": lambda e, o: [
        Call(
            "POST", V2 + "logged-models/search", R, {"experiment_ids": [str(e)]}, marker=o["model"]
        )
    ],
    "mlflow:logged-model": lambda e, o: [
        Call("GET", V2 + f"logged-models/{o['model']}", R),
        Call("PATCH", V2 + f"logged-models/{o['model']}", E, {"status": "LOGGED_MODEL_READY"}),
        Call("DELETE", V2 + f"logged-models/{o['model']}", M),
    ],
    "mlflow:logged-model-params": lambda e, o: [
        Call(
            "POST",
            V2 + f"logged-models/{o['model']}/params",
            E,
            {"params": [{"key": "a", "value": "1"}]},
        )
    ],
    "mlflow:logged-model-tags": lambda e, o: [
        Call(
            "PATCH",
            V2 + f"logged-models/{o['model']}/tags",
            E,
            {"tags": [{"key": "a", "value": "1"}]},
        )
    ],
    "mlflow:logged-model-tag": lambda e, o: [
        Call("DELETE", V2 + f"logged-models/{o['model']}/tags/t", M)
    ],
    # The model registry: no experiment, so only the role counts
    "mlflow:registered-models-create": lambda e, o: [
        Call("POST", V2 + "registered-models/create", REG_WRITE, {"name": "rm-new"})
    ],
    "mlflow:registered-models-get": lambda e, o: [
        Call("GET", V2 + "registered-models/get?name=rm", REG_READ)
    ],
    "mlflow:registered-models-search": lambda e, o: [
        Call("GET", V2 + "registered-models/search", REG_READ)
    ],
    "mlflow:registered-models-update": lambda e, o: [
        Call(
            "PATCH", V2 + "registered-models/update", REG_WRITE, {"name": "rm", "description": "d"}
        )
    ],
    "mlflow:registered-models-rename": lambda e, o: [
        Call("POST", V2 + "registered-models/rename", REG_WRITE, {"name": "rm", "new_name": "rm2"})
    ],
    "mlflow:registered-models-delete": lambda e, o: [
        Call("DELETE", V2 + "registered-models/delete", REG_WRITE, {"name": "rm"})
    ],
    "mlflow:registered-models-set-tag": lambda e, o: [
        Call(
            "POST",
            V2 + "registered-models/set-tag",
            REG_WRITE,
            {"name": "rm", "key": "k", "value": "v"},
        )
    ],
    "mlflow:registered-models-delete-tag": lambda e, o: [
        Call("DELETE", V2 + "registered-models/delete-tag", REG_WRITE, {"name": "rm", "key": "t"})
    ],
    "mlflow:registered-models-alias": lambda e, o: [
        Call("GET", V2 + "registered-models/alias?name=rm&alias=a1", REG_READ),
        Call(
            "POST",
            V2 + "registered-models/alias",
            REG_WRITE,
            {"name": "rm", "alias": "champ", "version": "1"},
        ),
        Call("DELETE", V2 + "registered-models/alias", REG_WRITE, {"name": "rm", "alias": "a1"}),
    ],
    "mlflow:registered-models-get-latest-versions": lambda e, o: [
        Call("GET", V2 + "registered-models/get-latest-versions?name=rm", REG_READ)
    ],
    "mlflow:model-versions-create": lambda e, o: [
        Call("POST", V2 + "model-versions/create", REG_WRITE, {"name": "rm", "source": "s3://b/x"})
    ],
    "mlflow:model-versions-get": lambda e, o: [
        Call("GET", V2 + "model-versions/get?name=rm&version=1", REG_READ)
    ],
    "mlflow:model-versions-search": lambda e, o: [
        Call("GET", V2 + "model-versions/search", REG_READ)
    ],
    "mlflow:model-versions-update": lambda e, o: [
        Call(
            "PATCH",
            V2 + "model-versions/update",
            REG_WRITE,
            {"name": "rm", "version": "1", "description": "d"},
        )
    ],
    "mlflow:model-versions-delete": lambda e, o: [
        Call("DELETE", V2 + "model-versions/delete", REG_WRITE, {"name": "rm", "version": "1"})
    ],
    "mlflow:model-versions-set-tag": lambda e, o: [
        Call(
            "POST",
            V2 + "model-versions/set-tag",
            REG_WRITE,
            {"name": "rm", "version": "1", "key": "k", "value": "v"},
        )
    ],
    "mlflow:model-versions-delete-tag": lambda e, o: [
        Call(
            "DELETE",
            V2 + "model-versions/delete-tag",
            REG_WRITE,
            {"name": "rm", "version": "1", "key": "t"},
        )
    ],
    "mlflow:model-versions-get-download-uri": lambda e, o: [
        Call("GET", V2 + "model-versions/get-download-uri?name=rm&version=1", REG_READ)
    ],
    "mlflow:model-versions-transition-stage": lambda e, o: [
        Call(
            "POST",
            V2 + "model-versions/transition-stage",
            REG_WRITE,
            {"name": "rm", "version": "1", "stage": "Staging", "archive_existing_versions": False},
        )
    ],
    # Traces
    "mlflow:traces-start": lambda e, o: [
        Call("POST", V3 + "traces", E, {"trace": {"trace_info": _trace_body(e)}})
    ],
    "mlflow:traces-search": lambda e, o: [
        Call(
            "POST",
            V3 + "traces/search",
            R,
            {
                "locations": [
                    {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(e)}}
                ]
            },
            marker=o["trace"],
        )
    ],
    "mlflow:traces-get": lambda e, o: [
        Call("GET", V3 + f"traces/get?trace_id={o['trace']}&allow_partial=true", R)
    ],
    "mlflow:traces-batch-get": lambda e, o: [
        Call("GET", V3 + f"traces/batchGet?trace_ids={o['trace']}", LIST, marker=o["trace"])
    ],
    "mlflow:traces-batch-get-infos": lambda e, o: [
        Call(
            "POST",
            V3 + "traces/batchGetInfos",
            LIST,
            {"trace_ids": [o["trace"]]},
            marker=o["trace"],
        )
    ],
    "mlflow:traces-delete-v3": lambda e, o: [
        Call(
            "POST",
            V3 + "traces/delete-traces",
            E,
            {"experiment_id": str(e), "request_ids": [o["trace"]]},
        )
    ],
    "mlflow:traces-delete": lambda e, o: [
        Call(
            "POST",
            V2 + "traces/delete-traces",
            E,
            {"experiment_id": str(e), "request_ids": [o["trace"]]},
        )
    ],
    "mlflow:trace-assessments": lambda e, o: [
        Call("POST", V3 + f"traces/{o['trace']}/assessments", E, _assessment(o["trace"]))
    ],
    "mlflow:trace-assessment": lambda e, o: [
        Call("GET", V3 + f"traces/{o['trace']}/assessments/{o['assessment']}", R),
        Call(
            "PATCH",
            V3 + f"traces/{o['trace']}/assessments/{o['assessment']}",
            E,
            {"assessment": {"rationale": "why"}, "update_mask": "rationale"},
        ),
        Call("DELETE", V3 + f"traces/{o['trace']}/assessments/{o['assessment']}", E),
    ],
    "mlflow:trace-info": lambda e, o: [Call("GET", V3 + f"traces/{o['trace']}", R)],
    "mlflow:trace-tags": lambda e, o: [
        Call("PATCH", V2 + f"traces/{o['trace']}/tags", E, {"key": "k", "value": "v"}),
        Call("DELETE", V2 + f"traces/{o['trace']}/tags", E, {"key": "t"}),
    ],
    "mlflow:trace-tags-v3": lambda e, o: [
        Call("PATCH", V3 + f"traces/{o['trace']}/tags", E, {"key": "k", "value": "v"}),
        Call("DELETE", V3 + f"traces/{o['trace']}/tags", E, {"key": "t"}),
    ],
    "mlflow:traces-link-to-run": lambda e, o: [
        Call("POST", V2 + "traces/link-to-run", E, {"run_id": o["run"], "trace_ids": [o["trace"]]})
    ],
    "mlflow:traces-link-prompts": lambda e, o: [
        Call(
            "POST",
            V2 + "traces/link-prompts",
            E,
            {"trace_id": o["trace"], "prompt_versions": [{"name": "p", "version": "1"}]},
        )
    ],
    "mlflow:traces-filter-correlation": lambda e, o: [
        Call(
            "POST",
            V3 + "traces/calculate-filter-correlation",
            R,
            {
                "experiment_ids": [str(e)],
                "filter_string1": "tags.t = '1'",
                "filter_string2": "status = 'OK'",
            },
        )
    ],
    "mlflow:traces-metrics": lambda e, o: [
        Call(
            "POST",
            V3 + "traces/metrics",
            R,
            {
                "experiment_ids": [str(e)],
                "view_type": "TRACES",
                "metric_name": "trace_count",
                "aggregations": [{"aggregation_type": "COUNT"}],
            },
        )
    ],
    # MLflow's deprecated V2 trace infos
    "mlflow:traces-v2": lambda e, o: [
        Call("GET", V2 + f"traces?experiment_ids={e}", R, marker=o["trace"]),
        Call(
            "POST", V2 + "traces", E, {"experiment_id": str(e), "timestamp_ms": 1_700_000_000_000}
        ),
    ],
    "mlflow:trace-end-v2": lambda e, o: [
        Call(
            "PATCH",
            V2 + f"traces/{o['trace']}",
            E,
            {
                "timestamp_ms": 1_900_000_000_000,
                "status": "OK",
                "tags": [{"key": "k", "value": "v"}],
            },
        )
    ],
    "mlflow:trace-info-v2": lambda e, o: [Call("GET", V2 + f"traces/{o['trace']}/info", R)],
    # Evaluation datasets
    "mlflow:datasets-create": lambda e, o: [
        Call("POST", V3 + "datasets/create", E, {"name": "new", "experiment_ids": [str(e)]})
    ],
    "mlflow:datasets-search": lambda e, o: [
        Call("POST", V3 + "datasets/search", LIST, {}, marker=o["dataset"]),
        Call("POST", V3 + "datasets/search", R, {"experiment_ids": [str(e)]}, marker=o["dataset"]),
    ],
    "mlflow:dataset": lambda e, o: [
        Call("GET", V3 + f"datasets/{o['dataset']}", R),
        Call("DELETE", V3 + f"datasets/{o['dataset']}", M),
    ],
    "mlflow:dataset-tags": lambda e, o: [
        Call("PATCH", V3 + f"datasets/{o['dataset']}/tags", E, {"tags": '{"k": "v"}'})
    ],
    "mlflow:dataset-tag": lambda e, o: [Call("DELETE", V3 + f"datasets/{o['dataset']}/tags/t", E)],
    "mlflow:dataset-records": lambda e, o: [
        Call("GET", V3 + f"datasets/{o['dataset']}/records", R, marker="hello"),
        Call(
            "POST",
            V3 + f"datasets/{o['dataset']}/records",
            E,
            {"records": '[{"inputs": {"q": "new"}}]'},
        ),
        Call(
            "DELETE",
            V3 + f"datasets/{o['dataset']}/records",
            E,
            {"dataset_record_ids": [o["record"]]},
        ),
    ],
    "mlflow:dataset-experiment-ids": lambda e, o: [
        Call("GET", V3 + f"datasets/{o['dataset']}/experiment-ids", R)
    ],
    "mlflow:dataset-add-experiments": lambda e, o: [
        Call(
            "POST",
            V3 + f"datasets/{o['dataset']}/add-experiments",
            E,
            {"experiment_ids": [str(e)]},
        )
    ],
    "mlflow:dataset-remove-experiments": lambda e, o: [
        Call(
            "POST",
            V3 + f"datasets/{o['dataset']}/remove-experiments",
            E,
            {"experiment_ids": [str(e)]},
        )
    ],
    "mlflow:experiments-search-datasets": lambda e, o: [
        Call("POST", V2 + "experiments/search-datasets", R, {"experiment_ids": [str(e)]})
    ],
    # Registered scorers
    "mlflow:scorers-register": lambda e, o: [
        Call(
            "POST",
            V3 + "scorers/register",
            E,
            {"experiment_id": str(e), "name": "new", "serialized_scorer": '{"name": "new"}'},
        )
    ],
    "mlflow:scorers-list": lambda e, o: [
        Call("GET", V3 + "scorers/list", LIST, marker=o["scorer"]),
        Call("GET", V3 + f"scorers/list?experiment_id={e}", R, marker=o["scorer"]),
    ],
    "mlflow:scorers-versions": lambda e, o: [
        Call("GET", V3 + f"scorers/versions?experiment_id={e}&name={o['scorer']}", R)
    ],
    "mlflow:scorers-get": lambda e, o: [
        Call("GET", V3 + f"scorers/get?experiment_id={e}&name={o['scorer']}&version=1", R)
    ],
    "mlflow:scorers-delete": lambda e, o: [
        Call("DELETE", V3 + "scorers/delete", M, {"experiment_id": str(e), "name": o["scorer"]})
    ],
    "mlflow:scorers-online-config": lambda e, o: [
        Call(
            "PUT",
            V3 + "scorers/online-config",
            E,
            {"experiment_id": str(e), "name": o["scorer"], "sample_rate": 0.5},
        )
    ],
    "mlflow:scorers-online-configs": lambda e, o: [
        Call("GET", V3 + f"scorers/online-configs?scorer_ids={o['scorer_id']}", R)
    ],
    # Label schemas and review queues
    "mlflow:label-schemas-create": lambda e, o: [
        Call(
            "POST",
            V3 + "label-schemas/create",
            M,
            {"experiment_id": str(e), "name": "new", "type": "FEEDBACK", "input": {"text": {}}},
        )
    ],
    "mlflow:label-schemas-get": lambda e, o: [
        Call("GET", V3 + f"label-schemas/get?schema_id={o['schema']}", R)
    ],
    "mlflow:label-schemas-get-by-name": lambda e, o: [
        Call("GET", V3 + f"label-schemas/get-by-name?experiment_id={e}&name={o['schema_name']}", R)
    ],
    "mlflow:label-schemas-list": lambda e, o: [
        Call("GET", V3 + f"label-schemas/list?experiment_id={e}", R, marker=o["schema"])
    ],
    "mlflow:label-schemas-update": lambda e, o: [
        Call("PATCH", V3 + "label-schemas/update", M, {"schema_id": o["schema"], "name": "renamed"})
    ],
    "mlflow:label-schemas-delete": lambda e, o: [
        Call("DELETE", V3 + "label-schemas/delete", M, {"schema_id": o["schema"]})
    ],
    "mlflow:review-queues-create": lambda e, o: [
        Call(
            "POST",
            V3 + "review-queues/create",
            E,
            {"experiment_id": str(e), "name": "new", "queue_type": "CUSTOM"},
        )
    ],
    "mlflow:review-queues-get-or-create-user": lambda e, o: [
        Call(
            "POST",
            V3 + "review-queues/get-or-create-user",
            E,
            {"experiment_id": str(e), "user": "zed"},
        )
    ],
    "mlflow:review-queues-get": lambda e, o: [
        Call("GET", V3 + f"review-queues/get?queue_id={o['queue']}", R)
    ],
    "mlflow:review-queues-get-by-name": lambda e, o: [
        Call("GET", V3 + f"review-queues/get-by-name?experiment_id={e}&name={o['queue_name']}", R)
    ],
    "mlflow:review-queues-list": lambda e, o: [
        Call("GET", V3 + f"review-queues/list?experiment_id={e}", R, marker=o["queue"])
    ],
    "mlflow:review-queues-update": lambda e, o: [
        Call("POST", V3 + "review-queues/update", E, {"queue_id": o["queue"], "name": "renamed"})
    ],
    "mlflow:review-queues-delete": lambda e, o: [
        Call("POST", V3 + "review-queues/delete", M, {"queue_id": o["queue"]})
    ],
    "mlflow:review-queues-items-add": lambda e, o: [
        Call(
            "POST",
            V3 + "review-queues/items/add",
            E,
            {"queue_id": o["queue"], "item_ids": [o["trace"]]},
        )
    ],
    "mlflow:review-queues-items-remove": lambda e, o: [
        Call(
            "POST",
            V3 + "review-queues/items/remove",
            E,
            {"queue_id": o["queue"], "item_ids": [o["trace"]]},
        )
    ],
    "mlflow:review-queues-items-list": lambda e, o: [
        Call("GET", V3 + f"review-queues/items/list?queue_id={o['queue']}", R, marker=o["trace"])
    ],
    "mlflow:review-queues-items-set-status": lambda e, o: [
        Call(
            "POST",
            V3 + "review-queues/items/set-status",
            E,
            {"queue_id": o["queue"], "item_id": o["trace"], "status": "COMPLETE"},
        )
    ],
    # Artifacts
    "mlflow:artifacts-list": lambda e, o: [
        Call("GET", f"/api/2.0/mlflow-artifacts/artifacts?path={e}/{o['run']}/artifacts", R),
        Call("GET", "/api/2.0/mlflow-artifacts/artifacts", LIST, marker=f'"{e}"'),
    ],
    "mlflow:artifact": lambda e, o: [
        Call("GET", f"/api/2.0/mlflow-artifacts/artifacts/{e}/{o['run']}/artifacts/a.txt", R),
        Call(
            "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{e}/{o['run']}/artifacts/b.txt", E, b"new"
        ),
        Call("DELETE", f"/api/2.0/mlflow-artifacts/artifacts/{e}/{o['run']}/artifacts/a.txt", M),
    ],
    "mlflow:run-artifacts-list": lambda e, o: [
        Call("GET", V2 + f"artifacts/list?run_id={o['run']}", R)
    ],
    "mlflow:logged-model-artifacts": lambda e, o: [
        Call("GET", V2 + f"logged-models/{o['model']}/artifacts/directories", R)
    ],
    # Evaluations launched from the browser: a job is its experiment's
    "evaluation:job": lambda e, o: [Call("GET", f"/evaluations/jobs/{o['job']}/", R)],
    "evaluation:job-cancel": lambda e, o: [Call("POST", f"/evaluations/jobs/{o['job']}/cancel", E)],
    "mlflow:server-info": lambda e, o: [Call("GET", V3 + "server-info", ANY)],
    "mlflow:health": lambda e, o: [Call("GET", "/health", ANY)],
}


# --- The world -------------------------------------------------------------------------------


def _fill(experiment: Experiment, world: World) -> None:
    e = experiment.pk
    # Evaluation runs (`mlflow.genai.evaluate`'s tag), so that the evaluation pages show them.
    evaluated = {"t": "1", "mlflow.runType": "genai_evaluate"}
    run = Run.objects.create(experiment=experiment, name="r", tags=evaluated)
    run2 = Run.objects.create(experiment=experiment, name="r2", tags=evaluated)
    Metric.objects.create(run=run, key="m", value=1.0, timestamp_ms=1, step=0)
    trace_id = "tr-" + uuid.uuid4().hex
    trace = Trace.objects.create(
        trace_id=trace_id,
        experiment=experiment,
        tags={"t": "1"},
        span_count=1,
        request_time=timezone.now(),
        state="OK",
        request_preview='{"messages": [{"role": "user"}]}',
    )
    # A second answer to the same input, for the pairwise review of the two.
    trace2 = Trace.objects.create(
        trace_id="tr-" + uuid.uuid4().hex,
        experiment=experiment,
        request_time=timezone.now(),
        state="OK",
        request_preview='{"messages": [{"role": "user"}]}',
    )
    span_id = uuid.uuid4().hex[:16]
    Span.objects.create(
        trace=trace,
        span_id=span_id,
        name="root",
        start_ns=1,
        end_ns=2,
        inputs={"messages": [{"role": "user", "content": f"hello from {e}"}]},
    )
    assessment = Assessment.objects.create(
        trace=trace,
        assessment_id="a-" + uuid.uuid4().hex,
        name=f"q-{e}-end",  # the trace list's assessment columns list it where readable
        kind="feedback",
        value=True,
    )
    models = [
        LoggedModel.objects.create(experiment=experiment, name=f"agent-{e}", tags={"t": "1"})
        for _ in range(2)
    ]
    trace.model_id = models[0].model_id
    trace.session_id = f"sess-{e}"
    trace.save(update_fields=["model_id", "session_id"])
    TraceSession.objects.refresh([(e, trace.session_id)])
    trace2.model_id = models[1].model_id
    trace2.save(update_fields=["model_id"])
    pairwise.judge(trace, trace2, "b", "", "bob-m")
    for model in models:
        root = f"{e}/models/{model.model_id}/artifacts"
        model.artifact_location = f"mlflow-artifacts:/{root}"
        model.save(update_fields=["artifact_location"])
        default_storage.save(f"{root}/MLmodel", ContentFile(b"flavors: {}\n"))
    default_storage.save(f"{e}/{run.run_id}/artifacts/a.txt", ContentFile(b"a"))
    dataset = EvaluationDataset.create(f"ds-{e}", {"t": "1"}, [e])
    dataset.merge_records([{"inputs": {"q": "hello"}}])
    scorer = Scorer.register(e, f"scorer-{e}", '{"name": "s"}').scorer
    scorer.set_online_config(0.1, "")
    job = EvaluationJob.objects.create(
        experiment=experiment, dataset=dataset, dataset_name=dataset.name, name=f"job-{e}"
    )
    schema = LabelSchema.objects.create(
        experiment=experiment, name=f"q-{e}", type="feedback", input_kind="text"
    )
    queue = ReviewQueue.objects.create(
        experiment=experiment, name=f"queue-{e}", queue_type="custom"
    )
    queue.set_users(["reviewer"])
    queue_item = ReviewItem.objects.create(queue=queue, item_type="trace", item_id=trace_id)
    world.objects[e] = {
        "name": experiment.name,
        "schema": schema.schema_id,
        "schema_name": schema.name,
        "queue": queue.queue_id,
        "queue_name": queue.name,
        "queue_item": queue_item.pk,
        "run": run.run_id,
        "run2": run2.run_id,
        "trace": trace_id,
        "trace2": trace2.trace_id,
        "session": f"sess-{e}",
        "span": span_id,
        "assessment": assessment.assessment_id,
        "model": models[0].model_id,
        "model2": models[1].model_id,
        "dataset": dataset.dataset_id,
        "record": dataset.records.get().record_id,
        "scorer": scorer.name,
        "scorer_id": scorer.scorer_id,
        "job": job.pk,
    }


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    storages = {
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path_factory.mktemp("artifacts"))},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with django_db_blocker.unblock(), override_settings(STORAGES=storages):
        users = {role: User.objects.create_user(f"{role}-m") for role in ROLES}
        bob = User.objects.create_user("bob-m")
        for role, user in users.items():
            UserRole.objects.create(user=user, role=role)
        tokens = {
            role: ApiToken.issue(user, name="t", scope="write")[1] for role, user in users.items()
        }
        experiments = {
            f"own-{role}": Experiment.objects.create(name=f"own-{role}-m", tags={"t": "1"})
            for role in ROLES
        }
        experiments["foreign"] = Experiment.objects.create(name="foreign-m", tags={"t": "1"})
        experiments["shared"] = Experiment.objects.create(name="shared-m", tags={"t": "1"})
        for role in ROLES:
            ExperimentGrant.objects.create(
                experiment=experiments[f"own-{role}"], user=users[role], level=Level.MANAGE
            )
        ExperimentGrant.objects.create(experiment=experiments["foreign"], level=Level.NONE)
        ExperimentGrant.objects.create(
            experiment=experiments["foreign"], user=bob, level=Level.MANAGE
        )
        world = World(users, tokens, experiments)
        # A group nobody in the matrix belongs to, with a grant on every experiment: the
        # access pages' samples change it (and bob) without changing any caller's level.
        team = Group.objects.create(name="team-m")
        team.user_set.add(bob)
        for experiment in experiments.values():
            _fill(experiment, world)
            grant = ExperimentGrant.objects.create(experiment=experiment, group=team, level=1)
            world.objects[experiment.pk].update(bob=bob.pk, group=team.pk, grant=grant.pk)
        registered = RegisteredModel.objects.create(name="rm", tags={"t": "1"}, aliases={"a1": 1})
        ModelVersion.objects.create(
            registered_model=registered, version=1, source="s3://b/m", tags={"t": "1"}
        )
        yield world
        RegisteredModel.objects.filter(pk=registered.pk).delete()
        EvaluationDataset.objects.in_experiments(x.pk for x in experiments.values()).delete()
        Experiment.objects.filter(pk__in=[x.pk for x in experiments.values()]).delete()
        User.objects.filter(pk__in=[bob.pk, *(u.pk for u in users.values())]).delete()
        team.delete()


def _fingerprint() -> tuple:
    """Everything a refused request could have changed, as comparable values."""
    return (
        list(
            Experiment.objects.order_by("pk").values_list("pk", "name", "lifecycle_stage", "tags")
        ),
        list(
            Run.objects.order_by("pk").values_list(
                "pk", "params", "tags", "status", "lifecycle_stage", "inputs"
            )
        ),
        Metric.objects.count(),
        list(Trace.objects.order_by("pk").values_list("pk", "tags", "experiment_id")),
        Span.objects.count(),
        SpanLogEvents.objects.count(),
        list(Assessment.objects.order_by("pk").values_list("pk", "valid", "rationale")),
        list(
            LoggedModel.objects.order_by("pk").values_list(
                "pk", "status", "params", "tags", "source_run_id"
            )
        ),
        list(
            RegisteredModel.objects.order_by("pk").values_list(
                "pk", "name", "tags", "aliases", "description"
            )
        ),
        list(
            ModelVersion.objects.order_by("pk").values_list(
                "pk", "tags", "description", "current_stage"
            )
        ),
        list(EvaluationDataset.objects.order_by("pk").values_list("pk", "tags", "digest")),
        list(DatasetRecord.objects.order_by("pk").values_list("pk", "inputs")),
        list(DatasetExperiment.objects.order_by("pk").values_list("dataset_id", "experiment_id")),
        list(Scorer.objects.order_by("pk").values_list("pk", "name")),
        list(ScorerVersion.objects.order_by("pk").values_list("pk", "version")),
        list(OnlineConfig.objects.order_by("pk").values_list("config_id", "sample_rate")),
        list(LabelSchema.objects.order_by("pk").values_list("pk", "name", "input_config")),
        list(ReviewQueue.objects.order_by("pk").values_list("pk", "name", "created_by")),
        list(ReviewItem.objects.order_by("pk").values_list("pk", "item_id", "status")),
        list(ReviewerStatus.objects.order_by("pk").values_list("pk", "reviewer", "status")),
        list(ExperimentGrant.objects.order_by("pk").values_list("pk", "level")),
        list(User.objects.order_by("pk").values_list("pk", "username", "password", "is_active")),
        list(UserRole.objects.order_by("pk").values_list("user_id", "role")),
        list(Group.objects.order_by("pk").values_list("pk", "name")),
        list(User.groups.through.objects.order_by("pk").values_list("user_id", "group_id")),
    )


def _expected_level(role: str, target: str) -> Level:
    if role == "admin" or target == "own":
        return Level.MANAGE
    if target == "foreign":
        return Level.NONE
    return {"viewer": Level.READ, "editor": Level.EDIT}[role]


def _send(client: Client, world: World, role: str, call: Call):
    api = call.path.startswith(("/api/", "/v1/", "/health"))
    headers = dict(call.headers)
    if api:
        headers["Authorization"] = f"Bearer {world.tokens[role]}"
    else:
        client.force_login(world.users[role])
    if call.path.startswith("/api/2.0/mlflow-artifacts/") and call.method == "PUT":
        return client.generic(
            "PUT", call.path, call.body, "application/octet-stream", headers=headers
        )
    if not api and call.method == "POST":
        return client.post(call.path, call.body, headers=headers)
    if call.method == "GET":
        return client.get(call.path, headers=headers)
    data = json.dumps(call.body) if call.body is not None else ""
    return client.generic(call.method, call.path, data, "application/json", headers=headers)


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for name in sorted(SAMPLES):
        for role in ROLES:
            for target in TARGETS:
                cases.append((name, role, target))
    return cases


def test_every_route_has_a_sample_or_a_reason():
    names = route_names()
    missing = sorted(names - set(SAMPLES) - set(NOT_EXPERIMENT_ROUTES))
    assert not missing, f"routes without a sample request or a stated reason: {missing}"
    assert not set(SAMPLES) & set(NOT_EXPERIMENT_ROUTES)
    assert not (set(SAMPLES) | set(NOT_EXPERIMENT_ROUTES)) - names, "stale entries"


def test_every_mlflow_endpoint_has_a_permission_rule():
    endpoints = {n.removeprefix("mlflow:") for n in route_names() if n.startswith("mlflow:")}
    assert endpoints == set(RULES)


def test_every_page_declares_its_rule():
    from tracking.permissions import ACCESS_RULE

    resolver = get_resolver()
    for name in route_names():
        if name.startswith(("mlflow:", "api-", "playground:", "otlp")) or name in (
            "healthz",
            "login",
            "logout",
        ):
            continue
        view = resolver.resolve(_example_path(name)).func
        assert getattr(view, ACCESS_RULE, ""), f"{name} declares no access rule"


def _example_path(name: str) -> str:
    from django.urls import reverse

    kwargs = {
        "tracking:session-detail": {"session_id": "s"},
        "tracking:trace-detail": {"trace_id": "x"},
        "tracking:trace-layout": {"trace_id": "x"},
        "tracking:trace-conversation": {"trace_id": "x"},
        "tracking:trace-same-input": {"trace_id": "x"},
        "tracking:span-detail": {"trace_id": "x", "span_id": "y"},
        "tracking:span-value": {"trace_id": "x", "span_id": "y", "field": "inputs"},
        "tracking:feedback-add": {"trace_id": "x"},
        "tracking:feedback-change": {"trace_id": "x", "assessment_id": "a"},
        "tracking:model-detail": {"model_id": "m"},
        "evaluation:run": {"run_id": "r"},
        "tracking:model-traces": {"model_id": "m"},
        "tracking:model-description": {"model_id": "m"},
        "tracking:model-artifacts": {"model_id": "m"},
        "tracking:model-artifact-download": {"model_id": "m"},
        "revoke-token": {"token_id": 1},
        "evaluation:dataset": {"dataset_id": "d"},
        "evaluation:dataset-record": {"dataset_id": "d", "record_id": "r"},
        "evaluation:dataset-records-delete": {"dataset_id": "d"},
        "evaluation:job": {"pk": 1},
        "evaluation:review": {"queue_id": "rq-x"},
        "evaluation:review-answer": {"queue_id": "rq-x", "item_pk": 1},
        "evaluation:job-cancel": {"pk": 1},
        "access:group-member-remove": {"pk": 1, "user_pk": 1},
        "access:grant": {"pk": 1, "grant_pk": 1},
        "access:grant-delete": {"pk": 1, "grant_pk": 1},
    }.get(
        name,
        {"pk": 1}
        if name not in ("access:users", "access:groups", "access:experiments")
        and name.startswith("access:")
        else {},
    )
    return reverse(name, kwargs=kwargs)


@pytest.mark.parametrize(("name", "role", "target"), _cases())
def test_route(world, db, settings, name, role, target):
    settings.SPYGLASS_AUTH = True
    key = f"own-{role}" if target == "own" else target
    experiment = world.experiments[key]
    have = _expected_level(role, target)
    client = Client()
    for call in SAMPLES[name](experiment.pk, world.objects[experiment.pk]):
        before = _fingerprint()
        response = _send(client, world, role, call)
        status, where = response.status_code, f"{call.method} {call.path} as {role} on {target}"
        body = b"" if getattr(response, "streaming", False) else response.content
        if call.need == LIST:
            assert status == 200, (where, status, body[:300])
            shown = call.marker.encode() in body
            assert shown == (have >= Level.READ), (where, "marker shown" if shown else "hidden")
            continue
        if call.need == ANY:
            allowed = True
        elif call.need == ADMIN:
            allowed = role == "admin"
        elif call.need == CREATE or call.need == REG_WRITE:
            allowed = role != "viewer"
        elif call.need == REG_READ:
            allowed = True
        else:
            allowed = have >= call.need
        if allowed:
            assert status < 400, (where, status, body[:300])
            if call.marker:
                assert call.marker.encode() in body, where
            if call.path == "/traces/bulk/":
                assert b"Nothing was changed" not in _messages(client), where
            continue
        assert _fingerprint() == before, f"{where}: a refused request changed something"
        if call.path.startswith(("/api/2.0/", "/api/3.0/")):
            assert status == 403, (where, status, body[:300])
            assert response.json()["error_code"] == "PERMISSION_DENIED", where
        elif call.path in ("/v1/traces", "/v1/logs"):  # OTLP: a Status, never a 404
            assert status == 403, (where, status, body[:300])
        elif call.path.startswith("/api/v1/"):
            hidden = have < Level.READ and call.need != CREATE
            assert status == (404 if hidden else 403), (where, status, body[:300])
        elif call.need == ADMIN:
            assert status == 403, (where, status)
        elif call.path.startswith(("/datasets/", "/evaluations/", "/review/pairwise/")):
            # A dataset's or an evaluation's writes: 404 where the caller may not know it, 403
            # where it may read it; adding traces names no dataset the caller could not see.
            # A pairwise judgement likewise.
            hidden = have < Level.READ and not call.path.startswith("/datasets/add/")
            assert status == (404 if hidden else 403), (where, status)
        elif call.path.startswith("/review/"):
            # A queue's pages: 404 where the caller may not know it, 403 where it may read it;
            # adding traces names no queue the caller could not see.
            hidden = have < Level.READ and not call.path.startswith("/review/add/")
            assert status == (404 if hidden else 403), (where, status)
        elif call.path == "/traces/bulk/":
            assert status == 302, where
            assert b"Nothing was changed" in _messages(client), where
        else:
            assert status == 404, (where, status)


def _messages(client: Client) -> bytes:
    """The flash messages a redirect left, as the next page shows them."""
    return client.get("/traces/").content
