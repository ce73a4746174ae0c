from django.urls import path

from evaluation.views import compare, datasets, launch, pairwise, review, runs

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
    path("evaluations/", runs.evaluation_list, name="list"),
    # Before evaluations/<run_id>/: "new", "jobs" and "compare" are not run ids.
    path("evaluations/new/", launch.new, name="new"),
    path("evaluations/jobs/<int:pk>/", launch.job, name="job"),
    path("evaluations/jobs/<int:pk>/cancel", launch.cancel, name="job-cancel"),
    path("evaluations/compare/", compare.evaluation_compare, name="compare"),
    path("evaluations/<str:run_id>/", runs.evaluation_run, name="run"),
    path("review/", review.queue_list, name="review-list"),
    # Before review/<queue_id>/: "new", "add" and "pairwise" are not queue ids ("rq-...").
    path("review/new/", review.queue_new, name="review-new"),
    path("review/add/", review.add_items, name="review-add"),
    path("review/pairwise/", pairwise.pairwise_review, name="pairwise"),
    path("review/pairwise/summary/", pairwise.pairwise_summary, name="pairwise-summary"),
    path("review/<str:queue_id>/", review.review, name="review"),
    path("review/<str:queue_id>/items/<int:item_pk>/", review.answer, name="review-answer"),
]
