"""Evaluation datasets: MLflow 3's `/api/3.0/mlflow/datasets/...` endpoints, thin views over
tracking/datasets.py, answering as MLflow's server does (handlers.py and its SQL store).

`mlflow.genai.datasets.create_dataset`, `get_dataset`, `search_datasets`, `delete_dataset`,
`ds.merge_records(...)`, `ds.to_df()` and `mlflow.genai.evaluate(data=ds)` call these. Tags,
records and schemas travel as JSON *text* inside the JSON message (protobuf string fields),
so each is parsed and checked here, all before anything is written: a refused request
changes nothing. As in MLflow, deleting a dataset or a tag that is not there is no error;
reading or changing one is a 404.

Also `POST /api/2.0/mlflow/experiments/search-datasets`: the datasets that runs of the given
experiments logged as inputs (`mlflow.log_input`), MLflow's SearchDatasets.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from access.rules import access_for
from tracking import filters
from tracking.datasets import (
    SOURCE_ID_MAX_CHARS,
    SOURCE_TYPES,
    WRAPPED_OUTPUT_KEY,
    DatasetRecord,
    EvaluationDataset,
    from_ms,
    to_ms,
)
from tracking.mlflow_api import ids, pages
from tracking.mlflow_api.assessments import json_value
from tracking.mlflow_api.errors import invalid, mlflow_endpoint, not_found
from tracking.mlflow_api.requests import Message, check_key, storable
from tracking.models import Experiment, Run
from webapp import json_limits

DATASET_ID_RE = re.compile(r"d-[0-9a-f]{32}")
RECORD_ID_RE = re.compile(r"dr-[0-9a-f]{32}")
MAX_NAME = 500
MAX_TAG_VALUE = 5000
MAX_RECORDS = 10_000  # per merge; the client sends its records in one call
MAX_EXPERIMENTS = 100
RECORD_KEYS = {"inputs", "outputs", "expectations", "tags", "source"}
RECORDS_DEFAULT = 1000
SEARCH_DEFAULT = SEARCH_MAX = 1000
SUMMARIES_MAX = 1000  # as MLflow's SearchDatasets
SUMMARY_EXPERIMENTS_MAX = 20
DATASET_CONTEXT = "mlflow.data.context"

DATASETS = filters.Entity(
    name="datasets",
    attributes={
        "name": filters.column("name"),
        "dataset_id": filters.column("dataset_id"),
        "digest": filters.column("digest"),
        "created_by": filters.column("created_by"),
        "last_updated_by": filters.column("last_updated_by"),
        "created_time": filters.column("created_at", filters.as_time_ms),
        "last_update_time": filters.column("updated_at", filters.as_time_ms),
    },
    tags="tags",
)


# --- Ids and JSON text ---------------------------------------------------------------------


def check_dataset_id(value: object) -> str:
    if not isinstance(value, str) or not DATASET_ID_RE.fullmatch(value):
        raise invalid(f"dataset_id must look like 'd-<32 hex>', got {value!r}.")
    return value


def dataset(value: str) -> EvaluationDataset:
    found = EvaluationDataset.objects.filter(dataset_id=check_dataset_id(value)).first()
    if found is None:
        raise not_found(f"Evaluation dataset with id '{value}' not found")
    return found


def _json_text(message: Message, name: str, required: bool = False) -> Any:
    text = message.string(name, required=required)
    if not text:
        return None
    try:
        return json_limits.loads(text.encode())
    except json_limits.JsonError as error:
        raise invalid(f"Parameter '{name}' is {error.message}.") from None


def _tags(value: Any, where: str) -> dict[str, str]:
    """A tags object; values become text, as MLflow stores them (None is skipped)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a JSON object of tags.")
    tags: dict[str, str] = {}
    for key, tag in value.items():
        check_key(key, f"{where} key")
        if tag is None:
            continue
        if isinstance(tag, dict | list):
            raise invalid(f"{where}[{key!r}] must be a string, number or boolean.")
        text = storable(str(tag), f"{where}[{key!r}]")
        if len(text) > MAX_TAG_VALUE:
            raise invalid(f"{where}[{key!r}] is longer than {MAX_TAG_VALUE} characters.")
        tags[key] = text
    return tags


def _experiment_pks(message: Message) -> list[int]:
    pks = [ids.experiment_pk(e, "experiment_ids") for e in message.strings("experiment_ids")]
    if len(pks) > MAX_EXPERIMENTS:
        raise invalid(f"At most {MAX_EXPERIMENTS} experiment_ids may be given.")
    found = set(Experiment.objects.filter(pk__in=pks).values_list("pk", flat=True))
    for pk in pks:
        if pk not in found:
            raise not_found(f"No Experiment with id={pk} exists")
    return pks


def _record(value: Any, i: int) -> dict[str, Any]:
    """One record of a merge, checked: the fields MLflow knows, of the types it stores."""
    where = f"records[{i}]"
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a JSON object.")
    if unknown := sorted(set(value) - RECORD_KEYS):
        raise invalid(f"{where} has unknown fields {unknown} (known: {sorted(RECORD_KEYS)}).")
    for name in ("inputs", "expectations"):
        if value.get(name) is not None and not isinstance(value[name], dict):
            raise invalid(f"{where}.{name} must be a JSON object.")
    record = dict(value)
    record["tags"] = _tags(value.get("tags"), f"{where}.tags") or None
    if value.get("source"):
        record["source"] = _source(value["source"], f"{where}.source")
    json_value(record, where)  # storable text, finite numbers, under the field size cap
    return record


def _source(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) - {"source_type", "source_data"}:
        raise invalid(f"{where} must be {{'source_type': ..., 'source_data': {{...}}}}.")
    kind = value.get("source_type")
    if not isinstance(kind, str) or kind.upper() not in SOURCE_TYPES:
        raise invalid(
            f"Invalid dataset record source type: {kind!r}. Valid source types: "
            f"{list(SOURCE_TYPES)}"
        )
    data = value.get("source_data") or {}
    if not isinstance(data, dict):
        raise invalid(f"{where}.source_data must be a JSON object.")
    for key in ("trace_id", "source_id"):
        if len(str(data.get(key) or "")) > SOURCE_ID_MAX_CHARS:
            raise invalid(f"{where}.source_data.{key} is longer than {SOURCE_ID_MAX_CHARS}.")
    return {"source_type": kind.upper(), "source_data": data}


# --- Answers -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return json_limits.text_of(value)


def dataset_json(row: EvaluationDataset) -> dict[str, Any]:
    data: dict[str, Any] = {
        "dataset_id": row.dataset_id,
        "name": row.name,
        "tags": _text(row.tags),
        "digest": row.digest,
        "created_time": to_ms(row.created_at),
        "last_update_time": to_ms(row.updated_at),
        "experiment_ids": row.experiment_ids(),
    }
    for name in ("schema", "profile"):
        if getattr(row, name) is not None:
            data[name] = _text(getattr(row, name))
    for name in ("created_by", "last_updated_by"):
        if getattr(row, name):
            data[name] = getattr(row, name)
    return data


def record_json(row: DatasetRecord, dataset_id: str) -> dict[str, Any]:
    """A record as MLflow's `DatasetRecord.to_dict()` writes it (values as JSON, not text)."""
    data: dict[str, Any] = {
        "dataset_record_id": row.record_id,
        "dataset_id": dataset_id,
        "inputs": row.inputs,
        "tags": row.tags or {},
        "created_time": to_ms(row.created_at),
        "last_update_time": to_ms(row.updated_at),
    }
    if row.outputs is not None:
        data["outputs"] = row.outputs.get(WRAPPED_OUTPUT_KEY)
    if row.expectations is not None:
        data["expectations"] = row.expectations
    if row.source:
        data["source"] = row.source
        data["source_type"] = row.source_type or "UNSPECIFIED"
    if row.source_id:
        data["source_id"] = row.source_id
    for name in ("created_by", "last_updated_by"):
        if getattr(row, name):
            data[name] = getattr(row, name)
    return data


# --- Views ---------------------------------------------------------------------------------


@mlflow_endpoint(["POST"])
def create(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    name = message.string("name", required=True, max_length=MAX_NAME)
    if not name.strip():
        raise invalid("Parameter 'name' must not be blank.")
    tags = _tags(_json_text(message, "tags"), "tags")
    created = EvaluationDataset.create(name, tags, _experiment_pks(message))
    return JsonResponse({"dataset": dataset_json(created)})


@mlflow_endpoint(["GET", "DELETE"])
def detail(request: HttpRequest, dataset_id: str) -> JsonResponse:
    if request.method == "DELETE":
        EvaluationDataset.objects.filter(dataset_id=check_dataset_id(dataset_id)).delete()
        return JsonResponse({})
    return JsonResponse({"dataset": dataset_json(dataset(dataset_id))})


@mlflow_endpoint(["GET", "POST"])
def search(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    ordering = DATASETS.order_by(message.strings("order_by", max_items=10))
    rows = EvaluationDataset.objects.filter(DATASETS.q(message.string("filter_string")))
    if experiment_pks := [ids.experiment_pk(e) for e in message.strings("experiment_ids")]:
        rows = rows.in_experiments(experiment_pks)
    rows = _readable(request, rows).order_by(*ordering or ["-created_at"], "-dataset_id")
    rows = rows.prefetch_related("links")  # each row's experiment ids, in one query
    found, token = pages.requested_page(rows, message, SEARCH_DEFAULT, SEARCH_MAX)
    return JsonResponse(pages.listing("datasets", [dataset_json(d) for d in found], token))


def _readable(request: HttpRequest, rows: Any) -> Any:
    """Without datasets linked to an experiment the caller may not read (a dataset's access
    is that of all its experiments; one linked to none is judged by the role alone)."""
    hidden = access_for(request).hidden_experiment_ids()
    if "*" in hidden:
        return rows.none()
    return rows.exclude(links__experiment_id__in=sorted(hidden)) if hidden else rows


@mlflow_endpoint(["PATCH"])
def set_tags(request: HttpRequest, dataset_id: str) -> JsonResponse:
    message = Message.of(request)
    tags = _tags(_json_text(message, "tags", required=True), "tags")
    dataset(dataset_id).set_tags(tags)
    return JsonResponse({})


@mlflow_endpoint(["DELETE"])
def delete_tag(request: HttpRequest, dataset_id: str, key: str) -> JsonResponse:
    found = EvaluationDataset.objects.filter(dataset_id=check_dataset_id(dataset_id)).first()
    if found is not None:
        found.delete_tag(key)
    return JsonResponse({})


@mlflow_endpoint(["GET", "POST", "DELETE"])
def records(request: HttpRequest, dataset_id: str) -> JsonResponse:
    found = dataset(dataset_id)
    message = Message.of(request)
    if request.method == "POST":
        return _merge(found, message)
    if request.method == "DELETE":
        record_ids = message.strings("dataset_record_ids", max_items=MAX_RECORDS)
        for record_id in record_ids:
            if not RECORD_ID_RE.fullmatch(record_id):
                raise invalid(f"dataset_record_ids must look like 'dr-<32 hex>': {record_id!r}.")
        return JsonResponse({"deleted_count": found.delete_records(record_ids)})
    return _records_page(found, message)


def _merge(found: EvaluationDataset, message: Message) -> JsonResponse:
    parsed = _json_text(message, "records", required=True)
    if not isinstance(parsed, list):
        raise invalid("Parameter 'records' must be a JSON array of records.")
    if len(parsed) > MAX_RECORDS:
        raise invalid(f"At most {MAX_RECORDS} records may be merged in one call.")
    checked = [_record(value, i) for i, value in enumerate(parsed)]
    inserted, updated = found.merge_records(checked)
    return JsonResponse({"inserted_count": inserted, "updated_count": updated})


def _records_page(found: EvaluationDataset, message: Message) -> JsonResponse:
    """Records in (created, id) order after MLflow's page token, base64 of "<ms>:<id>"; a
    page also ends before it grows past the page byte cap (records can be large)."""
    size = pages.page_size(message.integer("max_results"), default=RECORDS_DEFAULT, maximum=1000)
    rows = found.records.order_by("created_at", "record_id")
    if token := message.string("page_token"):
        millis, record_id = _decode_record_token(token)
        moment = from_ms(millis)
        rows = rows.filter(created_at__gt=moment) | rows.filter(
            created_at=moment, record_id__gt=record_id
        )
    items: list[dict[str, Any]] = []
    budget = settings.SPYGLASS_MAX_PAGE_BYTES
    last: DatasetRecord | None = None
    more = False
    for row in rows[: size + 1]:
        if len(items) == size or (items and budget <= 0):
            more = True
            break
        item = record_json(row, found.dataset_id)
        budget -= len(_text(item))
        items.append(item)
        last = row
    data: dict[str, Any] = {"records": _text(items)}
    if more and last is not None:
        cursor = f"{to_ms(last.created_at)}:{last.record_id}"
        data["next_page_token"] = base64.b64encode(cursor.encode()).decode()
    return JsonResponse(data)


def _decode_record_token(token: str) -> tuple[int, str]:
    try:
        millis, record_id = base64.b64decode(token.encode(), validate=True).decode().split(":", 1)
        if RECORD_ID_RE.fullmatch(record_id) and millis.isdigit() and len(millis) < 16:
            return int(millis), record_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise invalid(f"Invalid page token {token!r}.")


@mlflow_endpoint(["GET"])
def experiment_ids(request: HttpRequest, dataset_id: str) -> JsonResponse:
    return JsonResponse({"experiment_ids": dataset(dataset_id).experiment_ids()})


@mlflow_endpoint(["POST"])
def add_experiments(request: HttpRequest, dataset_id: str) -> JsonResponse:
    found = dataset(dataset_id)
    found.add_experiments(_experiment_pks(Message.of(request)))
    return JsonResponse({"dataset": dataset_json(found)})


@mlflow_endpoint(["POST"])
def remove_experiments(request: HttpRequest, dataset_id: str) -> JsonResponse:
    found = dataset(dataset_id)
    sent = Message.of(request).strings("experiment_ids", max_items=MAX_EXPERIMENTS)
    pks = [ids.experiment_pk(e, "experiment_ids") for e in sent]
    found.remove_experiments(pks)
    return JsonResponse({"dataset": dataset_json(found)})


@mlflow_endpoint(["POST"])
def search_logged(request: HttpRequest) -> JsonResponse:
    """SearchDatasets: (experiment, name, digest, context) of the datasets runs logged."""
    message = Message.of(request)
    pks = [ids.experiment_pk(e) for e in message.strings("experiment_ids")]
    if not pks:
        raise invalid("SearchDatasets request must specify at least one experiment_id.")
    if len(pks) > SUMMARY_EXPERIMENTS_MAX:
        raise invalid(
            f"SearchDatasets request cannot specify more than {SUMMARY_EXPERIMENTS_MAX}"
            f" experiment_ids. Received {len(pks)} experiment_ids."
        )
    summaries: dict[tuple, dict[str, str]] = {}
    runs = Run.objects.filter(experiment_id__in=pks).exclude(inputs={}).order_by("pk")
    for experiment_id, inputs in runs.values_list("experiment_id", "inputs").iterator():
        for item in (inputs or {}).get("dataset_inputs", []):
            summary = _summary(experiment_id, item)
            summaries.setdefault(tuple(summary.items()), summary)
        if len(summaries) >= SUMMARIES_MAX:
            break
    return JsonResponse({"dataset_summaries": list(summaries.values())[:SUMMARIES_MAX]})


def _summary(experiment_id: int, item: dict[str, Any]) -> dict[str, str]:
    logged = item.get("dataset") or {}
    summary = {
        "experiment_id": str(experiment_id),
        "name": str(logged.get("name", "")),
        "digest": str(logged.get("digest", "")),
    }
    for tag in item.get("tags") or []:
        if isinstance(tag, dict) and tag.get("key") == DATASET_CONTEXT:
            summary["context"] = str(tag.get("value", ""))
    return summary
