"""One limit on password guessing, for every way a password is tried: the login form
(webapp/login.py) and HTTP Basic credentials on the APIs (webapp/auth.py).

Failures are counted per username and per client address, in fixed windows of
SPYGLASS_LOGIN_RATE (e.g. "10/10m": ten failures in ten minutes). Past the limit on either
key, callers answer 429 with Retry-After without checking the password at all: a correct
guess during the pause is worth nothing to an attacker. Only failures count, so a user who
types the password right is never slowed down.

The counts live in a database table (LoginFailure), not in the cache: the database is the
one store every web process shares that a login needs anyway (users, sessions), so the
limit holds while Redis is down, and a correct login never depends on Redis. A failure
costs one small write, after a password hash that took far longer; a check is one indexed
read, and verified Basic headers skip it (webapp/auth.py remembers them for a minute).

The client address is REMOTE_ADDR, or, when REMOTE_ADDR is one of SPYGLASS_TRUSTED_PROXIES
(the reverse proxy in front), the nearest untrusted address in X-Forwarded-For. A client
cannot choose its address by sending that header to a server that is not behind a proxy.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from webapp.models import LoginFailure

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.cache
def parse_rate(rate: str) -> tuple[int, int]:
    """ "10/10m" -> (10 failures, 600 seconds); "5/h" -> (5, 3600)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*", rate)
    if not match:
        raise ValueError(f"SPYGLASS_LOGIN_RATE must look like 10/10m, not {rate!r}")
    count, multiplier, unit = match.groups()
    return int(count), int(multiplier or 1) * _UNITS[unit]


@functools.cache
def _networks(proxies: tuple[str, ...]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies)


def _is_trusted(address: str, networks: Iterable[_Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: HttpRequest) -> str:
    peer = request.META.get("REMOTE_ADDR", "")
    networks = _networks(tuple(settings.SPYGLASS_TRUSTED_PROXIES))
    if not networks or not _is_trusted(peer, networks):
        return peer
    # Each proxy appends the address it got the request from; read from the right, the
    # first one that is not ours is the client. Anything left of it the client wrote itself.
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _is_trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a proxy of ours would not write garbage: ignore the header
    return peer


def _key_hashes(request: HttpRequest, username: str) -> list[str]:
    keys = [f"user:{username.strip().lower()[:150]}", f"address:{client_address(request)}"]
    return [hashlib.sha256(key.encode()).hexdigest() for key in keys]


def pause_for(request: HttpRequest, username: str) -> int:
    """Seconds this username, or this client address, must wait; 0 when it may try."""
    limit, period = parse_rate(settings.SPYGLASS_LOGIN_RATE)
    now = timezone.now()
    starts = LoginFailure.objects.filter(
        key_hash__in=_key_hashes(request, username),
        window_start__gt=now - timedelta(seconds=period),
        count__gte=limit,
    ).values_list("window_start", flat=True)
    waits = [(start + timedelta(seconds=period) - now).total_seconds() for start in starts]
    return max(1, int(max(waits)) + 1) if waits else 0


def record_failure(request: HttpRequest, username: str) -> None:
    """Count one failed attempt for the username and for the client address."""
    _, period = parse_rate(settings.SPYGLASS_LOGIN_RATE)
    now = timezone.now()
    cutoff = now - timedelta(seconds=period)
    with transaction.atomic():
        for key_hash in _key_hashes(request, username):
            counted = LoginFailure.objects.filter(key_hash=key_hash, window_start__gt=cutoff)
            if not counted.update(count=F("count") + 1):
                # No row, or one of a window that ended: this failure opens a new window.
                LoginFailure.objects.update_or_create(
                    key_hash=key_hash, defaults={"count": 1, "window_start": now}
                )
        # Windows that ended say nothing any more; an indexed delete keeps the table small.
        LoginFailure.objects.filter(window_start__lte=cutoff).delete()
