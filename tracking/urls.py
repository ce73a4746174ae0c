from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("traces/", views.trace_list, name="trace-list"),
    path("traces/<str:trace_id>/", views.trace_detail, name="trace-detail"),
    path("models/", views.model_list, name="model-list"),
    path("models/<str:model_id>/", views.model_detail, name="model-detail"),
]
