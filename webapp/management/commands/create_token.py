"""`manage.py create_token alice --name ci --scope read`: issue an API token from the shell."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.models import ApiToken, TokenScope


class Command(BaseCommand):
    help = "Issue an API token for a user and print it (it is stored hashed, shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--scope", choices=TokenScope.values, default=TokenScope.WRITE)

    def handle(self, *args: Any, username: str, name: str, scope: str, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {username!r}.")
        _, plaintext = ApiToken.issue(user, name=name, scope=scope)
        self.stdout.write(plaintext)
