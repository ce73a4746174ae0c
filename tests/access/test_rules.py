"""The rules of access/rules.py: roles, grants to users and groups, everyone rows, tokens."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from access.models import ExperimentGrant, Level, Role, UserRole
from access.rules import ADMIN, Denied, access_for_user, grant_creator
from tracking.models import Experiment, Trace

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("auth_on")]


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice")


@pytest.fixture
def shared() -> Experiment:
    return Experiment.objects.create(name="shared")


@pytest.fixture
def private() -> Experiment:
    experiment = Experiment.objects.create(name="private")
    ExperimentGrant.objects.create(experiment=experiment, level=Level.NONE)
    return experiment


def with_role(user: User, role: str) -> User:
    UserRole.objects.update_or_create(user=user, defaults={"role": role})
    return user


def test_users_without_a_role_get_the_default_role(alice, shared, settings):
    settings.SPYGLASS_DEFAULT_ROLE = "editor"
    assert access_for_user(alice).level(shared.pk) == Level.EDIT
    settings.SPYGLASS_DEFAULT_ROLE = "viewer"
    assert access_for_user(alice).level(shared.pk) == Level.READ


def test_viewers_read_editors_edit_admins_manage(alice, shared):
    assert access_for_user(with_role(alice, Role.VIEWER)).level(shared.pk) == Level.READ
    assert access_for_user(with_role(alice, Role.EDITOR)).level(shared.pk) == Level.EDIT
    assert access_for_user(with_role(alice, Role.ADMIN)).level(shared.pk) == Level.MANAGE


def test_superusers_are_admins():
    root = User.objects.create_superuser("root", password="x" * 12)
    assert access_for_user(root).is_admin


def test_a_private_experiment_is_hidden_from_those_without_a_grant(alice, private, shared):
    access = access_for_user(alice)
    assert access.level(private.pk) == Level.NONE
    assert access.hidden_experiment_ids() == {str(private.pk)}
    with pytest.raises(Denied) as denied:
        access.require(Level.READ, private.pk)
    assert denied.value.hidden


def test_a_grant_to_a_group_opens_a_private_experiment(alice, private):
    team = Group.objects.create(name="team")
    alice.groups.add(team)
    ExperimentGrant.objects.create(experiment=private, group=team, level=Level.READ)
    access = access_for_user(alice)
    assert access.level(private.pk) == Level.READ
    assert access.hidden_experiment_ids() == set()
    with pytest.raises(Denied) as denied:
        access.require(Level.EDIT, private.pk)
    assert not denied.value.hidden


def test_the_highest_of_a_users_grants_wins(alice, private):
    team = Group.objects.create(name="team")
    alice.groups.add(team)
    ExperimentGrant.objects.create(experiment=private, group=team, level=Level.READ)
    ExperimentGrant.objects.create(experiment=private, user=alice, level=Level.MANAGE)
    assert access_for_user(alice).level(private.pk) == Level.MANAGE


def test_an_everyone_row_never_lifts_a_viewer_above_read(alice, shared):
    ExperimentGrant.objects.create(experiment=shared, level=Level.EDIT)
    assert access_for_user(with_role(alice, Role.VIEWER)).level(shared.pk) == Level.READ


def test_a_read_only_token_never_writes(alice, shared):
    ExperimentGrant.objects.create(experiment=shared, user=alice, level=Level.MANAGE)
    access = access_for_user(alice, read_only=True)
    assert access.level(shared.pk) == Level.READ
    assert not access.can_create_experiments


def test_only_admins_manage_agents(alice):
    assert not access_for_user(with_role(alice, Role.EDITOR)).can_manage_agents
    assert access_for_user(with_role(alice, Role.ADMIN)).can_manage_agents


def test_inactive_and_anonymous_users_have_nothing(alice, shared):
    alice.is_active = False
    alice.save()
    assert access_for_user(alice).level(shared.pk) == Level.NONE
    assert access_for_user(None).readable(Experiment.objects.all()).count() == 0


def test_readable_leaves_out_private_experiments_in_one_exclusion(alice, private, shared):
    Trace.objects.create(trace_id="tr-" + "a" * 32, experiment=private, request_time=timezone.now())
    Trace.objects.create(trace_id="tr-" + "b" * 32, experiment=shared, request_time=timezone.now())
    visible = access_for_user(alice).readable(Trace.objects.all())
    assert list(visible.values_list("trace_id", flat=True)) == ["tr-" + "b" * 32]


def test_the_creator_of_an_experiment_manages_it(alice, settings):
    settings.SPYGLASS_DEFAULT_ROLE = "viewer"
    experiment = Experiment.objects.create(name="mine")
    grant_creator(experiment, access_for_user(alice))
    assert access_for_user(alice).level(experiment.pk) == Level.MANAGE


def test_with_auth_off_everyone_is_admin(settings, alice, private):
    settings.SPYGLASS_AUTH = False
    assert access_for_user(alice) is ADMIN
    assert access_for_user(None).level(private.pk) == Level.MANAGE


def test_a_grant_of_none_hides_an_experiment_from_lists_too(alice, shared):
    ExperimentGrant.objects.create(experiment=shared, user=alice, level=Level.NONE)
    access = access_for_user(alice)
    assert access.level(shared.pk) == Level.NONE
    assert access.hidden_experiment_ids() == {str(shared.pk)}


def test_can_everywhere_holds_until_a_grant_lowers_someone(alice, shared, private):
    editor = access_for_user(with_role(alice, Role.EDITOR))
    assert editor.can_everywhere(Level.READ) is False  # the private one
    ExperimentGrant.objects.create(experiment=private, user=alice, level=Level.EDIT)
    editor = access_for_user(alice)
    assert editor.can_everywhere(Level.EDIT)
    assert not editor.can_everywhere(Level.MANAGE)
    assert not access_for_user(with_role(alice, Role.VIEWER)).can_everywhere(Level.EDIT)
    assert ADMIN.can_everywhere(Level.MANAGE)
