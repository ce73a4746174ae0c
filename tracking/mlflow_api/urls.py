"""The MLflow REST API that an unmodified mlflow 3 client speaks (../shared/mlflow-protocol.md).

These paths are a public contract: clients build them literally from MLFLOW_TRACKING_URI.

Why there is no `GET /version`
------------------------------
The client fetches `/version` once per process and, when it answers 3.4 or newer, also sends
every span to `/v1/traces` (OTLP) besides StartTraceV3 and the `traces.json` upload; which of
the two copies a reader later gets depends on a race between the client's export threads
(protocol §4, §7). Without `/version` (a 404, or a 401 for a caller without credentials) the
client turns OTLP off for the process and always takes one path: StartTraceV3 for the info,
then the `traces.json` PUT for the spans, both stored through ingest, and `traces.json` GETs to
read them back. That is deterministic and needs nothing beyond this package. `/v1/traces`
stays for every other OpenTelemetry client (tracking/otlp.py), and traces it creates are still
readable by the mlflow client: their `traces.json` is written from the span rows.
So: do not route `/version` anywhere (a test guards this).
"""

from __future__ import annotations

from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from tracking.mlflow_api import (
    artifacts,
    assessments,
    datasets,
    experiments,
    label_schemas,
    logged_models,
    registry,
    review_queues,
    runs,
    scorers,
    server,
    trace_metrics,
    traces,
    traces_v2,
)
from tracking.mlflow_api.errors import endpoint_not_found
from webapp.auth import read_only_post

app_name = "mlflow"

V2 = "api/2.0/mlflow/"
V3 = "api/3.0/mlflow/"

# The reads MLflow sends as POST are marked `read_only_post`: a read-only token may call them.
urlpatterns = [
    # Experiments
    path(V2 + "experiments/create", experiments.create, name="experiments-create"),
    path(V2 + "experiments/get", experiments.get, name="experiments-get"),
    path(V2 + "experiments/get-by-name", experiments.get_by_name, name="experiments-get-by-name"),
    path(V2 + "experiments/search", read_only_post(experiments.search), name="experiments-search"),
    path(V2 + "experiments/update", experiments.update, name="experiments-update"),
    path(V2 + "experiments/delete", experiments.delete, name="experiments-delete"),
    path(V2 + "experiments/restore", experiments.restore, name="experiments-restore"),
    path(V2 + "experiments/set-experiment-tag", experiments.set_tag, name="experiments-set-tag"),
    path(
        V2 + "experiments/delete-experiment-tag",
        experiments.delete_tag,
        name="experiments-delete-tag",
    ),
    # Runs
    path(V2 + "runs/create", runs.create, name="runs-create"),
    path(V2 + "runs/get", runs.get, name="runs-get"),
    path(V2 + "runs/update", runs.update, name="runs-update"),
    path(V2 + "runs/delete", runs.delete, name="runs-delete"),
    path(V2 + "runs/restore", runs.restore, name="runs-restore"),
    path(V2 + "runs/log-parameter", runs.log_parameter, name="runs-log-parameter"),
    path(V2 + "runs/log-metric", runs.log_metric, name="runs-log-metric"),
    path(V2 + "runs/log-batch", runs.log_batch, name="runs-log-batch"),
    path(V2 + "runs/set-tag", runs.set_tag, name="runs-set-tag"),
    path(V2 + "runs/delete-tag", runs.delete_tag, name="runs-delete-tag"),
    path(V2 + "runs/outputs", runs.log_outputs, name="runs-outputs"),
    path(V2 + "runs/log-inputs", runs.log_inputs, name="runs-log-inputs"),
    path(V2 + "runs/search", read_only_post(runs.search), name="runs-search"),
    path(V2 + "metrics/get-history", runs.metric_history, name="metrics-get-history"),
    path(
        V2 + "metrics/get-history-bulk-interval",
        runs.metric_history_bulk_interval,
        name="metrics-get-history-bulk-interval",
    ),
    path(V2 + "runs/log-model", runs.log_model, name="runs-log-model"),
    # Logged models
    path(V2 + "logged-models", logged_models.create, name="logged-models-create"),
    path(
        V2 + "logged-models/search",
        read_only_post(logged_models.search),
        name="logged-models-search",
    ),
    path(V2 + "logged-models/<str:model_id>", logged_models.detail, name="logged-model"),
    path(
        V2 + "logged-models/<str:model_id>/params",
        logged_models.log_params,
        name="logged-model-params",
    ),
    path(
        V2 + "logged-models/<str:model_id>/tags", logged_models.set_tags, name="logged-model-tags"
    ),
    path(
        V2 + "logged-models/<str:model_id>/tags/<path:key>",
        logged_models.delete_tag,
        name="logged-model-tag",
    ),
    path(
        V2 + "logged-models/<str:model_id>/artifacts/directories",
        artifacts.list_model_artifacts,
        name="logged-model-artifacts",
    ),
    # The model registry
    path(V2 + "registered-models/create", registry.create_model, name="registered-models-create"),
    path(V2 + "registered-models/get", registry.get_model, name="registered-models-get"),
    path(V2 + "registered-models/search", registry.search_models, name="registered-models-search"),
    path(V2 + "registered-models/update", registry.update_model, name="registered-models-update"),
    path(V2 + "registered-models/rename", registry.rename_model, name="registered-models-rename"),
    path(V2 + "registered-models/delete", registry.delete_model, name="registered-models-delete"),
    path(
        V2 + "registered-models/set-tag", registry.set_model_tag, name="registered-models-set-tag"
    ),
    path(
        V2 + "registered-models/delete-tag",
        registry.delete_model_tag,
        name="registered-models-delete-tag",
    ),
    path(V2 + "registered-models/alias", registry.alias, name="registered-models-alias"),
    path(
        V2 + "registered-models/get-latest-versions",
        read_only_post(registry.get_latest_versions),
        name="registered-models-get-latest-versions",
    ),
    path(V2 + "model-versions/create", registry.create_version, name="model-versions-create"),
    path(V2 + "model-versions/get", registry.get_version, name="model-versions-get"),
    path(V2 + "model-versions/search", registry.search_versions, name="model-versions-search"),
    path(V2 + "model-versions/update", registry.update_version, name="model-versions-update"),
    path(V2 + "model-versions/delete", registry.delete_version, name="model-versions-delete"),
    path(V2 + "model-versions/set-tag", registry.set_version_tag, name="model-versions-set-tag"),
    path(
        V2 + "model-versions/delete-tag",
        registry.delete_version_tag,
        name="model-versions-delete-tag",
    ),
    path(
        V2 + "model-versions/get-download-uri",
        registry.get_download_uri,
        name="model-versions-get-download-uri",
    ),
    path(
        V2 + "model-versions/transition-stage",
        registry.transition_stage,
        name="model-versions-transition-stage",
    ),
    # Traces: the V3 API, and the V2 endpoints the V3 client still uses for tags and deletes
    path(V3 + "traces", traces.start_trace, name="traces-start"),
    path(V3 + "traces/search", read_only_post(traces.search), name="traces-search"),
    path(V3 + "traces/get", traces.get_trace, name="traces-get"),
    path(V3 + "traces/batchGet", traces.batch_get, name="traces-batch-get"),
    path(
        V3 + "traces/batchGetInfos",
        read_only_post(traces.batch_get_infos),
        name="traces-batch-get-infos",
    ),
    path(V3 + "traces/delete-traces", traces.delete_traces, name="traces-delete-v3"),
    path(
        V3 + "traces/calculate-filter-correlation",
        read_only_post(traces.filter_correlation),
        name="traces-filter-correlation",
    ),
    path(V3 + "traces/metrics", read_only_post(trace_metrics.query), name="traces-metrics"),
    path(V3 + "traces/<str:trace_id>/tags", traces.tags, name="trace-tags-v3"),
    path(V3 + "traces/<str:trace_id>/assessments", assessments.create, name="trace-assessments"),
    path(
        V3 + "traces/<str:trace_id>/assessments/<str:assessment_id>",
        assessments.detail,
        name="trace-assessment",
    ),
    path(V3 + "traces/<str:trace_id>", traces.trace_info, name="trace-info"),
    path(V2 + "traces/delete-traces", traces.delete_traces, name="traces-delete"),
    path(V2 + "traces/<str:trace_id>/tags", traces.tags, name="trace-tags"),
    path(V2 + "traces/link-to-run", traces.link_to_run, name="traces-link-to-run"),
    path(V2 + "traces/link-prompts", traces.link_prompts, name="traces-link-prompts"),
    # MLflow's deprecated V2 trace infos: after the fixed paths above, which they would shadow
    path(V2 + "traces", traces_v2.search_or_start, name="traces-v2"),
    path(V2 + "traces/<str:trace_id>", traces_v2.end_trace, name="trace-end-v2"),
    path(V2 + "traces/<str:trace_id>/info", traces_v2.trace_info, name="trace-info-v2"),
    # Evaluation datasets
    path(V3 + "datasets/create", datasets.create, name="datasets-create"),
    path(V3 + "datasets/search", read_only_post(datasets.search), name="datasets-search"),
    path(V3 + "datasets/<str:dataset_id>", datasets.detail, name="dataset"),
    path(V3 + "datasets/<str:dataset_id>/tags", datasets.set_tags, name="dataset-tags"),
    path(
        V3 + "datasets/<str:dataset_id>/tags/<path:key>",
        datasets.delete_tag,
        name="dataset-tag",
    ),
    path(V3 + "datasets/<str:dataset_id>/records", datasets.records, name="dataset-records"),
    path(
        V3 + "datasets/<str:dataset_id>/experiment-ids",
        datasets.experiment_ids,
        name="dataset-experiment-ids",
    ),
    path(
        V3 + "datasets/<str:dataset_id>/add-experiments",
        datasets.add_experiments,
        name="dataset-add-experiments",
    ),
    path(
        V3 + "datasets/<str:dataset_id>/remove-experiments",
        datasets.remove_experiments,
        name="dataset-remove-experiments",
    ),
    path(
        V2 + "experiments/search-datasets",
        read_only_post(datasets.search_logged),
        name="experiments-search-datasets",
    ),
    # Registered scorers
    path(V3 + "scorers/register", scorers.register, name="scorers-register"),
    path(V3 + "scorers/list", scorers.list_scorers, name="scorers-list"),
    path(V3 + "scorers/versions", scorers.versions, name="scorers-versions"),
    path(V3 + "scorers/get", scorers.get, name="scorers-get"),
    path(V3 + "scorers/delete", scorers.delete, name="scorers-delete"),
    path(V3 + "scorers/online-config", scorers.online_config, name="scorers-online-config"),
    path(V3 + "scorers/online-configs", scorers.online_configs, name="scorers-online-configs"),
    # Label schemas and review queues
    path(V3 + "label-schemas/create", label_schemas.create, name="label-schemas-create"),
    path(V3 + "label-schemas/get", label_schemas.get, name="label-schemas-get"),
    path(
        V3 + "label-schemas/get-by-name",
        label_schemas.get_by_name,
        name="label-schemas-get-by-name",
    ),
    path(V3 + "label-schemas/list", label_schemas.list_schemas, name="label-schemas-list"),
    path(V3 + "label-schemas/update", label_schemas.update, name="label-schemas-update"),
    path(V3 + "label-schemas/delete", label_schemas.delete, name="label-schemas-delete"),
    path(V3 + "review-queues/create", review_queues.create, name="review-queues-create"),
    path(
        V3 + "review-queues/get-or-create-user",
        review_queues.get_or_create_user,
        name="review-queues-get-or-create-user",
    ),
    path(V3 + "review-queues/get", review_queues.get, name="review-queues-get"),
    path(
        V3 + "review-queues/get-by-name",
        review_queues.get_by_name,
        name="review-queues-get-by-name",
    ),
    path(V3 + "review-queues/list", review_queues.list_queues, name="review-queues-list"),
    path(V3 + "review-queues/update", review_queues.update, name="review-queues-update"),
    path(V3 + "review-queues/delete", review_queues.delete, name="review-queues-delete"),
    path(V3 + "review-queues/items/add", review_queues.add_items, name="review-queues-items-add"),
    path(
        V3 + "review-queues/items/remove",
        review_queues.remove_items,
        name="review-queues-items-remove",
    ),
    path(
        V3 + "review-queues/items/list",
        review_queues.list_items,
        name="review-queues-items-list",
    ),
    path(
        V3 + "review-queues/items/set-status",
        review_queues.set_status,
        name="review-queues-items-set-status",
    ),
    # Artifacts: a run's listing, and what only cloud storage can do
    path(V2 + "artifacts/list", artifacts.list_run_artifacts, name="run-artifacts-list"),
    path(
        V2 + "artifacts/presigned-upload-url",
        artifacts.presigned_url,
        name="artifacts-presigned-upload-url",
    ),
    path(
        V2 + "artifacts/presigned-download-url",
        artifacts.presigned_url,
        name="artifacts-presigned-download-url",
    ),
    # Artifacts (the mlflow-artifacts proxy)
    path(
        "api/2.0/mlflow-artifacts/artifacts",
        artifacts.list_artifacts,
        name="artifacts-list",
    ),
    path(
        "api/2.0/mlflow-artifacts/artifacts/<path:artifact_path>",
        artifacts.artifact,
        name="artifact",
    ),
    re_path(
        r"^api/2\.0/mlflow-artifacts/mpu/(?:create|complete|abort)/(?P<artifact_path>.+)$",
        artifacts.multipart_upload,
        name="artifacts-multipart",
    ),
    path(
        "api/2.0/mlflow-artifacts/presigned/<path:artifact_path>",
        artifacts.presigned_download,
        name="artifacts-presigned",
    ),
    # The server itself
    path(V3 + "server-info", server.server_info, name="server-info"),
    path("health", server.health, name="health"),
    # Anything else under the MLflow prefixes: JSON the client understands (it falls back to
    # older endpoints on ENDPOINT_NOT_FOUND), not an HTML page.
    re_path(r"^api/[23]\.0/mlflow(?:-artifacts)?/", csrf_exempt(endpoint_not_found)),
]
