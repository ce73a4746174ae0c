from __future__ import annotations

from django.contrib import admin

from tracking.models import (
    Assessment,
    Experiment,
    LoggedModel,
    Metric,
    ModelVersion,
    RegisteredModel,
    Run,
    Span,
    Trace,
)


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "lifecycle_stage", "created_at"]
    search_fields = ["name"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["run_id", "name", "experiment", "status", "start_time"]
    list_filter = ["status"]
    search_fields = ["run_id", "name"]
    raw_id_fields = ["experiment"]


@admin.register(LoggedModel)
class LoggedModelAdmin(admin.ModelAdmin):
    list_display = ["model_id", "name", "experiment", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["model_id", "name"]
    raw_id_fields = ["experiment", "source_run"]


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    list_display = ["key", "value", "step", "run", "logged_model"]
    search_fields = ["key"]
    raw_id_fields = ["run", "logged_model"]


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    list_display = ["trace_id", "name", "state", "request_time", "span_count", "model_id"]
    list_filter = ["state"]
    search_fields = ["trace_id", "name", "model_id"]
    raw_id_fields = ["experiment"]
    # The default paginator counts every row; with millions of traces that is the slow part.
    show_full_result_count = False


@admin.register(Span)
class SpanAdmin(admin.ModelAdmin):
    list_display = ["span_id", "name", "span_type", "status", "trace"]
    list_filter = ["span_type", "status"]
    search_fields = ["span_id", "name"]
    raw_id_fields = ["trace"]
    show_full_result_count = False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "updated_at"]
    search_fields = ["name"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["registered_model", "version", "model_id", "current_stage", "created_at"]
    list_filter = ["current_stage"]
    search_fields = ["registered_model__name", "model_id", "run_id"]
    raw_id_fields = ["registered_model"]
    list_select_related = ["registered_model"]


@admin.register(Assessment)
class AssessmentAdmin(admin.ModelAdmin):
    list_display = ["assessment_id", "name", "kind", "source_type", "valid", "trace", "created_at"]
    list_filter = ["kind", "source_type", "valid"]
    search_fields = ["assessment_id", "name", "source_id"]
    raw_id_fields = ["trace"]
    show_full_result_count = False
