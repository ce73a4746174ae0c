"""Is an address loopback-only? Auth may be off only for servers that listen on one."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """`host` as given to a server: "127.0.0.1", "[::1]", "localhost", "unix:/path"."""
    if host.startswith("unix:"):
        return True  # a socket file is reachable only from this machine
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_bind(address: str) -> bool:
    """A gunicorn-style bind, "HOST:PORT" or "unix:PATH"."""
    if address.startswith("unix:"):
        return True
    host, sep, _ = address.rpartition(":")
    return is_loopback(host if sep else address)
