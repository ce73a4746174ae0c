"""The access pages in Chromium: inline changes swap their row or card, refusals show in place."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from access.models import ExperimentGrant, Level, Role, UserRole
from tracking.models import Experiment

pytestmark = pytest.mark.e2e


@pytest.fixture
def page(page_with_refusals):
    """These tests provoke 422s on purpose (refusals shown in place)."""
    return page_with_refusals


@pytest.fixture
def people(server) -> dict[str, User]:
    alice = User.objects.create_user("alice")
    UserRole.objects.create(user=alice, role=Role.ADMIN)
    bob = User.objects.create_user("bob")
    return {"alice": alice, "bob": bob}


def test_a_role_changes_in_its_row_and_the_last_admin_is_kept(page, server, people):
    alice, bob = people["alice"], people["bob"]
    page.goto(server + "/settings/access/")
    assert page.get_by_role("link", name="Access").get_attribute("aria-current") == "page"

    bob_row = page.locator(f"#user-{bob.pk}")
    bob_row.get_by_label("Role of bob").select_option("viewer")
    with page.expect_response(lambda response: response.url.endswith(f"/users/{bob.pk}/role")):
        bob_row.get_by_role("button", name="Save").click()
    assert UserRole.objects.get(user=bob).role == Role.VIEWER

    alice_row = page.locator(f"#user-{alice.pk}")
    alice_row.get_by_label("Role of alice").select_option("editor")
    alice_row.get_by_role("button", name="Save").click()
    alert = page.locator(f"#user-{alice.pk} [role=alert]")
    alert.wait_for()
    assert "alice is the last active admin" in alert.inner_text()
    assert page.locator(f"#user-{alice.pk} select").input_value() == "admin"
    assert UserRole.objects.get(user=alice).role == Role.ADMIN

    page.locator(f"#user-{bob.pk}").get_by_role("button", name="Deactivate").click()
    page.locator(f"#user-{bob.pk}").get_by_role("button", name="Reactivate").wait_for()
    assert not User.objects.get(pk=bob.pk).is_active


def test_a_private_experiment_is_shared_with_a_group(page, server, people):
    experiment = Experiment.objects.create(name="support")
    page.goto(server + "/settings/access/groups/")
    page.get_by_label("Name").fill("team")
    page.get_by_role("button", name="Create group").click()
    page.get_by_role("heading", name="Members").wait_for()

    page.get_by_label("Add").fill("nobody")
    page.get_by_role("button", name="Add member").click()
    page.get_by_text("No user named nobody.").wait_for()
    page.get_by_label("Add").fill("bob")
    page.get_by_role("button", name="Add member").click()
    page.locator("#members").get_by_role("link", name="bob").wait_for()
    team = Group.objects.get(name="team")
    assert list(team.user_set.values_list("username", flat=True)) == ["bob"]

    page.goto(server + "/settings/access/experiments/")
    page.get_by_role("link", name="support").click()
    page.get_by_label("Private: only the people listed").check()
    # The answer replaces #grants: choosing in the old form before the swap loses the choice
    # (the Grant then posts an empty "To" and gets a 422), so wait until the old one is gone.
    before = page.locator("#grants").element_handle()
    page.locator("#grants").get_by_role("button", name="Save").first.click()
    before.wait_for_element_state("hidden")
    page.get_by_label("To", exact=True).select_option(label="team")
    page.get_by_label("Level", exact=True).select_option(label="Edit")
    page.get_by_role("button", name="Grant").click()
    page.get_by_label("Level of team").wait_for()

    rows = ExperimentGrant.objects.filter(experiment=experiment)
    assert {(r.group_id, r.level) for r in rows} == {(None, Level.NONE), (team.pk, Level.EDIT)}
    assert page.get_by_label("Private: only the people listed").is_checked()
