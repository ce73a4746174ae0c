"""The worker's own login to Spyglass, for the mlflow client of logged-model agents.

With logins on, a logged model's mlflow client needs credentials to read the registry and
artifacts and to export its spans. The worker mints them itself: a token of the built-in
`spyglass-worker` account, made when the process first loads a logged model, kept only in
that process's environment (which egress.py never lets an agent send), stored hashed like
every token, and deleted when the process exits; tokens left by dead processes of this host
go when the next one starts. Nobody can sign in as the account (no usable password), so its
tokens are on nobody's token page.

Its role is editor, given once: it reads and writes every experiment but private ones, as a
person with that role would; an admin can change its role or grant it a private experiment.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from access.models import Role, UserRole
from webapp.models import ApiToken, TokenScope

USERNAME = "spyglass-worker"


class AccountTaken(Exception):
    """The service account's username belongs to a person."""


def worker_token() -> str:
    """A new write token for this process; call once per process and keep the answer."""
    user = _service_user()
    prefix = f"worker {socket.gethostname()} pid "
    _delete_tokens_of_dead_processes(user, prefix)
    token, plaintext = ApiToken.issue(user, name=f"{prefix}{os.getpid()}", scope=TokenScope.WRITE)
    atexit.register(_delete, token.pk)
    return plaintext


def _service_user() -> AbstractBaseUser:
    user, created = get_user_model().objects.get_or_create(username=USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif user.has_usable_password():
        # A person made an account of that name: their login must not be handed to models.
        raise AccountTaken(
            f"The user {USERNAME!r} has a password: it is the name of the worker's own "
            "account, which nobody signs in as. Rename that user."
        )
    UserRole.objects.get_or_create(user=user, defaults={"role": Role.EDITOR})
    return user


def _delete_tokens_of_dead_processes(user: AbstractBaseUser, prefix: str) -> None:
    tokens = ApiToken.objects.filter(user=user, name__startswith=prefix)
    stale = [
        pk
        for pk, name in tokens.values_list("pk", "name")
        if not (pid := name.removeprefix(prefix)).isdigit() or not _alive(int(pid))
    ]
    if stale:
        ApiToken.objects.filter(pk__in=stale).delete()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _delete(pk: int) -> None:
    # The database may be gone at exit; the next start on this host deletes the token then.
    with contextlib.suppress(Exception):
        ApiToken.objects.filter(pk=pk).delete()
