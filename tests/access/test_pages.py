"""The access pages: admins manage users, groups and grants; nobody else sees them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from access.models import ExperimentGrant, Level, Role, UserRole
from access.rules import access_for_user
from tests.users import PASSWORD, with_role
from tracking.models import Experiment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("auth_on")]

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def team(bob) -> Group:
    group = Group.objects.create(name="team")
    group.user_set.add(bob)
    return group


@pytest.fixture
def support() -> Experiment:
    return Experiment.objects.create(name="support")


def as_user(client, user: User):
    client.force_login(user)
    return client


def role_of(user: User) -> str:
    return UserRole.objects.get(user=user).role


# --- Who may see them ---------------------------------------------------------------------


def test_an_editor_gets_403_on_the_access_pages(client, alice, bob, team, support):
    grant = ExperimentGrant.objects.create(experiment=support, user=alice, level=Level.READ)
    as_user(client, bob)
    pages = [
        "/settings/access/",
        f"/settings/access/users/{alice.pk}/",
        "/settings/access/groups/",
        f"/settings/access/groups/{team.pk}/",
        "/settings/access/experiments/",
        f"/settings/access/experiments/{support.pk}/",
    ]
    for path in pages:
        assert client.get(path).status_code == 403, path
        assert client.get(path, **HX).status_code == 403, path
    posts = {
        "/settings/access/": {"username": "mallory", "password": PASSWORD, "role": "admin"},
        f"/settings/access/users/{bob.pk}/role": {"role": "admin"},
        f"/settings/access/users/{alice.pk}/active": {"active": "0"},
        f"/settings/access/users/{alice.pk}/password": {"password": "taken-over-now"},
        "/settings/access/groups/": {"name": "mine"},
        f"/settings/access/groups/{team.pk}/": {"name": "renamed"},
        f"/settings/access/groups/{team.pk}/members": {"username": "bob"},
        f"/settings/access/groups/{team.pk}/members/{bob.pk}/remove": {},
        f"/settings/access/groups/{team.pk}/delete": {},
        f"/settings/access/experiments/{support.pk}/": {"who": f"user:{bob.pk}", "level": "3"},
        f"/settings/access/experiments/{support.pk}/audience": {"audience": "private"},
        f"/settings/access/experiments/{support.pk}/grants/{grant.pk}/": {"level": "0"},
        f"/settings/access/experiments/{support.pk}/grants/{grant.pk}/delete": {},
    }
    for path, data in posts.items():
        assert client.post(path, data, **HX).status_code == 403, path

    assert role_of(bob) == Role.EDITOR and User.objects.get(pk=alice.pk).is_active
    assert not User.objects.filter(username="mallory").exists()
    assert list(team.user_set.all()) == [bob] and Group.objects.get().name == "team"
    assert list(ExperimentGrant.objects.values_list("user", "level")) == [(alice.pk, Level.READ)]
    assert User.objects.get(pk=alice.pk).check_password(PASSWORD)


def test_a_viewer_gets_403_too(client, charlie):
    assert as_user(client, charlie).get("/settings/access/").status_code == 403


def test_a_signed_out_visitor_is_sent_to_the_login_page(client):
    response = client.get("/settings/access/groups/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_only_admins_see_the_access_link_in_the_nav(client, alice, bob):
    assert 'href="/settings/access/"' not in as_user(client, bob).get("/").content.decode()
    assert 'href="/settings/access/"' in as_user(client, alice).get("/").content.decode()


def test_a_superuser_is_an_admin_here(client):
    root = User.objects.create_superuser("root", password=PASSWORD)
    assert as_user(client, root).get("/settings/access/").status_code == 200


def test_everyone_sees_their_own_role_on_the_tokens_page(client, alice, charlie):
    page = as_user(client, charlie).get("/settings/tokens/").content.decode()
    assert "role <strong>Viewer (reads)</strong>" in page
    assert "/settings/access/" not in page

    page = as_user(client, alice).get("/settings/tokens/").content.decode()
    assert "role <strong>Admin" in page


# --- Users --------------------------------------------------------------------------------


def test_an_admin_sees_every_user_with_role_groups_status_and_last_login(
    client, alice, bob, charlie, team
):
    charlie.is_active = False
    charlie.save()
    as_user(client, alice)

    page = client.get("/settings/access/").content.decode()

    bob_row = page[page.index('id="user-' + str(bob.pk)) :].split("</tr>")[0]
    assert '<option value="editor" selected>' in bob_row
    assert f'href="/settings/access/groups/{team.pk}/"' in bob_row and ">team</a>" in bob_row
    assert "active" in bob_row and "never" in bob_row
    charlie_row = page[page.index('id="user-' + str(charlie.pk)) :].split("</tr>")[0]
    assert "inactive" in charlie_row and "Reactivate" in charlie_row
    alice_row = page[page.index('id="user-' + str(alice.pk)) :].split("</tr>")[0]
    assert "ago" in alice_row  # force_login set her last login


def test_the_user_list_runs_the_same_queries_for_many_users(
    client, alice, django_assert_max_num_queries
):
    as_user(client, alice)
    for i in range(20):
        user = User.objects.create_user(f"user{i}")
        user.groups.add(Group.objects.get_or_create(name=f"group{i % 3}")[0])
        with_role(user, Role.VIEWER)

    # Session, user, role (the nav), then the users with their roles and their groups.
    with django_assert_max_num_queries(6):
        assert client.get("/settings/access/").status_code == 200


def test_an_admin_adds_a_user_who_can_then_sign_in(client, alice):
    as_user(client, alice)

    response = client.post(
        "/settings/access/", {"username": "dave", "password": "pumpkin-soup-77", "role": "viewer"}
    )

    dave = User.objects.get(username="dave")
    assert response.status_code == 302
    assert response["Location"] == f"/settings/access/#user-{dave.pk}"
    assert role_of(dave) == Role.VIEWER and dave.is_active
    client.logout()
    assert client.login(username="dave", password="pumpkin-soup-77")


def test_a_weak_password_is_refused_inline_and_nobody_is_added(client, alice):
    as_user(client, alice)

    response = client.post(
        "/settings/access/", {"username": "dave", "password": "dave1", "role": "viewer"}
    )

    assert response.status_code == 422
    page = response.content.decode()
    assert "This password is too short" in page
    assert 'value="dave"' in page  # the form keeps what was typed, but the password
    assert not User.objects.filter(username="dave").exists()


def test_a_username_taken_in_another_case_is_refused(client, alice, bob):
    as_user(client, alice)

    response = client.post(
        "/settings/access/", {"username": "Bob", "password": PASSWORD, "role": "viewer"}
    )

    assert response.status_code == 422
    assert "A user named Bob already exists." in response.content.decode()
    assert User.objects.filter(username__iexact="bob").count() == 1


def test_an_admin_changes_a_role_in_its_row(client, alice, bob):
    as_user(client, alice)

    response = client.post(f"/settings/access/users/{bob.pk}/role", {"role": "viewer"}, **HX)

    assert response.status_code == 200
    row = response.content.decode()
    assert row.strip().startswith(f'<tr id="user-{bob.pk}"') and "<html" not in row
    assert '<option value="viewer" selected>' in row
    assert response["Vary"] == "HX-Request" or "HX-Request" in response["Vary"]
    assert role_of(bob) == Role.VIEWER
    assert access_for_user(bob).level(Experiment.objects.create(name="x").pk) == Level.READ


def test_without_htmx_a_role_change_returns_to_the_list(client, alice, bob):
    response = as_user(client, alice).post(
        f"/settings/access/users/{bob.pk}/role", {"role": "admin"}
    )

    assert response.status_code == 302
    assert response["Location"] == f"/settings/access/#user-{bob.pk}"
    assert role_of(bob) == Role.ADMIN


def test_an_unknown_role_is_refused(client, alice, bob):
    response = as_user(client, alice).post(
        f"/settings/access/users/{bob.pk}/role", {"role": "owner"}, **HX
    )

    assert response.status_code == 422
    assert "Choose viewer, editor or admin." in response.content.decode()
    assert role_of(bob) == Role.EDITOR


def test_the_last_admin_cannot_demote_themself(client, alice, bob):
    as_user(client, alice)

    response = client.post(f"/settings/access/users/{alice.pk}/role", {"role": "editor"}, **HX)

    assert response.status_code == 422
    assert "alice is the last active admin" in response.content.decode()
    assert '<option value="admin" selected>' in response.content.decode()
    assert role_of(alice) == Role.ADMIN
    # Without htmx: the whole list, with the refusal in alice's row.
    response = client.post(f"/settings/access/users/{alice.pk}/role", {"role": "viewer"})
    assert response.status_code == 422
    assert "<html" in response.content.decode() and "last active admin" in response.content.decode()
    assert role_of(alice) == Role.ADMIN


def test_the_last_admin_cannot_deactivate_themself(client, alice):
    as_user(client, alice)

    response = client.post(f"/settings/access/users/{alice.pk}/active", {"active": "0"}, **HX)

    assert response.status_code == 422
    assert "last active admin" in response.content.decode()
    assert User.objects.get(pk=alice.pk).is_active


def test_a_superuser_counts_as_another_admin(client, alice):
    User.objects.create_superuser("root", password=PASSWORD)
    as_user(client, alice)

    response = client.post(f"/settings/access/users/{alice.pk}/role", {"role": "editor"}, **HX)

    # alice is no longer an admin: her access page is gone, so she goes to her settings.
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/settings/tokens/"
    assert role_of(alice) == Role.EDITOR
    assert client.get("/settings/access/").status_code == 403


def test_an_inactive_admin_does_not_count(client, alice):
    other = with_role(User.objects.create_user("dana", password=PASSWORD), Role.ADMIN)
    other.is_active = False
    other.save()

    response = as_user(client, alice).post(
        f"/settings/access/users/{alice.pk}/active", {"active": "0"}, **HX
    )

    assert response.status_code == 422
    assert User.objects.get(pk=alice.pk).is_active


def test_a_superusers_role_cannot_be_lowered_here(client, alice):
    root = User.objects.create_superuser("root", password=PASSWORD)

    response = as_user(client, alice).post(
        f"/settings/access/users/{root.pk}/role", {"role": "viewer"}, **HX
    )

    assert response.status_code == 422
    assert "root is a superuser, always an admin" in response.content.decode()


def test_a_deactivated_user_cannot_sign_in_until_reactivated(client, alice, bob):
    as_user(client, alice)

    response = client.post(f"/settings/access/users/{bob.pk}/active", {"active": "0"}, **HX)

    assert response.status_code == 200 and "Reactivate" in response.content.decode()
    assert not client.login(username="bob", password=PASSWORD)
    as_user(client, alice).post(f"/settings/access/users/{bob.pk}/active", {"active": "1"})
    assert client.login(username="bob", password=PASSWORD)


def test_an_admin_sets_a_new_password_and_the_old_one_stops_working(client, alice, bob):
    as_user(client, alice)

    response = client.post(
        f"/settings/access/users/{bob.pk}/password", {"password": "a-brand-new-secret"}
    )

    assert response.status_code == 200
    assert "Password changed: bob is signed out everywhere else." in response.content.decode()
    bob.refresh_from_db()
    assert bob.check_password("a-brand-new-secret") and not bob.check_password(PASSWORD)


def test_a_new_password_goes_through_the_validators(client, alice, bob):
    response = as_user(client, alice).post(
        f"/settings/access/users/{bob.pk}/password", {"password": "bob"}
    )

    assert response.status_code == 422
    page = response.content.decode()
    assert "too short" in page and "too similar to the username" in page
    assert User.objects.get(pk=bob.pk).check_password(PASSWORD)


def test_an_admin_who_changes_their_own_password_stays_signed_in(client, alice):
    as_user(client, alice)

    client.post(f"/settings/access/users/{alice.pk}/password", {"password": "another-long-one"})

    assert client.get("/settings/access/").status_code == 200


def test_a_users_page_lists_their_own_grants(client, alice, bob, support):
    ExperimentGrant.objects.create(experiment=support, user=bob, level=Level.MANAGE)

    page = as_user(client, alice).get(f"/settings/access/users/{bob.pk}/").content.decode()

    assert f'href="/settings/access/experiments/{support.pk}/">support</a>' in page
    assert "Manage" in page


def test_an_unknown_user_is_404(client, alice):
    assert as_user(client, alice).get("/settings/access/users/999/").status_code == 404


# --- Groups -------------------------------------------------------------------------------


def test_an_admin_creates_renames_and_deletes_a_group(client, alice, bob):
    as_user(client, alice)

    response = client.post("/settings/access/groups/", {"name": "evals"})
    evals = Group.objects.get(name="evals")
    assert (
        response.status_code == 302
        and response["Location"] == f"/settings/access/groups/{evals.pk}/"
    )

    assert (
        client.post(f"/settings/access/groups/{evals.pk}/", {"name": "judges"}).status_code == 302
    )
    evals.user_set.add(bob)
    response = client.post(f"/settings/access/groups/{evals.pk}/delete", **HX)

    assert response["HX-Redirect"] == "/settings/access/groups/"
    assert not Group.objects.exists()
    assert User.objects.filter(pk=bob.pk).exists()


def test_a_group_name_must_be_unique(client, alice, team):
    as_user(client, alice)
    response = client.post("/settings/access/groups/", {"name": "team"})
    assert response.status_code == 422
    assert "Group with this Name already exists." in response.content.decode()

    other = Group.objects.create(name="other")
    response = client.post(f"/settings/access/groups/{other.pk}/", {"name": "team"})
    assert response.status_code == 422
    assert "<h1>Access</h1>" in response.content.decode()
    assert "other" in response.content.decode()  # the breadcrumb keeps the name it has
    assert Group.objects.get(pk=other.pk).name == "other"


def test_members_are_added_and_removed_in_the_members_fragment(client, alice, bob, charlie, team):
    as_user(client, alice)

    response = client.post(
        f"/settings/access/groups/{team.pk}/members", {"username": "charlie"}, **HX
    )

    assert response.status_code == 200
    fragment = response.content.decode()
    assert fragment.strip().startswith('<section class="section card access-card" id="members">')
    assert "charlie" in fragment and "<html" not in fragment
    assert set(team.user_set.values_list("username", flat=True)) == {"bob", "charlie"}

    client.post(f"/settings/access/groups/{team.pk}/members/{bob.pk}/remove", **HX)
    assert list(team.user_set.values_list("username", flat=True)) == ["charlie"]


def test_adding_someone_unknown_to_a_group_is_refused_inline(client, alice, team):
    response = as_user(client, alice).post(
        f"/settings/access/groups/{team.pk}/members", {"username": "mallory"}, **HX
    )

    assert response.status_code == 422
    assert "No user named mallory." in response.content.decode()


def test_removing_someone_who_is_not_a_member_is_404(client, alice, charlie, team):
    url = f"/settings/access/groups/{team.pk}/members/{charlie.pk}/remove"
    assert as_user(client, alice).post(url).status_code == 404


def test_a_group_grant_reaches_its_members(client, alice, bob, charlie, team, support):
    as_user(client, alice)
    client.post(f"/settings/access/experiments/{support.pk}/audience", {"audience": "private"})
    client.post(
        f"/settings/access/experiments/{support.pk}/", {"who": f"group:{team.pk}", "level": "1"}
    )
    assert access_for_user(bob).level(support.pk) == Level.READ
    assert access_for_user(charlie).level(support.pk) == Level.NONE

    client.post(f"/settings/access/groups/{team.pk}/members", {"username": "charlie"})

    assert access_for_user(charlie).level(support.pk) == Level.READ


# --- Grants -------------------------------------------------------------------------------


def test_grants_made_on_the_page_are_what_access_for_sees(client, alice, bob, charlie, support):
    as_user(client, alice)
    assert access_for_user(charlie).level(support.pk) == Level.READ  # a viewer, by role

    response = client.post(
        f"/settings/access/experiments/{support.pk}/audience", {"audience": "private"}, **HX
    )
    assert response.status_code == 200 and 'value="private" checked' in response.content.decode()
    assert access_for_user(charlie).level(support.pk) == Level.NONE
    assert access_for_user(bob).hidden_experiment_ids() == {str(support.pk)}

    response = client.post(
        f"/settings/access/experiments/{support.pk}/", {"who": f"user:{bob.pk}", "level": "3"}, **HX
    )
    assert response.status_code == 200
    assert response.content.decode().strip().startswith('<div id="grants"')
    assert access_for_user(bob).level(support.pk) == Level.MANAGE

    grant = ExperimentGrant.objects.get(user=bob)
    client.post(f"/settings/access/experiments/{support.pk}/grants/{grant.pk}/", {"level": "1"})
    assert access_for_user(bob).level(support.pk) == Level.READ

    client.post(f"/settings/access/experiments/{support.pk}/grants/{grant.pk}/delete")
    assert access_for_user(bob).level(support.pk) == Level.NONE

    client.post(f"/settings/access/experiments/{support.pk}/audience", {"audience": "read"})
    assert access_for_user(bob).level(support.pk) == Level.READ
    client.post(f"/settings/access/experiments/{support.pk}/audience", {"audience": "role"})
    assert access_for_user(bob).level(support.pk) == Level.EDIT
    assert not ExperimentGrant.objects.exists()


def test_granting_someone_again_changes_their_level(client, alice, bob, support):
    as_user(client, alice)
    for level in ("1", "2"):
        client.post(
            f"/settings/access/experiments/{support.pk}/", {"who": f"user:{bob.pk}", "level": level}
        )

    assert list(ExperimentGrant.objects.values_list("user", "level")) == [(bob.pk, Level.EDIT)]


def test_a_grant_needs_someone_and_a_known_level(client, alice, bob, support):
    as_user(client, alice)

    response = client.post(
        f"/settings/access/experiments/{support.pk}/", {"who": "", "level": "1"}, **HX
    )
    assert response.status_code == 422 and "This field is required." in response.content.decode()
    response = client.post(
        f"/settings/access/experiments/{support.pk}/", {"who": f"user:{bob.pk}", "level": "9"}
    )
    assert response.status_code == 422 and "Select a valid choice" in response.content.decode()
    response = client.post(
        f"/settings/access/experiments/{support.pk}/", {"who": "user:999", "level": "1"}
    )
    assert response.status_code == 422
    assert not ExperimentGrant.objects.exists()


def test_a_grant_is_changed_only_through_its_own_experiment(client, alice, bob, support):
    other = Experiment.objects.create(name="other")
    grant = ExperimentGrant.objects.create(experiment=other, user=bob, level=Level.READ)

    url = f"/settings/access/experiments/{support.pk}/grants/{grant.pk}/"
    assert as_user(client, alice).post(url, {"level": "3"}).status_code == 404
    assert ExperimentGrant.objects.get().level == Level.READ


def test_the_experiment_list_says_who_sees_each(client, alice, bob, team, support):
    private = Experiment.objects.create(name="private-evals")
    ExperimentGrant.objects.create(experiment=private, level=Level.NONE)
    ExperimentGrant.objects.create(experiment=private, user=bob, level=Level.EDIT)
    ExperimentGrant.objects.create(experiment=private, group=team, level=Level.READ)
    as_user(client, alice)

    page = client.get("/settings/access/experiments/").content.decode()

    row = page[page.index(f'id="experiment-{private.pk}"') :].split("</tr>")[0]
    assert "Private: only the people listed" in row
    assert '<td class="num">1</td>' in row
    row = page[page.index(f'id="experiment-{support.pk}"') :].split("</tr>")[0]
    assert "Everyone: their role&#x27;s access" in row

    fragment = client.get("/settings/access/experiments/?q=evals", **HX).content.decode()
    assert "private-evals" in fragment and ">support<" not in fragment and "<html" not in fragment


def test_the_access_pages_show_hostile_names_as_text(client, alice, bob, support):
    hostile = "<script>alert(1)</script>"
    team = Group.objects.create(name=hostile)
    team.user_set.add(bob)
    experiment = Experiment.objects.create(name=hostile + " exp")
    ExperimentGrant.objects.create(experiment=experiment, group=team, level=Level.READ)
    as_user(client, alice)

    for path in (
        "/settings/access/",
        "/settings/access/groups/",
        f"/settings/access/groups/{team.pk}/",
        "/settings/access/experiments/",
        f"/settings/access/experiments/{experiment.pk}/",
    ):
        page = client.get(path).content.decode()
        assert hostile not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path


def test_htmx_restoring_history_gets_the_whole_page(client, alice):
    response = as_user(client, alice).get(
        "/settings/access/experiments/?q=x", HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HX
    )

    assert "<html" in response.content.decode()
