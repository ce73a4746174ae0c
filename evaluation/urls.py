from django.urls import path

from evaluation.views import datasets, launch

app_name = "evaluation"

urlpatterns = [
    path("datasets/", datasets.dataset_list, name="dataset-list"),
    # Before datasets/<dataset_id>/: "add" is not a dataset id.
    path("datasets/add/", datasets.dataset_add, name="dataset-add"),
    path("datasets/<str:dataset_id>/", datasets.dataset_detail, name="dataset"),
    path(
        "datasets/<str:dataset_id>/records/delete/",
        datasets.records_delete,
        name="dataset-records-delete",
    ),
    path(
        "datasets/<str:dataset_id>/records/<str:record_id>/",
        datasets.record_expectations,
        name="dataset-record",
    ),
    path("evaluations/new/", launch.new, name="new"),
    path("evaluations/jobs/<int:pk>/", launch.job, name="job"),
    path("evaluations/jobs/<int:pk>/cancel", launch.cancel, name="job-cancel"),
]
