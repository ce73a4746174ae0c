from django.urls import path

from tracking.views import logged_models, trace_detail, trace_list

app_name = "tracking"

urlpatterns = [
    path("traces/", trace_list.trace_list, name="trace-list"),
    path("traces/bulk/", trace_list.trace_bulk, name="trace-bulk"),
    path("traces/columns/", trace_list.trace_columns, name="trace-columns"),
    path("traces/<str:trace_id>/", trace_detail.trace_detail, name="trace-detail"),
    path("models/", logged_models.model_list, name="model-list"),
    path("models/<str:model_id>/", logged_models.model_detail, name="model-detail"),
]
