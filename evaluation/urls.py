from django.urls import path

from evaluation.views import compare, runs

app_name = "evaluation"

urlpatterns = [
    path("evaluations/", runs.evaluation_list, name="list"),
    # Before evaluations/<run_id>/: "compare" is not a run id.
    path("evaluations/compare/", compare.evaluation_compare, name="compare"),
    path("evaluations/<str:run_id>/", runs.evaluation_run, name="run"),
]
