"""The tracking app's routes outside its `tracking:` namespace: the home page and the public
contract that clients call by literal path (the MLflow REST API, OTLP, the native API).

webapp/urls.py includes this module by name, so the project imports no app module.
"""

from django.urls import include, path

from tracking import otlp, otlp_logs
from tracking.api import router as api_router
from tracking.views import home

urlpatterns = [
    path("", home.home, name="home"),
    path("", include("tracking.mlflow_api.urls")),
    path("v1/traces", otlp.export_traces, name="otlp-traces"),
    path("v1/logs", otlp_logs.export_logs, name="otlp-logs"),
    path("api/v1/", include(api_router.urls)),
]
