"""Secrets at rest: API keys that Spyglass sends for someone (agents now, judges later) are
stored encrypted with Fernet under `SPYGLASS_SECRETS_KEY`, never in the clear.

A database dump or a backup alone does not reveal them; the key lives in the environment (or,
under `make run`, in var/secrets_key). `SPYGLASS_SECRETS_KEY` may list several keys separated
by commas: the first encrypts, all decrypt, so a key can be rotated by putting the new one
first and saving each secret again.

Nothing here ever renders or logs a secret: `seal` and `unseal` are the only ways in and out.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SealError(Exception):
    """A secret cannot be sealed or unsealed; `str(error)` says why, never with the secret."""


def check() -> None:
    """SealError, saying what to do, unless secrets can be stored: a valid key is set."""
    _fernet()


def seal(plain: str) -> str:
    """The secret encrypted (a Fernet token, ASCII), for the database."""
    return _fernet().encrypt(plain.encode()).decode("ascii")


def unseal(token: str) -> str:
    """The secret a `seal` made, or SealError when no configured key opens it."""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SealError(
            "The stored API key cannot be decrypted with SPYGLASS_SECRETS_KEY (was the key "
            "changed, or do the web server and the workers have different keys?). Save the "
            "key again."
        ) from None


def _keys() -> tuple[str, ...]:
    keys = getattr(settings, "SPYGLASS_SECRETS_KEY", None) or ()
    if isinstance(keys, str):
        keys = keys.split(",")
    return tuple(k.strip() for k in keys if k.strip())


def _fernet() -> MultiFernet:
    keys = _keys()
    if not keys:
        raise SealError(
            "No SPYGLASS_SECRETS_KEY is set on this server, so API keys cannot be stored or "
            "read. Set it (the same on the web server and the workers)."
        )
    return _fernet_for(keys)


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise SealError(
            "SPYGLASS_SECRETS_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes; "
            'make one with `python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"`).'
        ) from None
