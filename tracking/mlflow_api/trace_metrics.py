"""QueryTraceMetrics (`POST /api/3.0/mlflow/traces/metrics`): the request read as MLflow's
handler reads it, answered by tracking/trace_metrics.py over the experiments the caller may
read. MLflow pages nothing here yet (its store answers one page, no token); neither does this."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from access.rules import access_for
from tracking import trace_metrics
from tracking.mlflow_api import ids
from tracking.mlflow_api.errors import invalid, mlflow_endpoint
from tracking.mlflow_api.requests import Message, enum_choices, to_number
from tracking.models import Experiment
from tracking.trace_metrics import Aggregation, MetricQuery, MetricsError

VIEW_TYPES = enum_choices(*trace_metrics.VIEW_TYPES)
AGGREGATION_TYPES = enum_choices(*trace_metrics.AGGREGATION_TYPES)
MAX_AGGREGATIONS = 20
MAX_RESULTS = trace_metrics.MAX_RESULTS
MAX_FILTERS = 50


@mlflow_endpoint(["POST"])
def query(request: HttpRequest) -> JsonResponse:
    message = Message.of(request)
    if not message.strings("experiment_ids"):
        raise invalid("Missing value for required parameter 'experiment_ids'.")
    if message.raw("view_type").get("view_type") in (None, ""):
        raise invalid("Missing value for required parameter 'view_type'.")
    wanted = [ids.experiment_pk(e) for e in message.strings("experiment_ids", max_items=100)]
    try:
        q = MetricQuery(
            view=message.enum("view_type", VIEW_TYPES, default=""),
            metric=message.string("metric_name", required=True, max_length=100),
            aggregations=_aggregations(message),
            dimensions=message.strings("dimensions", max_items=10),
            filters=[
                trace_metrics.parse_filter(text)
                for text in message.strings("filters", max_items=MAX_FILTERS)
            ],
            interval_s=message.integer("time_interval_seconds"),
            start_ms=message.integer("start_time_ms"),
            end_ms=message.integer("end_time_ms"),
            max_results=message.integer(
                "max_results", default=trace_metrics.MAX_RESULTS, minimum=1
            ),
        )
    except MetricsError as error:
        raise invalid(str(error)) from None
    message.string("page_token")  # accepted and, as by MLflow, not used: one page
    readable = access_for(request).readable(Experiment.objects.filter(pk__in=wanted), "pk")
    experiment_ids = list(readable.values_list("pk", flat=True))
    points = trace_metrics.query(experiment_ids, q)
    return JsonResponse({"data_points": [p.as_json() for p in points]})


def _aggregations(message: Message) -> list[Aggregation]:
    aggregations = []
    for i, raw in enumerate(message.objects("aggregations", max_items=MAX_AGGREGATIONS)):
        kind = Message(raw).enum("aggregation_type", AGGREGATION_TYPES, default="")
        if not kind:
            raise invalid(f"aggregations[{i}]: missing value for 'aggregation_type'.")
        percentile = raw.get("percentile_value")
        if percentile is not None:
            percentile = to_number(percentile, f"aggregations[{i}].percentile_value")
        aggregations.append(Aggregation(kind, percentile))
    return aggregations
