"""`manage.py access`: the access pages' changes from a shell."""

from __future__ import annotations

import io
import sys

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from access.models import ExperimentGrant, Level, Role, UserRole
from access.rules import access_for_user
from tests.users import PASSWORD, with_role
from tracking.models import Experiment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("auth_on")]


def access(*args: str) -> str:
    """Run `manage.py access *args`; what it printed."""
    out = io.StringIO()
    call_command("access", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def stdin(monkeypatch):
    """What --password-from-stdin reads."""

    def feed(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    return feed


@pytest.fixture
def support() -> Experiment:
    return Experiment.objects.create(name="support")


def test_users_lists_each_user_with_role_status_and_groups(alice, bob, charlie):
    Group.objects.create(name="team").user_set.add(bob)
    charlie.is_active = False
    charlie.save()

    lines = access("users").splitlines()

    assert [line.split("\t")[:3] for line in lines] == [
        ["alice", "admin", "active"],
        ["bob", "editor", "active"],
        ["charlie", "viewer", "inactive"],
    ]
    assert "groups=team" in lines[1] and "last_login=never" in lines[1]


def test_a_first_admin_is_created_with_a_password_from_stdin(stdin):
    stdin("a-long-first-password\n")

    output = access("user", "alice", "--create", "--role", "admin", "--password-from-stdin")

    assert "Created user alice." in output
    alice = User.objects.get(username="alice")
    assert alice.check_password("a-long-first-password")
    assert access_for_user(alice).is_admin


def test_a_user_created_without_a_role_follows_the_default_role(settings):
    access("user", "dave", "--create")

    dave = User.objects.get(username="dave")
    assert not UserRole.objects.filter(user=dave).exists()
    assert not dave.has_usable_password()
    settings.SPYGLASS_DEFAULT_ROLE = "viewer"
    assert access_for_user(dave).role == Role.VIEWER


def test_an_unknown_user_is_a_clear_error_without_create():
    with pytest.raises(CommandError, match=r"No user named 'alcie' \(add --create"):
        access("user", "alcie", "--role", "editor")
    assert not User.objects.exists()


def test_a_weak_password_from_stdin_is_refused(bob, stdin):
    stdin("bob\n")

    with pytest.raises(CommandError, match=r"Password refused: .*too short"):
        access("user", "bob", "--password-from-stdin")
    assert User.objects.get(pk=bob.pk).check_password(PASSWORD)


def test_an_empty_password_from_stdin_is_refused(stdin):
    stdin("")
    with pytest.raises(CommandError, match="empty password"):
        access("user", "dave", "--create", "--password-from-stdin")
    assert not User.objects.exists()


def test_a_role_is_changed_and_a_user_deactivated_then_reactivated(alice, bob):
    output = access("user", "bob", "--role", "viewer", "--deactivate")

    assert output.split("\t")[:3] == ["bob", "viewer", "inactive"]
    bob.refresh_from_db()
    assert not bob.is_active and UserRole.objects.get(user=bob).role == Role.VIEWER
    access("user", "bob", "--activate")
    assert User.objects.get(pk=bob.pk).is_active


def test_an_unknown_role_is_a_clear_error(bob):
    with pytest.raises(CommandError, match="invalid choice: 'owner'"):
        access("user", "bob", "--role", "owner")


def test_the_last_admin_cannot_be_demoted_or_deactivated_from_the_shell(alice, bob):
    with pytest.raises(CommandError, match="alice is the last active admin"):
        access("user", "alice", "--role", "editor")
    with pytest.raises(CommandError, match="last active admin"):
        access("user", "alice", "--deactivate")

    alice.refresh_from_db()
    assert alice.is_active and UserRole.objects.get(user=alice).role == Role.ADMIN
    access("user", "bob", "--role", "admin")
    access("user", "alice", "--role", "editor")  # bob is an admin now
    assert UserRole.objects.get(user=alice).role == Role.EDITOR


def test_a_refused_change_leaves_the_whole_command_undone(alice, stdin):
    stdin("a-new-long-password\n")

    with pytest.raises(CommandError):
        access("user", "alice", "--password-from-stdin", "--deactivate")

    assert User.objects.get(pk=alice.pk).check_password(PASSWORD)


def test_a_group_is_created_on_first_use_with_its_members(alice, bob, charlie):
    output = access("group", "team", "--add", "alice", "bob", "--add", "charlie")

    assert "Created group team." in output
    assert output.splitlines()[-1] == "team\tmembers=alice,bob,charlie"
    output = access("group", "team", "--remove", "bob")
    assert set(Group.objects.get(name="team").user_set.values_list("username", flat=True)) == {
        "alice",
        "charlie",
    }
    assert access("groups") == "team\tmembers=alice,charlie\n"


def test_an_unknown_member_changes_nothing(bob):
    Group.objects.create(name="team")

    with pytest.raises(CommandError, match="No user named 'mallory', 'eve'"):
        access("group", "team", "--add", "bob", "mallory", "eve")

    assert not Group.objects.get().user_set.exists()


def test_a_group_is_renamed_and_deleted(bob):
    Group.objects.create(name="team").user_set.add(bob)
    Group.objects.create(name="other")

    with pytest.raises(CommandError, match=r"A group named 'other' already exists\."):
        access("group", "team", "--rename", "other")
    access("group", "team", "--rename", "evals")
    assert Group.objects.filter(name="evals").exists()
    access("group", "evals", "--delete")
    assert list(Group.objects.values_list("name", flat=True)) == ["other"]
    with pytest.raises(CommandError, match="No group named 'evals'"):
        access("group", "evals", "--delete")


def test_grants_by_experiment_name_or_id_reach_access_for(alice, bob, charlie, support):
    Group.objects.create(name="team").user_set.add(charlie)

    access("grant", "support", "--everyone", "--level", "none")
    access("grant", str(support.pk), "--user", "bob", "--level", "MANAGE")
    output = access("grant", "support", "--group", "team", "--level", "read")

    assert output == f"group team: read on support ({support.pk}).\n"
    assert access_for_user(bob).level(support.pk) == Level.MANAGE
    assert access_for_user(charlie).level(support.pk) == Level.READ
    dave = User.objects.create_user("dave")
    assert access_for_user(dave).level(support.pk) == Level.NONE
    assert access("grants", "support").splitlines() == [
        f"support\t{support.pk}\teveryone\tnone",
        f"support\t{support.pk}\tuser bob\tmanage",
        f"support\t{support.pk}\tgroup team\tread",
    ]


def test_a_second_grant_replaces_the_first(bob, support):
    access("grant", "support", "--user", "bob", "--level", "read")
    access("grant", "support", "--user", "bob", "--level", "edit")

    assert list(ExperimentGrant.objects.values_list("level", flat=True)) == [Level.EDIT]


def test_an_experiment_named_with_digits_is_found_by_name(bob):
    Experiment.objects.create(name="2026")

    access("grant", "2026", "--user", "bob", "--level", "read")

    assert ExperimentGrant.objects.get().experiment.name == "2026"


def test_unknown_names_and_levels_are_clear_errors(bob, support):
    with pytest.raises(CommandError, match="No experiment with the id or name 'nope'"):
        access("grant", "nope", "--user", "bob", "--level", "read")
    with pytest.raises(CommandError, match="No user named 'mallory'"):
        access("grant", "support", "--user", "mallory", "--level", "read")
    with pytest.raises(CommandError, match="No group named 'ghosts'"):
        access("grant", "support", "--group", "ghosts", "--level", "read")
    with pytest.raises(CommandError, match="invalid choice: 'owner'"):
        access("grant", "support", "--user", "bob", "--level", "owner")
    with pytest.raises(CommandError, match="one of the arguments --user --group --everyone"):
        access("grant", "support", "--level", "read")
    assert not ExperimentGrant.objects.exists()


def test_revoke_removes_a_grant_and_says_when_there_was_none(bob, support):
    ExperimentGrant.objects.create(experiment=support, user=bob, level=Level.READ)
    ExperimentGrant.objects.create(experiment=support, level=Level.NONE)

    assert "Revoked the grant of user bob on support." in access(
        "revoke", "support", "--user", "bob"
    )
    assert "nothing to do" in access("revoke", "support", "--user", "bob")
    access("revoke", "support", "--everyone")

    assert not ExperimentGrant.objects.exists()
    assert access_for_user(bob).level(support.pk) == Level.EDIT


def test_an_admin_made_in_the_shell_can_open_the_access_pages(client, stdin):
    stdin(PASSWORD + "\n")
    access("user", "root", "--create", "--role", "admin", "--password-from-stdin")

    assert client.login(username="root", password=PASSWORD)
    assert client.get("/settings/access/").status_code == 200
    with_role(User.objects.get(username="root"), Role.EDITOR)
    assert client.get("/settings/access/").status_code == 403
