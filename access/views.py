"""The access pages (admins only): users and their roles, groups and their members, and who
has what on each experiment. Every other caller gets 403, fragments included."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from access import accounts, grants
from access.forms import (
    ActiveForm,
    AudienceForm,
    GrantForm,
    GroupForm,
    LevelForm,
    MemberForm,
    NewUserForm,
    PasswordForm,
    RoleForm,
)
from access.models import ExperimentGrant, Level, Role
from access.rules import access_for, declares
from tracking.models import Experiment, LifecycleStage
from webapp.htmx import HtmxHttpRequest, go_to, render_page

EXPERIMENTS_PER_PAGE = 50


def admin_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not access_for(request).can_manage_users:
            raise PermissionDenied("Only admins manage users, groups and grants.")
        return view(request, *args, **kwargs)

    return declares("admins only (role admin), else 403")(wrapped)


def _users() -> Any:
    return (
        get_user_model()
        .objects.select_related("spyglass_role")
        .prefetch_related(Prefetch("groups", queryset=Group.objects.order_by("name")))
        .order_by("username")
    )


def _with_role(user: AbstractUser, error: str = "") -> AbstractUser:
    """The user, with what their row shows: their role, and why a change was refused."""
    user.role = accounts.stored_role(user)  # type: ignore[attr-defined]
    user.error = error  # type: ignore[attr-defined]
    return user


# --- Users --------------------------------------------------------------------------------


@admin_only
@require_http_methods(["GET", "HEAD", "POST"])
def users(request: HtmxHttpRequest) -> HttpResponse:
    """Everyone who may sign in, and a form that adds someone."""
    form = NewUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = accounts.create_user(**form.cleaned_data)
        return redirect(reverse("access:users") + f"#user-{user.pk}")
    return _users_page(request, form, status=422 if form.errors else 200)


def _users_page(request: HtmxHttpRequest, form: NewUserForm, errors: dict[int, str] | None = None,
                status: int = 200) -> HttpResponse:  # fmt: skip
    errors = errors or {}
    context = {
        "form": form,
        "users": [_with_role(u, errors.get(u.pk, "")) for u in _users()],
        "roles": Role.choices,
        "tab": "users",
    }
    return render_page(request, "access/users.html", context, status=status)


@admin_only
@require_safe
def user(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _user_page(request, get_object_or_404(_users(), pk=pk), PasswordForm(None))


def _user_page(request: HtmxHttpRequest, person: AbstractUser, form: PasswordForm,
               changed: bool = False, status: int = 200) -> HttpResponse:  # fmt: skip
    held = ExperimentGrant.objects.filter(user=person).select_related("experiment")
    context = {
        "person": _with_role(person),
        "form": form,
        "password_changed": changed,
        "roles": Role.choices,
        "grants": held.order_by("experiment__name"),
        "tab": "users",
    }
    return render_page(request, "access/user.html", context, status=status)


@admin_only
@require_POST
def user_role(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(get_user_model(), pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _user_changed(request, person, "Choose viewer, editor or admin.")
    error = _refused(accounts.set_role, person, form.cleaned_data["role"])
    return _user_changed(request, person, error)


@admin_only
@require_POST
def user_active(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(get_user_model(), pk=pk)
    form = ActiveForm(request.POST)
    if not form.is_valid():
        return _user_changed(request, person, "Say active or inactive.")
    error = _refused(accounts.set_active, person, form.cleaned_data["active"])
    return _user_changed(request, person, error)


def _refused(change: Callable[..., None], *args: Any) -> str:
    """Run the change; the reason it was refused, or "" when it was made."""
    try:
        change(*args)
    except accounts.Refused as refusal:
        return str(refusal)
    return ""


def _user_changed(request: HtmxHttpRequest, person: AbstractUser, error: str) -> HttpResponse:
    """The user's row again (with the error, 422), or the list; an admin who just gave up
    their own admin role goes to their settings page, since this one is no longer theirs."""
    if person.pk == request.user.pk and not accounts.active_admins().filter(pk=person.pk).exists():
        url = reverse("tokens")
        return go_to(request, url)
    status = 422 if error else 200
    if request.htmx:
        row = _with_role(get_object_or_404(_users(), pk=person.pk), error)
        context = {"u": row, "roles": Role.choices}
        return render_page(
            request, "access/users.html", context, fragment="user-row", status=status
        )
    if error:
        return _users_page(request, NewUserForm(), {person.pk: error}, status)
    return redirect(reverse("access:users") + f"#user-{person.pk}")


@admin_only
@require_POST
def user_password(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(_users(), pk=pk)
    form = PasswordForm(person, request.POST)
    if not form.is_valid():
        return _user_page(request, person, form, status=422)
    accounts.set_password(person, form.cleaned_data["password"])
    if person.pk == request.user.pk:
        # Changing a password ends that user's sessions; not the one making the change.
        update_session_auth_hash(request, person)
    return _user_page(request, person, PasswordForm(person), changed=True)


# --- Groups -------------------------------------------------------------------------------


@admin_only
@require_http_methods(["GET", "HEAD", "POST"])
def groups(request: HtmxHttpRequest) -> HttpResponse:
    form = GroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return redirect("access:group", pk=form.save().pk)
    members = Prefetch("user_set", queryset=get_user_model().objects.order_by("username"))
    context = {
        "form": form,
        "groups": Group.objects.order_by("name")
        .prefetch_related(members)
        .annotate(grant_count=Count("experiment_grants")),
        "tab": "groups",
    }
    status = 422 if form.errors else 200
    return render_page(request, "access/groups.html", context, status=status)


@admin_only
@require_http_methods(["GET", "HEAD", "POST"])
def group(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A group's page; a POST renames it."""
    team = get_object_or_404(Group, pk=pk)
    form = GroupForm(request.POST or None, instance=team)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect("access:group", pk=team.pk)
    # A failed rename keeps showing the name the group still has.
    team.refresh_from_db(fields=["name"])
    return _group_page(request, team, rename=form, status=422 if form.errors else 200)


def _group_page(request: HtmxHttpRequest, team: Group, rename: GroupForm | None = None,
                add: MemberForm | None = None, status: int = 200) -> HttpResponse:  # fmt: skip
    members = list(team.user_set.order_by("username"))
    context = {
        "group": team,
        "rename": rename or GroupForm(instance=team),
        "add": add or MemberForm(),
        "members": members,
        "candidates": get_user_model()
        .objects.filter(is_active=True)
        .exclude(pk__in=[m.pk for m in members])
        .order_by("username")
        .values_list("username", flat=True),
        "grants": team.experiment_grants.select_related("experiment").order_by("experiment__name"),
        "tab": "groups",
    }
    return render_page(request, "access/group.html", context, fragment="members", status=status)


@admin_only
@require_POST
def group_members(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Add a member (by username)."""
    team = get_object_or_404(Group, pk=pk)
    form = MemberForm(request.POST)
    if not form.is_valid():
        return _group_page(request, team, add=form, status=422)
    team.user_set.add(form.cleaned_data["username"])
    if not request.htmx:
        return redirect("access:group", pk=team.pk)
    return _group_page(request, team)


@admin_only
@require_POST
def group_member_remove(request: HtmxHttpRequest, pk: int, user_pk: int) -> HttpResponse:
    team = get_object_or_404(Group, pk=pk)
    team.user_set.remove(get_object_or_404(team.user_set, pk=user_pk))
    if not request.htmx:
        return redirect("access:group", pk=team.pk)
    return _group_page(request, team)


@admin_only
@require_POST
def group_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Its members stay; its grants go with it."""
    get_object_or_404(Group, pk=pk).delete()
    url = reverse("access:groups")
    return go_to(request, url)


# --- Grants on experiments ----------------------------------------------------------------


@admin_only
@require_safe
def experiments(request: HtmxHttpRequest) -> HttpResponse:
    """The active experiments and who may see them, filtered by name with ?q=."""
    query = request.GET.get("q", "").strip()
    listed = Experiment.objects.filter(lifecycle_stage=LifecycleStage.ACTIVE).order_by("name")
    if query:
        listed = listed.filter(name__icontains=query)
    page = Paginator(grants.with_grant_counts(listed), EXPERIMENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    for experiment in page:
        experiment.audience = grants.audience_of(experiment.everyone_level)
    context = {"page": page, "q": query, "tab": "experiments"}
    return render_page(request, "access/experiments.html", context, fragment="experiment-rows")


@admin_only
@require_http_methods(["GET", "HEAD", "POST"])
def experiment(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Who has what on one experiment; a POST grants a level to a user or a group."""
    target = get_object_or_404(Experiment, pk=pk)
    form = GrantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        grants.grant(target, form.cleaned_data["level"], **form.cleaned_data["who"])
        return _grants_changed(request, target)
    return _experiment_page(request, target, form, status=422 if form.errors else 200)


def _experiment_page(request: HtmxHttpRequest, target: Experiment, form: GrantForm | None = None,
                     status: int = 200) -> HttpResponse:  # fmt: skip
    named, everyone = grants.grants_of(target)
    context = {
        "experiment": target,
        "form": form or GrantForm(),
        "grants": named,
        "audience": AudienceForm(
            initial={"audience": grants.audience_of(everyone.level if everyone else None)}
        ),
        "levels": [(level.value, level.label) for level in Level],
        "tab": "experiments",
    }
    return render_page(request, "access/experiment.html", context, fragment="grants", status=status)


def _grants_changed(request: HtmxHttpRequest, target: Experiment) -> HttpResponse:
    if request.htmx:
        return _experiment_page(request, target)
    return redirect("access:experiment", pk=target.pk)


@admin_only
@require_POST
def experiment_audience(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The switch: everyone gets their role's access, read only, or nothing (private)."""
    target = get_object_or_404(Experiment, pk=pk)
    form = AudienceForm(request.POST)
    if not form.is_valid():
        return _experiment_page(request, target, status=422)
    grants.set_audience(target, form.cleaned_data["audience"])
    return _grants_changed(request, target)


@admin_only
@require_POST
def grant(request: HtmxHttpRequest, pk: int, grant_pk: int) -> HttpResponse:
    """Change one grant's level."""
    row = get_object_or_404(ExperimentGrant.objects.select_related("experiment"), pk=grant_pk,
                            experiment_id=pk)  # fmt: skip
    form = LevelForm(request.POST)
    if not form.is_valid():
        return _experiment_page(request, row.experiment, status=422)
    row.level = form.cleaned_data["level"]
    row.save(update_fields=["level"])
    return _grants_changed(request, row.experiment)


@admin_only
@require_POST
def grant_delete(request: HtmxHttpRequest, pk: int, grant_pk: int) -> HttpResponse:
    row = get_object_or_404(ExperimentGrant.objects.select_related("experiment"), pk=grant_pk,
                            experiment_id=pk)  # fmt: skip
    row.delete()
    return _grants_changed(request, row.experiment)
