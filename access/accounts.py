"""Changes to users and their roles, shared by the access pages and `manage.py access`.

The one rule they add to Django's: there is always an active admin left. Nobody (on a page or
in a shell) demotes or deactivates the last one, so a team cannot lock itself out of its
users and grants by a slip.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.db.models import Q, QuerySet

from access.models import Role, UserRole


class Refused(Exception):
    """A change the rules refuse; `str()` says why, in words for the person who asked."""


def active_admins() -> QuerySet[Any]:
    """Active users whose role is admin: superusers, admin rows, and (when the default role
    is admin) users without a row."""
    is_admin = Q(is_superuser=True) | Q(spyglass_role__role=Role.ADMIN)
    if settings.SPYGLASS_DEFAULT_ROLE == Role.ADMIN:
        is_admin |= Q(spyglass_role__isnull=True)
    return get_user_model().objects.filter(is_admin, is_active=True)


def stored_role(user: AbstractUser) -> str:
    """The role a user has when active (role_of says "" for inactive ones); no query when
    the user came with `select_related("spyglass_role")`."""
    if user.is_superuser:
        return Role.ADMIN
    try:
        return user.spyglass_role.role  # type: ignore[attr-defined]
    except UserRole.DoesNotExist:
        return settings.SPYGLASS_DEFAULT_ROLE


def _keep_an_admin(user: AbstractUser) -> None:
    """Refuse if `user` is the last active admin; call inside the change's transaction."""
    if not active_admins().filter(pk=user.pk).exists():
        return
    # Lock every admin's row first (in one order, so two of these never deadlock): a
    # concurrent demotion of another admin waits for this transaction, and its own check (a
    # fresh statement) then sees this one's change.
    admins = list(active_admins().values_list("pk", flat=True))
    locked = get_user_model().objects.select_for_update().filter(pk__in=admins).order_by("pk")
    list(locked.values("pk"))
    if not active_admins().exclude(pk=user.pk).exists():
        raise Refused(
            f"{user.get_username()} is the last active admin: make another user an admin first."
        )


def create_user(username: str, password: str | None, role: str | None) -> AbstractUser:
    """A new active user with `role` (None: SPYGLASS_DEFAULT_ROLE, whatever it becomes).
    Without a password they cannot sign in (an unusable one is set) until one is given;
    `manage.py create_token` can still issue them tokens."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=username, password=password)
        if role:
            UserRole.objects.create(user=user, role=role)
    return user


def set_role(user: AbstractUser, role: str) -> None:
    if role not in Role.values:
        raise Refused(f"Unknown role {role!r}: use one of {', '.join(Role.values)}.")
    if user.is_superuser and role != Role.ADMIN:
        raise Refused(
            f"{user.get_username()} is a superuser, always an admin: "
            "clear that in the Django admin first."
        )
    with transaction.atomic():
        if role != Role.ADMIN:
            _keep_an_admin(user)
        UserRole.objects.update_or_create(user=user, defaults={"role": role})


def set_active(user: AbstractUser, active: bool) -> None:
    """Deactivated users cannot sign in and their tokens stop working; nothing is deleted."""
    with transaction.atomic():
        if not active:
            _keep_an_admin(user)
        user.is_active = active
        user.save(update_fields=["is_active"])


def set_password(user: AbstractUser, password: str) -> None:
    """Callers validate the password first (Django's validators, in the form or command)."""
    user.set_password(password)
    user.save(update_fields=["password"])
