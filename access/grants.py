"""Grants on experiments as the access pages and `manage.py access` change and list them.

What a grant means is decided in access/rules.py; here they are only written and read. The
"everyone" row has three useful states, named for the switch on the page: no row (everyone
gets their role's access; a row of EDIT or MANAGE means the same, since it is capped at the
role), READ (read only), and NONE (private: only the users and groups listed).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser, Group
from django.db import models
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from access.models import ExperimentGrant, Level


class Audience(models.TextChoices):
    ROLE = "role", "Everyone: their role's access"
    READ = "read", "Everyone: read only"
    PRIVATE = "private", "Private: only the people listed"


_AUDIENCE_LEVEL = {Audience.READ: Level.READ, Audience.PRIVATE: Level.NONE}


def audience_of(everyone_level: int | None) -> Audience:
    """The switch's state for an experiment's everyone row (None: there is none)."""
    if everyone_level is None or everyone_level >= Level.EDIT:
        return Audience.ROLE
    return Audience.READ if everyone_level == Level.READ else Audience.PRIVATE


def set_audience(experiment: Any, audience: str) -> None:
    everyone = ExperimentGrant.objects.filter(
        experiment=experiment, user__isnull=True, group__isnull=True
    )
    if audience == Audience.ROLE:
        everyone.delete()
    else:
        grant(experiment, _AUDIENCE_LEVEL[Audience(audience)])


def grant(
    experiment: Any, level: int, user: AbstractUser | None = None, group: Group | None = None
) -> ExperimentGrant:
    """Give `level` to the user, the group, or (neither) everyone; replaces their grant."""
    row, _ = ExperimentGrant.objects.update_or_create(
        experiment=experiment, user=user, group=group, defaults={"level": level}
    )
    return row


def revoke(experiment: Any, user: AbstractUser | None = None, group: Group | None = None) -> bool:
    """Remove the grant of the user, the group, or (neither) everyone; False if none."""
    deleted, _ = ExperimentGrant.objects.filter(
        experiment=experiment, user=user, group=group
    ).delete()
    return deleted > 0


def grants_of(experiment: Any) -> tuple[list[ExperimentGrant], ExperimentGrant | None]:
    """The experiment's grants to users (by name) then groups (by name), and its everyone row."""
    rows = list(
        ExperimentGrant.objects.filter(experiment=experiment).select_related("user", "group")
    )
    everyone = next((r for r in rows if r.user_id is None and r.group_id is None), None)
    named = [r for r in rows if r is not everyone]
    named.sort(key=lambda r: (r.user is None, r.user.get_username() if r.user else r.group.name))
    return named, everyone


def with_grant_counts(experiments: QuerySet[Any]) -> QuerySet[Any]:
    """Experiments annotated for the list: `everyone_level` (None: no row), and how many
    users and groups hold a grant."""
    everyone = ExperimentGrant.objects.filter(
        experiment=OuterRef("pk"), user__isnull=True, group__isnull=True
    ).values("level")[:1]
    return experiments.annotate(
        everyone_level=Subquery(everyone),
        users_granted=Count("grants", filter=Q(grants__user__isnull=False)),
        groups_granted=Count("grants", filter=Q(grants__group__isnull=False)),
    )
