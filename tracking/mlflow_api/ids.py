"""MLflow ids: their shape, and the rows they name.

An id of the wrong shape is a 400 (the client sent something that can never exist); a
well-formed id with no row is a 404 RESOURCE_DOES_NOT_EXIST with MLflow's own wording, which
the client matches on in places (mlflow-protocol.md §1).
"""

from __future__ import annotations

import re

from django.db.models import QuerySet

from tracking.mlflow_api.errors import invalid, not_found
from tracking.models import Experiment, LifecycleStage, LoggedModel, Run, Trace

EXPERIMENT_ID_RE = re.compile(r"[0-9]{1,18}")
RUN_ID_RE = re.compile(r"[0-9a-f]{32}")
MODEL_ID_RE = re.compile(r"m-[0-9a-f]{32}")
TRACE_ID_RE = re.compile(r"tr-[0-9a-f]{32}")  # ids are matched whole (fullmatch)


def experiment_pk(value: object, field: str = "experiment_id") -> int:
    if not isinstance(value, str) or not EXPERIMENT_ID_RE.fullmatch(value):
        raise invalid(f"{field} must be a numeric experiment id, got {value!r}.")
    return int(value)


def experiment(value: str, field: str = "experiment_id") -> Experiment:
    pk = experiment_pk(value, field)
    found = Experiment.objects.filter(pk=pk).first()
    if found is None:
        raise not_found(f"No Experiment with id={pk} exists")
    return found


def active_experiment(value: str, field: str = "experiment_id") -> Experiment:
    found = experiment(value, field)
    if found.lifecycle_stage != LifecycleStage.ACTIVE:
        raise invalid(f"The experiment {found.pk} must be in the 'active' state.")
    return found


def check_run_id(value: object, field: str = "run_id") -> str:
    if not isinstance(value, str) or not RUN_ID_RE.fullmatch(value):
        raise invalid(f"{field} must be 32 lowercase hex characters, got {value!r}.")
    return value


def run(value: str, field: str = "run_id") -> Run:
    check_run_id(value, field)
    found = Run.objects.select_related("experiment").filter(run_id=value).first()
    if found is None:
        raise not_found(f"Run with id={value} not found")
    return found


def active_run(value: str, field: str = "run_id") -> Run:
    """A run that may be written to (its methods lock it while they write)."""
    found = run(value, field)
    if found.lifecycle_stage != LifecycleStage.ACTIVE:
        raise invalid(f"The run {value} must be in the 'active' state. Current state is deleted.")
    return found


def check_model_id(value: object, field: str = "model_id") -> str:
    if not isinstance(value, str) or not MODEL_ID_RE.fullmatch(value):
        raise invalid(f"{field} must look like 'm-<32 hex>', got {value!r}.")
    return value


def logged_model(value: str, field: str = "model_id") -> LoggedModel:
    check_model_id(value, field)
    found = LoggedModel.objects.select_related("source_run").filter(model_id=value).first()
    if found is None:
        raise not_found(f"Logged model with ID '{value}' not found.")
    return found


def check_trace_id(value: object, field: str = "trace_id") -> str:
    if not isinstance(value, str) or not TRACE_ID_RE.fullmatch(value):
        raise invalid(f"{field} must look like 'tr-<32 hex>', got {value!r}.")
    return value


def trace(value: str, field: str = "trace_id", *, for_update: bool = False) -> Trace:
    check_trace_id(value, field)
    traces: QuerySet[Trace] = Trace.objects.all()
    if for_update:
        traces = traces.select_for_update()
    found = traces.filter(trace_id=value).first()
    if found is None:
        raise not_found(f"Trace with ID '{value}' not found.")
    return found
