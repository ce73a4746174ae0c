"""access/accounts.py: the last active admin stays, even when two admins demote each other at
the same moment."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction

from access import accounts
from access.models import Role, UserRole
from tests.users import with_role


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin():
    if connection.vendor == "sqlite":
        pytest.skip("row locks are PostgreSQL's; SQLite runs one writer at a time anyway")
    alice = with_role(User.objects.create_user("alice"), Role.ADMIN)
    bob = with_role(User.objects.create_user("bob"), Role.ADMIN)
    first_done, let_first_commit = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def demote_bob() -> None:
        try:
            with transaction.atomic():
                accounts.set_role(bob, Role.EDITOR)
                first_done.set()
                let_first_commit.wait(5)
            outcome["bob"] = "demoted"
        finally:
            connections.close_all()

    def demote_alice() -> None:
        try:
            accounts.set_role(alice, Role.EDITOR)
            outcome["alice"] = "demoted"
        except accounts.Refused as refusal:
            outcome["alice"] = str(refusal)
        finally:
            connections.close_all()

    first = threading.Thread(target=demote_bob)
    first.start()
    assert first_done.wait(5)
    second = threading.Thread(target=demote_alice)
    second.start()
    time.sleep(0.3)  # the second demotion is now waiting on the first one's row locks
    assert "alice" not in outcome
    let_first_commit.set()
    first.join(10)
    second.join(10)

    assert outcome == {"bob": "demoted", "alice": "alice is the last active admin: "
                       "make another user an admin first."}  # fmt: skip
    assert list(
        UserRole.objects.filter(role=Role.ADMIN).values_list("user__username", flat=True)
    ) == ["alice"]


@pytest.mark.django_db
def test_with_the_default_role_admin_a_user_without_a_role_counts(settings):
    settings.SPYGLASS_DEFAULT_ROLE = "admin"
    alice = with_role(User.objects.create_user("alice"), Role.ADMIN)
    User.objects.create_user("bob")  # no role row: the default, admin

    accounts.set_role(alice, Role.VIEWER)

    assert UserRole.objects.get(user=alice).role == Role.VIEWER
