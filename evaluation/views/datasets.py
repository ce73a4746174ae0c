"""Evaluation dataset pages: the list, one dataset's records (edited inline, deleted), and
"Add to dataset" from the trace list and the trace page.

A dataset follows the access of the experiments it is linked to (as the MLflow endpoints
decide, tracking/mlflow_api/permissions.py): READ on all of them to see it, EDIT on all of
them to change it; one linked to none is judged by the role alone. A dataset the caller may
not read is a 404; one it may read but not change answers a write with 403. Writes go through
tracking's model methods (tracking/datasets.py), as the MLflow endpoints' do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from access.models import Level
from access.rules import Access, access_for, declares
from evaluation.dataset_access import may_edit, readable_datasets
from evaluation.trace_records import records_from_traces
from tracking import keyset
from tracking.datasets import DatasetRecord, EvaluationDataset
from tracking.mlflow_api.assessments import json_value
from tracking.mlflow_api.datasets import DATASET_ID_RE, MAX_NAME, RECORD_ID_RE
from tracking.mlflow_api.errors import MlflowError
from tracking.models import Run, Trace
from webapp import json_limits
from webapp.htmx import HtmxHttpRequest, render_page
from webapp.query_strings import with_params

DATASETS_PER_PAGE = 50
RECORDS_PER_PAGE = 25
EVALUATIONS_SHOWN = 20
MAX_TRACES = 500  # as the trace list's other bulk actions
CHOOSABLE_DATASETS = 200
SHOWN_JSON_CHARS = 4000  # a cell shows the start of a large value; the editor holds it whole
MAX_SEARCH = 200
MAX_DELETE = 1000


# --- Access ---------------------------------------------------------------------------------


def _dataset_or_404(request: HttpRequest, dataset_id: str, level: Level) -> EvaluationDataset:
    if not DATASET_ID_RE.fullmatch(dataset_id):
        raise Http404("No such dataset.")
    access = access_for(request)
    found = readable_datasets(access).filter(dataset_id=dataset_id).for_list().first()
    if found is None:
        raise Http404("No such dataset.")
    if level >= Level.EDIT and not may_edit(access, found):
        raise PermissionDenied("You may read this dataset but not change it.")
    return found


# --- The list -------------------------------------------------------------------------------


@declares("lists the datasets whose experiments are all readable")
@require_safe
def dataset_list(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:MAX_SEARCH].replace("\x00", "")
    rows = readable_datasets(access_for(request)).for_list()
    if query:
        rows = rows.filter(name__icontains=query)
    try:
        condition = _cursor(request.GET.get("after", ""), ["-updated_at", "-pk"])
    except ValueError:
        return HttpResponseBadRequest("Malformed 'after' cursor.")
    datasets, more = keyset.page(rows, ["-updated_at", "-pk"], condition, DATASETS_PER_PAGE)
    next_query = ""
    if more:
        last = datasets[-1]
        next_query = with_params(request, after=f"{last.updated_at.isoformat()}|{last.pk}")
    context = {
        "datasets": datasets,
        "query": query,
        "next_query": next_query,
        "first_query": with_params(request, after=None) if request.GET.get("after") else None,
    }
    return render_page(request, "evaluation/datasets.html", context, fragment="dataset-list")


# --- One dataset ----------------------------------------------------------------------------


@declares("READ on all of the dataset's experiments, else 404")
@require_safe
def dataset_detail(request: HtmxHttpRequest, dataset_id: str) -> HttpResponse:
    dataset = _dataset_or_404(request, dataset_id, Level.READ)
    access = access_for(request)
    query = request.GET.get("q", "").strip()[:MAX_SEARCH].replace("\x00", "")
    records = dataset.records.all()
    if query:
        records = records.annotate(
            inputs_text=Cast("inputs", TextField()),
            expectations_text=Cast("expectations", TextField()),
        ).filter(Q(inputs_text__icontains=query) | Q(expectations_text__icontains=query))
    order = ["created_at", "record_id"]
    try:
        condition = _cursor(request.GET.get("after", ""), order, key=str)
    except ValueError:
        return HttpResponseBadRequest("Malformed 'after' cursor.")
    page, more = keyset.page(records, order, condition, RECORDS_PER_PAGE)
    next_query = ""
    if more:
        last = page[-1]
        next_query = with_params(request, after=f"{last.created_at.isoformat()}|{last.record_id}")
    evaluations = access.readable(Run.objects.evaluations().on_dataset(dataset))
    context = {
        "dataset": dataset,
        "tags": sorted((dataset.tags or {}).items()),
        "can_edit": may_edit(access, dataset),
        "may_launch": access.can_write_anything,
        "records": [_shown(record) for record in page],
        "query": query,
        "next_query": next_query,
        "first_query": with_params(request, after=None) if request.GET.get("after") else None,
        "evaluations": list(evaluations[:EVALUATIONS_SHOWN]),
    }
    return render_page(request, "evaluation/datasets_detail.html", context, fragment="records")


@declares("EDIT on all of the dataset's experiments: 404 if unreadable, else 403")
@require_POST
def record_expectations(request: HtmxHttpRequest, dataset_id: str, record_id: str) -> HttpResponse:
    """Replace a record's expectations with the JSON object typed into its editor."""
    dataset = _dataset_or_404(request, dataset_id, Level.EDIT)
    record = None
    if RECORD_ID_RE.fullmatch(record_id):
        record = dataset.records.filter(record_id=record_id).first()
    if record is None:
        raise Http404("No such record.")
    text = request.POST.get("expectations", "")
    expectations, error = parse_expectations(text)
    if not error:
        user = request.user.get_username() if request.user.is_authenticated else ""
        record = dataset.set_expectations(record_id, expectations, user) or record
    if not request.htmx:
        if error:
            messages.error(request, f"The expectations were not saved: {error}")
        return redirect("evaluation:dataset", dataset_id=dataset.dataset_id)
    context = {
        "dataset": dataset,
        "record": _shown(record),
        "can_edit": True,
        "edit_error": error,
        "draft": text if error else None,
    }
    # 422 with the editor and its error: base.html's htmx config swaps it in.
    return render(
        request, "evaluation/datasets_detail.html#record", context, status=422 if error else 200
    )


def parse_expectations(text: str) -> tuple[dict[str, Any] | None, str]:
    """(expectations, '') or (None, why not): a JSON object (empty: none), storable."""
    if not text.strip():
        return None, ""
    try:
        value = json_limits.loads(text.encode())
    except json_limits.JsonError as error:
        return None, f"This is not valid JSON: it is {error.message}."
    except UnicodeEncodeError:
        return None, "This text cannot be stored."
    if not isinstance(value, dict):
        return None, 'Expectations must be a JSON object, e.g. {"expected_response": "..."}.'
    try:
        json_value(value, "expectations")
    except MlflowError as error:
        return None, str(error)
    return value, ""


@declares("EDIT on all of the dataset's experiments: 404 if unreadable, else 403")
@require_POST
def records_delete(request: HttpRequest, dataset_id: str) -> HttpResponse:
    dataset = _dataset_or_404(request, dataset_id, Level.EDIT)
    record_ids = [r for r in request.POST.getlist("record") if RECORD_ID_RE.fullmatch(r)]
    count = dataset.delete_records(record_ids[:MAX_DELETE])
    if count:
        messages.success(request, f"Deleted {count} record{'s' if count != 1 else ''}.")
    else:
        messages.info(request, "No records were deleted.")
    return redirect("evaluation:dataset", dataset_id=dataset.dataset_id)


# --- Add traces to a dataset ----------------------------------------------------------------


@declares("EDIT on the experiment of every selected trace and on the chosen dataset, else 403")
@require_POST
def dataset_add(request: HttpRequest) -> HttpResponse:
    """Selected traces -> a dataset: first a form (new dataset or an existing one), then, with
    `confirm`, the merge. Nothing is written unless every trace's experiment is editable."""
    access = access_for(request)
    trace_ids = [t for t in dict.fromkeys(request.POST.getlist("trace")) if "\x00" not in t]
    traces = list(
        Trace.objects.filter(trace_id__in=trace_ids[:MAX_TRACES])
        .only("trace_id", "name", "experiment_id", "metadata")
        .order_by("request_time", "pk")
    )
    next_url = _next_url(request)
    refused = sum(1 for t in traces if not access.can(Level.EDIT, t.experiment_id))
    if refused:
        raise PermissionDenied(
            f"Nothing was changed: {refused} of the selected traces "
            f"{'is' if refused == 1 else 'are'} in experiments you may not edit."
        )
    if not traces:
        messages.info(request, "No traces were selected.")
        return redirect(next_url)
    context = {
        "traces": traces,
        "next_url": next_url,
        "choices": _editable_datasets(access),
        "chosen": request.POST.get("dataset", "new"),
        "name": request.POST.get("name", ""),
        "use_outputs": request.POST.get("use_outputs") == "on",
        "error": "",
    }
    if request.POST.get("confirm") != "yes":
        context["use_outputs"] = True  # offered, and on unless unticked
        return render(request, "evaluation/datasets_add.html", context)
    dataset, error = _target_dataset(request, access, {t.experiment_id for t in traces})
    if error:
        context["error"] = error
        return render(request, "evaluation/datasets_add.html", context, status=422)
    assert dataset is not None
    dataset.add_experiments(sorted({t.experiment_id for t in traces}))
    inserted, updated = dataset.merge_records(records_from_traces(traces, context["use_outputs"]))
    messages.success(
        request,
        f"Added {len(traces)} trace{'s' if len(traces) != 1 else ''} to {dataset.name}: "
        f"{inserted} new record{'s' if inserted != 1 else ''}, {updated} merged.",
    )
    return redirect("evaluation:dataset", dataset_id=dataset.dataset_id)


def _target_dataset(
    request: HttpRequest, access: Access, experiment_ids: set[int]
) -> tuple[EvaluationDataset | None, str]:
    chosen = request.POST.get("dataset", "new")
    if chosen != "new":
        return _dataset_or_404(request, chosen, Level.EDIT), ""
    name = request.POST.get("name", "").strip()
    if not name or "\x00" in name:
        return None, "A new dataset needs a name."
    if len(name) > MAX_NAME:
        return None, f"A dataset's name has at most {MAX_NAME} characters."
    user = request.user.get_username() if request.user.is_authenticated else ""
    tags = {"mlflow.user": user} if user else {}  # as MLflow's client tags what it creates
    return EvaluationDataset.create(name, tags, sorted(experiment_ids)), ""


def _editable_datasets(access: Access) -> list[EvaluationDataset]:
    rows = readable_datasets(access).for_list()[:CHOOSABLE_DATASETS]
    return [d for d in rows if may_edit(access, d)]


# --- Helpers of these pages -----------------------------------------------------------------


def _shown(record: DatasetRecord) -> DatasetRecord:
    """The record with its values as indented JSON text, for the cells and the editor."""
    record.inputs_json = _json(record.inputs)
    record.expectations_json = _json(record.expectations) if record.expectations else ""
    record.tag_items = sorted((str(k), str(v)) for k, v in (record.tags or {}).items())
    return record


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json_limits.text_of(value)


def _cursor(text: str, ordering: list[str], key: Any = int) -> Any:
    """The keyset condition after `<iso time>|<key>`, None for the first page."""
    if not text:
        return None
    moment, _, last = text.partition("|")
    if not last or "\x00" in last:
        raise ValueError(text)
    return keyset.after(ordering, [datetime.fromisoformat(moment), key(last)])


def _next_url(request: HttpRequest) -> str:
    url = request.POST.get("next", "")
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}):
        return url
    return reverse("tracking:trace-list")
