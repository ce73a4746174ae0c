from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from access.models import Role, UserRole

PASSWORD = "correct-horse-battery"


def with_role(user: User, role: str) -> User:
    UserRole.objects.update_or_create(user=user, defaults={"role": role})
    return user


@pytest.fixture
def auth_on(settings):
    settings.SPYGLASS_AUTH = True


@pytest.fixture
def alice(db) -> User:
    """The admin."""
    return with_role(User.objects.create_user("alice", password=PASSWORD), Role.ADMIN)


@pytest.fixture
def bob(db) -> User:
    """An editor."""
    return with_role(User.objects.create_user("bob", password=PASSWORD), Role.EDITOR)


@pytest.fixture
def charlie(db) -> User:
    """A viewer."""
    return with_role(User.objects.create_user("charlie", password=PASSWORD), Role.VIEWER)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Django's hasher is slow on purpose; these tests are about who may do what, not hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
