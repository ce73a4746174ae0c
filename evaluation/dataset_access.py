"""Who may see and change a dataset on the pages: a dataset follows the access of the
experiments it is linked to (as the MLflow permission rules decide for its endpoints)."""

from __future__ import annotations

from django.db.models import QuerySet

from access.models import Level
from access.rules import Access
from tracking.models import EvaluationDataset


def readable_datasets(access: Access) -> QuerySet[EvaluationDataset]:
    """Datasets without a link to an experiment the caller may not read."""
    hidden = access.hidden_experiment_ids()
    if "*" in hidden:
        return EvaluationDataset.objects.none()
    rows = EvaluationDataset.objects.all()
    return rows.exclude(links__experiment_id__in=sorted(hidden)) if hidden else rows


def may_edit(access: Access, dataset: EvaluationDataset) -> bool:
    experiment_ids = [link.experiment_id for link in dataset.links.all()]
    if not experiment_ids:
        return access.can_write_anything
    return all(access.can(Level.EDIT, e) for e in experiment_ids)
