from django.urls import path

from evaluation.views import launch

app_name = "evaluation"

urlpatterns = [
    path("evaluations/new/", launch.new, name="new"),
    path("evaluations/jobs/<int:pk>/", launch.job, name="job"),
    path("evaluations/jobs/<int:pk>/cancel", launch.cancel, name="job-cancel"),
]
