"""`manage.py access ...`: users, roles, groups and grants from a shell (scripts, first setup).

    manage.py access users
    manage.py access user alice --create --role admin --password-from-stdin
    manage.py access user bob --role viewer --deactivate
    manage.py access groups
    manage.py access group team --add alice bob --remove charlie
    manage.py access grants [experiment]
    manage.py access grant support-agent --group team --level edit
    manage.py access grant support-agent --everyone --level none      # private
    manage.py access revoke support-agent --user alice

The same rules as the access pages: Django's password validators, and never no admin left.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from access import accounts, grants
from access.models import ExperimentGrant, Level, Role
from tracking.models import Experiment

LEVELS = {level.name.lower(): level for level in Level}


class Command(BaseCommand):
    help = "List and change users, roles, groups and grants on experiments."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        actions.add_parser("users", help="List the users with their role, groups and status.")

        user = actions.add_parser("user", help="Show, create or change one user.")
        user.add_argument("username")
        user.add_argument("--create", action="store_true", help="Create the user if missing.")
        user.add_argument("--role", type=str.lower, choices=Role.values)
        user.add_argument("--password-from-stdin", action="store_true",
                          help="Set the password read from the first line of stdin.")  # fmt: skip
        status = user.add_mutually_exclusive_group()
        status.add_argument("--deactivate", action="store_true")
        status.add_argument("--activate", action="store_true")

        actions.add_parser("groups", help="List the groups and their members.")
        group = actions.add_parser("group", help="Create a group or change its members.")
        group.add_argument("name")
        group.add_argument("--add", nargs="+", action="extend", default=[], metavar="USER")
        group.add_argument("--remove", nargs="+", action="extend", default=[], metavar="USER")
        group.add_argument("--rename", metavar="NEW_NAME")
        group.add_argument("--delete", action="store_true", help="Delete it (members stay).")

        listing = actions.add_parser("grants", help="List the grants, of one experiment or all.")
        listing.add_argument("experiment", nargs="?", help="Experiment id or name.")
        grant = actions.add_parser("grant", help="Give a user, a group or everyone a level.")
        self._who(grant)
        grant.add_argument("--level", required=True, type=str.lower, choices=list(LEVELS))
        revoke = actions.add_parser("revoke", help="Remove a grant.")
        self._who(revoke)

    def _who(self, parser: ArgumentParser) -> None:
        parser.add_argument("experiment", help="Experiment id or name.")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", metavar="USERNAME")
        who.add_argument("--group", metavar="NAME")
        who.add_argument("--everyone", action="store_true",
                         help="Everyone not named by a grant (level none: private).")  # fmt: skip

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    # --- Users ----------------------------------------------------------------------------

    def _users(self, **options: Any) -> None:
        people = get_user_model().objects.select_related("spyglass_role")
        for person in people.prefetch_related("groups").order_by("username"):
            self.stdout.write(self._describe(person))

    def _describe(self, person: AbstractUser) -> str:
        groups = ",".join(sorted(g.name for g in person.groups.all())) or "-"
        status = "active" if person.is_active else "inactive"
        last = person.last_login.isoformat(timespec="seconds") if person.last_login else "never"
        role = accounts.stored_role(person)
        return f"{person.get_username()}\t{role}\t{status}\tgroups={groups}\tlast_login={last}"

    def _user(self, username: str, create: bool, role: str | None, password_from_stdin: bool,
              deactivate: bool, activate: bool, **options: Any) -> None:  # fmt: skip
        password = self._read_password(username) if password_from_stdin else None
        with transaction.atomic():
            person = get_user_model().objects.filter(username=username).first()
            if person is None and not create:
                raise CommandError(f"No user named {username!r} (add --create to create it).")
            try:
                if person is None:
                    person = accounts.create_user(username, password, role)
                    self.stdout.write(f"Created user {username}.")
                else:
                    if role:
                        accounts.set_role(person, role)
                    if password is not None:
                        accounts.set_password(person, password)
                if deactivate or activate:
                    accounts.set_active(person, activate)
            except accounts.Refused as refusal:
                raise CommandError(str(refusal)) from None
        self.stdout.write(self._describe(get_user_model().objects.get(pk=person.pk)))

    def _read_password(self, username: str) -> str:
        # One line, so `echo "$PASSWORD" | manage.py access user ...` works; never an argument,
        # which other users of the machine could read in the process list.
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("--password-from-stdin read an empty password.")
        try:
            password_validation.validate_password(password, get_user_model()(username=username))
        except ValidationError as error:
            raise CommandError("Password refused: " + " ".join(error.messages)) from None
        return password

    # --- Groups ---------------------------------------------------------------------------

    def _groups(self, **options: Any) -> None:
        for team in Group.objects.prefetch_related("user_set").order_by("name"):
            members = ",".join(sorted(u.get_username() for u in team.user_set.all())) or "-"
            self.stdout.write(f"{team.name}\tmembers={members}")

    def _group(self, name: str, add: list[str], remove: list[str], rename: str | None,
               delete: bool, **options: Any) -> None:  # fmt: skip
        team = Group.objects.filter(name=name).first()
        if team is None and (delete or rename):
            raise CommandError(f"No group named {name!r}.")
        adding, removing = self._users_named(add), self._users_named(remove)
        with transaction.atomic():
            if delete:
                team.delete()  # type: ignore[union-attr]
                self.stdout.write(f"Deleted group {name} (its members stay).")
                return
            if team is None:
                team = Group.objects.create(name=name)
                self.stdout.write(f"Created group {name}.")
            if rename:
                if Group.objects.filter(name=rename).exclude(pk=team.pk).exists():
                    raise CommandError(f"A group named {rename!r} already exists.")
                team.name = rename
                team.save(update_fields=["name"])
            team.user_set.add(*adding)
            team.user_set.remove(*removing)
        members = ",".join(sorted(team.user_set.values_list("username", flat=True))) or "-"
        self.stdout.write(f"{team.name}\tmembers={members}")

    def _users_named(self, usernames: list[str]) -> list[AbstractUser]:
        found = {
            u.get_username(): u for u in get_user_model().objects.filter(username__in=usernames)
        }
        unknown = [name for name in usernames if name not in found]
        if unknown:
            raise CommandError(f"No user named {', '.join(map(repr, unknown))}.")
        return list(found.values())

    # --- Grants ---------------------------------------------------------------------------

    def _grants(self, experiment: str | None, **options: Any) -> None:
        rows = ExperimentGrant.objects.select_related("experiment", "user", "group")
        if experiment is not None:
            rows = rows.filter(experiment=_experiment(experiment))
        for row in rows.order_by("experiment__name", "pk"):
            who = (f"user {row.user.get_username()}" if row.user
                   else f"group {row.group.name}" if row.group else "everyone")  # fmt: skip
            level = Level(row.level).name.lower()
            self.stdout.write(f"{row.experiment.name}\t{row.experiment_id}\t{who}\t{level}")

    def _grant(self, experiment: str, level: str, **options: Any) -> None:
        target = _experiment(experiment)
        grants.grant(target, LEVELS[level], **_principal(**options))
        self.stdout.write(f"{_name_of(**options)}: {level} on {target.name} ({target.pk}).")

    def _revoke(self, experiment: str, **options: Any) -> None:
        target = _experiment(experiment)
        if grants.revoke(target, **_principal(**options)):
            self.stdout.write(f"Revoked the grant of {_name_of(**options)} on {target.name}.")
        else:
            self.stdout.write(
                f"{_name_of(**options)} holds no grant on {target.name}: nothing to do."
            )


def _experiment(ref: str) -> Experiment:
    """An experiment by id, else by name (MLflow's ids are digits, names rarely are)."""
    found = None
    if ref.isdigit():
        found = Experiment.objects.filter(pk=int(ref)).first()
    found = found or Experiment.objects.filter(name=ref).first()
    if found is None:
        raise CommandError(f"No experiment with the id or name {ref!r}.")
    return found


def _principal(user: str | None, group: str | None, **options: Any) -> dict[str, Any]:
    """The user or group named on the command line (neither: everyone)."""
    if user is not None:
        found = get_user_model().objects.filter(username=user).first()
        if found is None:
            raise CommandError(f"No user named {user!r}.")
        return {"user": found}
    if group is not None:
        team = Group.objects.filter(name=group).first()
        if team is None:
            raise CommandError(f"No group named {group!r}.")
        return {"group": team}
    return {}


def _name_of(user: str | None, group: str | None, **options: Any) -> str:
    return f"user {user}" if user else f"group {group}" if group else "everyone"
