"""Who may do what: a role per user, and grants on experiments to users, groups or everyone.

Roles are the baseline (viewer reads, editor reads and writes, admin does everything, agents
and their secrets included). Grants name an experiment: READ, EDIT or MANAGE for a user or a
Django group, and at most one "everyone" row per experiment (no user, no group) that sets what
everybody else gets there; an everyone row of NONE makes the experiment private to its grantees.
The rules that combine them live in access/rules.py, nowhere else.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer (reads)"
    EDITOR = "editor", "Editor (reads and writes)"
    ADMIN = "admin", "Admin (everything, agents and users included)"


class Level(models.IntegerChoices):
    # Ordered: a higher level includes every lower one (as MLflow's READ < EDIT < MANAGE).
    NONE = 0, "No access"
    READ = 1, "Read"
    EDIT = 2, "Edit"
    MANAGE = 3, "Manage"


class UserRole(models.Model):
    """A user's role; a user without a row has SPYGLASS_DEFAULT_ROLE (superusers: admin)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="spyglass_role"
    )
    role = models.CharField(max_length=16, choices=Role.choices)

    def __str__(self) -> str:
        return f"{self.user} is {self.role}"


class ExperimentGrant(models.Model):
    experiment = models.ForeignKey(
        "tracking.Experiment", on_delete=models.CASCADE, related_name="grants"
    )
    # Exactly one of user and group, or neither: the row for everyone else.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="experiment_grants",
    )  # fmt: skip
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE,
        related_name="experiment_grants",
    )  # fmt: skip
    level = models.PositiveSmallIntegerField(choices=Level.choices)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=True) | Q(group__isnull=True),
                name="grant_user_or_group",
            ),
            models.UniqueConstraint(
                fields=["experiment", "user"],
                condition=Q(user__isnull=False),
                name="grant_one_per_user",
            ),
            models.UniqueConstraint(
                fields=["experiment", "group"],
                condition=Q(group__isnull=False),
                name="grant_one_per_group",
            ),
            models.UniqueConstraint(
                fields=["experiment"],
                condition=Q(user__isnull=True, group__isnull=True),
                name="grant_one_for_everyone",
            ),
        ]
        indexes = [models.Index(fields=["user", "experiment"], name="grant_user_idx")]

    def __str__(self) -> str:
        who = self.user or (f"group {self.group}" if self.group_id else "everyone")
        return f"{who}: {Level(self.level).label} on experiment {self.experiment_id}"
