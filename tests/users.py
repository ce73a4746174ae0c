"""The test cast's password and roles, for tests that make users of their own beside
tests/conftest.py's alice (admin), bob (editor) and charlie (viewer)."""

from __future__ import annotations

from django.contrib.auth.models import User

from access.models import UserRole

PASSWORD = "wonder-land-42"


def with_role(user: User, role: str) -> User:
    UserRole.objects.update_or_create(user=user, defaults={"role": role})
    return user
