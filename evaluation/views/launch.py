"""Launching an evaluation from the browser, and watching it run.

/evaluations/new/               the form (?dataset=<id>, ?agent=<pk>, ?model=<model id> prefill)
/evaluations/jobs/<pk>/         the job: live progress, partial scores, cancel, its runs
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import HttpResponseStopPolling

from access.models import Level
from access.rules import Access, access_for, declares
from evaluation import runner
from evaluation.dataset_access import readable_datasets
from evaluation.judges import load_judge, save_judge
from evaluation.launch_form import LaunchForm
from evaluation.models import EvaluationJob, JobRow, RowState
from evaluation.scorers import JUDGE, ScorerSpec, SpecError
from playground.models import Agent
from tracking.models import Experiment, ScorerVersion
from webapp.htmx import HtmxHttpRequest, go_to, render_page

PARTIAL_ROWS = 20  # latest finished rows shown while it runs


def _editable_experiments(access: Access) -> QuerySet[Experiment]:
    experiments = Experiment.objects.filter(lifecycle_stage="active").order_by("name")
    return experiments.filter(pk__in=[e.pk for e in experiments if access.can(Level.EDIT, e.pk)])


def _saved_judges(experiment_ids: list[int]) -> list[str]:
    names = ScorerVersion.objects.filter(
        scorer__experiment_id__in=experiment_ids,
        serialized_scorer__contains='"instructions_judge_pydantic_data"',
    ).values_list("scorer__name", flat=True)
    return sorted(set(names))


@declares("EDIT on the experiment the evaluation writes to; READ on the dataset")
@require_http_methods(["GET", "HEAD", "POST"])
def new(request: HtmxHttpRequest) -> HttpResponse:
    access = access_for(request)
    if not access.can_write_anything:
        raise PermissionDenied("Launching an evaluation writes runs and traces: EDIT is required.")
    datasets = readable_datasets(access).order_by("-updated_at", "pk")
    experiments = _editable_experiments(access)
    saved = _saved_judges([e.pk for e in experiments])
    kwargs = {"datasets": datasets, "experiments": experiments, "saved_judges": saved}
    if request.method != "POST":
        form = LaunchForm(initial=_initial(request, datasets, experiments), **kwargs)
        return render_page(request, "evaluation/new.html", {"form": form})
    form = LaunchForm(request.POST, **kwargs)
    job = None
    if form.is_valid():
        job = _launch(request, form)
    if job is None:
        return render_page(
            request, "evaluation/new.html", {"form": form}, fragment="form", status=422
        )
    url = reverse("evaluation:job", args=[job.pk])
    return go_to(request, url)


def _initial(request: HtmxHttpRequest, datasets: Any, experiments: Any) -> dict[str, Any]:
    initial: dict[str, Any] = {}
    dataset = datasets.filter(dataset_id=request.GET.get("dataset", "")).first()
    if dataset is None:
        dataset = datasets.first()
    if dataset is not None:
        initial["dataset"] = dataset.dataset_id
        linked = dataset.experiment_ids()
        first = experiments.filter(pk__in=[int(e) for e in linked]).first()
        initial["experiment"] = (first or experiments.first() or Experiment()).pk
        initial["name"] = f"{dataset.name} · {timezone.localtime():%Y-%m-%d %H:%M}"
    agents = Agent.objects.order_by("name")
    chosen = []
    picked = [int(pk) for pk in request.GET.getlist("agent") if pk.isdigit()][: runner.MAX_AGENTS]
    if picked:
        found = {agent.pk: agent for agent in agents.filter(pk__in=picked)}
        chosen = [found[pk] for pk in picked if pk in found]
    elif request.GET.get("model"):
        chosen = list(agents.filter(model_id=request.GET["model"])[: runner.MAX_AGENTS])
    for slot, agent in enumerate(chosen):
        initial[f"agent_{slot}"] = agent.pk
    initial["use_exact_match"] = True
    return initial


def _launch(request: HtmxHttpRequest, form: LaunchForm) -> EvaluationJob | None:
    data = form.cleaned_data
    experiment = data["experiment"]
    access = access_for(request)
    if not access.can(Level.EDIT, experiment.pk):
        form.add_error("experiment", "You cannot write to this experiment.")
        return None
    specs = list(data["scorer_specs"])
    name = data["name"] or f"{data['dataset'].name} evaluation"
    try:
        for saved in data["saved"]:
            specs.append(load_judge(experiment, saved).as_config())
        with transaction.atomic():  # a launch that fails saves no judge version either
            job = runner.launch(
                dataset=data["dataset"],
                experiment=experiment,
                agents=data["agents"],
                scorer_specs=specs,
                name=name[: EvaluationJob._meta.get_field("name").max_length],
                user=request.user,
            )
            new_judge = data["new_judge"]
            if new_judge is not None:
                # A new version of an MLflow scorer: the client's list_scorers sees it.
                save_judge(experiment, new_judge["name"], ScorerSpec.from_config(new_judge))
        return job
    except (SpecError, runner.LaunchError) as error:
        form.add_error(None, str(error))
        return None


def _job_for(request: HtmxHttpRequest, pk: int, level: Level) -> EvaluationJob:
    job = get_object_or_404(EvaluationJob.objects.select_related("experiment", "dataset"), pk=pk)
    have = access_for(request).level(job.experiment_id)
    if have < Level.READ:
        raise Http404("No such evaluation.")
    if have < level:
        raise PermissionDenied(f"{Level(level).label.upper()} on the experiment is required.")
    return job


@declares("READ on the job's experiment")
@require_safe
def job(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    found = _job_for(request, pk, Level.READ)
    context = _job_context(request, found)
    response = render_page(request, "evaluation/job.html", context, fragment="progress")
    if request.htmx and found.ended:
        # The last poll: the finished state replaces the bar, and htmx stops asking.
        response.status_code = HttpResponseStopPolling.status_code
    return response


def _job_context(request: HtmxHttpRequest, found: EvaluationJob) -> dict[str, Any]:
    counts = JobRow.objects.filter(agent__job=found).progress()
    agents = list(found.agents.select_related("run"))
    for arm in agents:
        arm.progress = runner.progress_of(
            counts.get(arm.pk, {}), found.total_rows // len(agents), found
        )
        arm.scores = runner.partial_scores(arm)
    latest = (
        JobRow.objects.filter(agent__job=found, state__in=[RowState.DONE, RowState.FAILED])
        .select_related("agent")
        .order_by("-finished_at", "-pk")[:PARTIAL_ROWS]
    )
    return {
        "job": found,
        "agents": agents,
        "progress": runner.progress(found, counts),
        "latest": latest,
        "may_cancel": not found.ended and access_for(request).can(Level.EDIT, found.experiment_id),
        "run_ids": ",".join(a.run.run_id for a in agents if a.run),
        "judge_kind": JUDGE,
    }


@declares("EDIT on the job's experiment")
@require_POST
def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    found = _job_for(request, pk, Level.EDIT)
    runner.cancel(found)
    url = reverse("evaluation:job", args=[found.pk])
    return go_to(request, url)
