from django.urls import path

from tracking.views import (
    feedback,
    logged_models,
    model_artifacts,
    model_compare,
    model_description,
    overview,
    sessions,
    trace_conversation,
    trace_detail,
    trace_diff,
    trace_list,
    trace_same_input,
)

app_name = "tracking"

urlpatterns = [
    path("traces/", trace_list.trace_list, name="trace-list"),
    path("traces/bulk/", trace_list.trace_bulk, name="trace-bulk"),
    path("traces/columns/", trace_list.trace_columns, name="trace-columns"),
    path(
        "traces/columns/assessments/",
        trace_list.trace_assessment_columns,
        name="trace-assessment-columns",
    ),
    # Before traces/<trace_id>/: "diff" is not a trace id.
    path("traces/diff/", trace_diff.trace_diff_page, name="trace-diff"),
    path("traces/diff/layout/", trace_diff.trace_diff_layout, name="trace-diff-layout"),
    path("traces/diff/spans/", trace_diff.trace_diff_spans, name="trace-diff-spans"),
    path("traces/<str:trace_id>/", trace_detail.trace_detail, name="trace-detail"),
    path("traces/<str:trace_id>/layout/", trace_detail.trace_layout, name="trace-layout"),
    path(
        "traces/<str:trace_id>/conversation/",
        trace_conversation.trace_conversation,
        name="trace-conversation",
    ),
    path(
        "traces/<str:trace_id>/same-input/",
        trace_same_input.trace_same_input,
        name="trace-same-input",
    ),
    path("traces/<str:trace_id>/feedback/", feedback.feedback_add, name="feedback-add"),
    path(
        "traces/<str:trace_id>/feedback/<str:assessment_id>/",
        feedback.feedback_change,
        name="feedback-change",
    ),
    path(
        "traces/<str:trace_id>/spans/<str:span_id>/",
        trace_detail.span_detail,
        name="span-detail",
    ),
    path(
        "traces/<str:trace_id>/spans/<str:span_id>/<str:field>/",
        trace_detail.span_value,
        name="span-value",
    ),
    path("overview/", overview.overview_page, name="overview"),
    path("sessions/", sessions.session_list, name="session-list"),
    path("sessions/<path:session_id>/", sessions.session_detail, name="session-detail"),
    path("models/", logged_models.model_list, name="model-list"),
    # Before models/<model_id>/: "compare" is not a model id.
    path("models/compare/", model_compare.model_compare, name="model-compare"),
    path(
        "models/compare/answers/",
        model_compare.model_compare_answers,
        name="model-compare-answers",
    ),
    path("models/<str:model_id>/", logged_models.model_detail, name="model-detail"),
    path("models/<str:model_id>/traces/", logged_models.model_traces, name="model-traces"),
    path(
        "models/<str:model_id>/description/",
        model_description.model_description,
        name="model-description",
    ),
    path(
        "models/<str:model_id>/artifacts/",
        model_artifacts.model_artifacts,
        name="model-artifacts",
    ),
    path(
        "models/<str:model_id>/artifacts/download/",
        model_artifacts.model_artifact_download,
        name="model-artifact-download",
    ),
]
