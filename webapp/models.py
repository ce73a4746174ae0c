"""Deployment-level tables: API tokens for the MLflow, OTLP and native APIs; page preferences
of each user."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "sg_"


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough (nothing to brute-force), and a
    # unique index on the hash finds the row in one lookup.
    return hashlib.sha256(token.encode()).hexdigest()


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Read and write"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """A bearer token (MLFLOW_TRACKING_TOKEN). Only its hash is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The first characters, shown in lists so a user can tell tokens apart.
    hint = models.CharField(max_length=12)
    token_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.WRITE)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def issue(cls, user: object, name: str, scope: str = TokenScope.WRITE) -> tuple[ApiToken, str]:
        """Create a token; returns the row and the plaintext, which is shown once only."""
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, scope=scope, hint=plaintext[:10], token_hash=hash_token(plaintext)
        )
        return token, plaintext

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])

    @property
    def can_write(self) -> bool:
        return self.scope == TokenScope.WRITE


class UserPreferences(models.Model):
    """What a user chose on the pages, kept across sessions and browsers.

    Without auth there is no user; the pages keep the same choices in the session instead.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    # Column keys of the trace list; null until the user chooses (the defaults).
    trace_list_columns = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "user preferences"

    def __str__(self) -> str:
        return f"preferences of {self.user}"


class LoginFailure(models.Model):
    """Failed password attempts of one key (a username or a client address) in the current
    window; webapp/login_limits.py reads and counts them. The key is stored hashed: people
    type passwords into the username field."""

    key_hash = models.CharField(max_length=64, unique=True)
    count = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.count} failures since {self.window_start:%Y-%m-%d %H:%M}"
