"""THE place where a request's rights are decided: its role, its level on each experiment, and
the experiments it may not see. Views, the MLflow API, OTLP, the native API and the
playground ask `access_for(request)`; none of them reads roles or grants on its own.

The level of a user on an experiment, highest rule first:
1. admins (role admin, or a Django superuser): MANAGE everywhere;
2. grants naming the user or one of the user's groups: the highest of them;
3. the experiment's "everyone" grant, capped at the role's baseline (NONE makes it private);
4. the role's baseline: viewer READ, editor EDIT.
A read-scoped API token caps all of it at READ: a token never exceeds its owner, nor its scope.
With SPYGLASS_AUTH off (loopback `make run`) every request is an admin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from access.models import ExperimentGrant, Level, Role, UserRole

# The attribute where a view states its rule in words (tests/access/test_matrix.py reads it).
ACCESS_RULE = "access_rule"
_BASELINE = {Role.VIEWER: Level.READ, Role.EDITOR: Level.EDIT, Role.ADMIN: Level.MANAGE}
M = TypeVar("M", bound=Model)
V = TypeVar("V", bound=Callable[..., Any])


def declares(rule: str) -> Callable[[V], V]:
    """Mark a view with its rule, for views that apply it themselves (lists filter their
    rows through `Access.readable`; a few routes are per-user or need no experiment)."""

    def decorate(view: V) -> V:
        setattr(view, ACCESS_RULE, rule)
        return view

    return decorate


class Denied(Exception):
    """The request may not do this; `str()` says what it lacks, for the caller."""

    def __init__(self, message: str, hidden: bool = False) -> None:
        super().__init__(message)
        # True when the caller may not even know the object exists (answer as not found).
        self.hidden = hidden


def role_of(user: Any) -> str:
    """The user's role: superusers are admins; otherwise their UserRole, or the default."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return ""
    if user.is_superuser:
        return Role.ADMIN
    role = UserRole.objects.filter(user_id=user.pk).values_list("role", flat=True).first()
    return role or settings.SPYGLASS_DEFAULT_ROLE


@dataclass
class Access:
    """What one caller may do. Grants are read once, on first use, and kept for the request."""

    user: Any = None
    role: str = ""
    read_only: bool = False
    _explicit: dict[str, int] | None = field(default=None, repr=False)
    _everyone: dict[str, int] | None = field(default=None, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def can_write_anything(self) -> bool:
        return bool(self.role) and self.role != Role.VIEWER and not self.read_only

    @property
    def can_create_experiments(self) -> bool:
        return self.can_write_anything

    @property
    def can_manage_agents(self) -> bool:
        """Agents hold credentials and make the server reach out: admins only."""
        return self.is_admin and not self.read_only

    @property
    def can_manage_users(self) -> bool:
        return self.is_admin and not self.read_only

    def _load(self) -> None:
        if self._explicit is not None:
            return
        self._explicit, self._everyone = {}, {}
        if self.is_admin or self.user is None:
            return
        rows = ExperimentGrant.objects.filter(
            Q(user_id=self.user.pk)
            | Q(group__user=self.user.pk)
            | Q(user__isnull=True, group__isnull=True)
        ).values_list("experiment_id", "user_id", "group_id", "level")
        for experiment_id, user_id, group_id, level in rows:
            key = str(experiment_id)
            if user_id is None and group_id is None:
                self._everyone[key] = level
            else:
                self._explicit[key] = max(level, self._explicit.get(key, Level.NONE))

    def level(self, experiment_id: Any) -> Level:
        if not self.role:
            return Level.NONE
        if self.is_admin:
            level = Level.MANAGE
        else:
            self._load()
            key = str(experiment_id)
            baseline = _BASELINE[Role(self.role)]
            if key in self._explicit:  # type: ignore[operator]
                level = self._explicit[key]  # type: ignore[index]
            elif key in self._everyone:  # type: ignore[operator]
                level = min(self._everyone[key], baseline)  # type: ignore[index]
            else:
                level = baseline
        return Level(min(level, Level.READ) if self.read_only else level)

    def can(self, level: Level, experiment_id: Any) -> bool:
        return self.level(experiment_id) >= level

    def require(self, level: Level, experiment_id: Any, what: str = "experiment") -> None:
        """Raise Denied unless the caller has `level` on the experiment."""
        have = self.level(experiment_id)
        if have >= level:
            return
        if have < Level.READ:
            raise Denied(f"No access to {what} {experiment_id}.", hidden=True)
        need = Level(level).label.upper()
        raise Denied(f"Permission denied: {need} on experiment {experiment_id} is required.")

    def _granted_keys(self) -> set[str]:
        """The experiments some grant (for this user, a group, or everyone) speaks of."""
        self._load()
        return set(self._explicit) | set(self._everyone)  # type: ignore[arg-type]

    def hidden_experiment_ids(self) -> set[str]:
        """Experiments this caller may not read: private ones it holds no grant on, and any
        where its own grant is NONE.

        Usually empty, so list queries stay exactly as they are for most deployments.
        """
        if self.is_admin:
            return set()
        if not self.role:
            return {"*"}
        return {key for key in self._granted_keys() if self.level(key) < Level.READ}

    def can_everywhere(self, level: Level) -> bool:
        """True when the caller has `level` on every experiment, existing or future.

        Views ask this first: when it holds (admins, and editors where no grant lowers
        anyone), an object's experiment need not be looked up at all.
        """
        if self.is_admin:
            return not self.read_only or level <= Level.READ
        if not self.role:
            return False
        baseline = _BASELINE[Role(self.role)]
        if self.read_only:
            baseline = min(baseline, Level.READ)
        if baseline < level:
            return False
        return all(self.level(key) >= level for key in self._granted_keys())

    def require_role(self, allowed: bool, what: str) -> None:
        """Raise Denied unless `allowed`, a right of the role (not of an experiment)."""
        if not allowed:
            raise Denied(f"Permission denied: your role may not {what}.")

    def readable(
        self, queryset: QuerySet[M], experiment_field: str = "experiment_id"
    ) -> QuerySet[M]:
        """`queryset` without the rows of experiments this caller may not read."""
        hidden = self.hidden_experiment_ids()
        if not hidden:
            return queryset
        if "*" in hidden:
            return queryset.none()
        return queryset.exclude(**{f"{experiment_field}__in": sorted(hidden)})


ADMIN = Access(role=Role.ADMIN)


def access_for_user(user: Any, read_only: bool = False) -> Access:
    if not getattr(settings, "SPYGLASS_AUTH", True):
        return ADMIN
    return Access(user=user, role=role_of(user), read_only=read_only)


def access_for(request: HttpRequest) -> Access:
    """The caller's Access, computed once per request (after authentication)."""
    cached = getattr(request, "_spyglass_access", None)
    if cached is not None:
        return cached
    credentials = getattr(request, "spyglass_credentials", None)
    read_only = credentials is not None and not credentials.can_write
    access = access_for_user(getattr(request, "user", None), read_only=read_only)
    request._spyglass_access = access  # type: ignore[attr-defined]
    return access


def grant_creator(experiment: Any, access: Access) -> None:
    """The user who creates an experiment manages it (as in MLflow's auth app)."""
    if access.user is not None and getattr(access.user, "is_authenticated", False):
        ExperimentGrant.objects.get_or_create(
            experiment=experiment, user=access.user, defaults={"level": Level.MANAGE}
        )
