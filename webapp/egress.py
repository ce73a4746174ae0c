"""Egress: THE place where Spyglass connects to a URL that a user typed in.

Every outbound call made on someone's behalf goes through this module: the playground's
agent calls now (`playground/agents/http.py`, for the openai and mlflow-serving kinds), judges
and evaluation agents later. Do not call `urllib.request.urlopen`, `requests` or `httpx` on a
stored URL anywhere else: urlopen reads `file://` URLs, follows any redirect, and resolves a
name again at connect time.

    check_url(url)                  # raises EgressRefused; resolve=False for forms (no DNS)
    response = open(request, timeout)   # like urllib.request.urlopen, through the gate
    key = secret_for(agent)         # the API key to send, or None; raises EgressRefused

The rules:

- Only `http` and `https` URLs, refused before any I/O (no file, ftp, gopher, data, ...), and
  no credentials in the URL itself.
- `SPYGLASS_AGENT_HOSTS`, when set, lists the hosts that may be called: names
  (`api.openai.com`), `*.suffix` (any name under it), IPs and CIDRs (`10.0.0.0/8`). A host
  is allowed when its name is listed, or when every address it resolves to is in a listed
  network. Empty: any host.
- With logins on (`SPYGLASS_AUTH`), link-local addresses (169.254.0.0/16, fe80::/10) and cloud
  metadata endpoints (169.254.169.254, fd00:ec2::254, 100.100.100.200,
  metadata.google.internal) are refused unless listed explicitly: by their exact name, or by
  an IP or a network inside them. Off (`make run` on loopback), anything goes.
- The name is resolved once; every address it resolves to is checked, and the connection goes
  to one of those checked addresses (its peer verified after connect), so a DNS answer that
  changes between the check and the connection (rebinding) cannot lead anywhere else.
  Environment proxies (HTTP_PROXY) are not used: the gate must see the real peer.
- Redirects are followed at most MAX_REDIRECTS times, each target through the same gate;
  Authorization and cookies are dropped when the origin changes.
- API keys: a stored one (encrypted, `webapp.vault`), or an environment variable named by
  `api_key_env` that `SPYGLASS_AGENT_ENV_ALLOW` lists. The server's own secrets (SECRET_KEY,
  DATABASE_URL, the broker URLs, the secrets key, and names that look like them) are never
  sent, whatever the list says.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from webapp import vault

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# Headers that carry credentials: never forwarded to another origin by a redirect.
_CREDENTIAL_HEADERS = {"authorization", "cookie", "proxy-authorization"}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused with logins on unless listed explicitly: the cloud credentials live behind these.
GUARDED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local; AWS, GCP, Azure, OCI metadata at .169.254
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
    )
)
GUARDED_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
# IPv6 addresses that carry an IPv4 one which the kernel (or a NAT64 gateway) connects to.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Environment variables that configure the server itself; never sent, even when listed.
FORBIDDEN_ENV = frozenset(
    {
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "SPYGLASS_SECRETS_KEY",
    }
)
# ...and names that look like them: the server's settings, database, broker and cloud
# credentials (AWS_* hold the artifact store's keys, MLFLOW_TRACKING_* and OTEL_EXPORTER_OTLP_*
# the worker's own login, playground/agents/mlflow_env.py).
_FORBIDDEN_ENV_PREFIXES = ("SPYGLASS_", "DJANGO_", "CELERY_", "REDIS", "DATABASE", "POSTGRES",
                           "PG", "AWS_", "MLFLOW_TRACKING_", "OTEL_EXPORTER_OTLP_")  # fmt: skip
_FORBIDDEN_ENV_PARTS = ("SECRET_KEY", "SECRETS_KEY", "DATABASE_URL", "DB_URL", "REDIS_URL",
                        "BROKER_URL", "RESULT_BACKEND")  # fmt: skip
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EgressRefused(Exception):
    """The gate refused a URL, a redirect or a key; `str(error)` says why, for the user."""


# --- URLs and hosts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the gate, with the addresses the connection may go to."""

    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    # (family, sockaddr) pairs from getaddrinfo, every one checked; empty when not resolved.
    addresses: tuple[tuple[int, tuple[Any, ...]], ...] = ()

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@dataclass(frozen=True, slots=True)
class _Rules:
    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]
    restricted: bool  # SPYGLASS_AGENT_HOSTS is set: only what it lists
    guarded: bool  # logins on: link-local and metadata refused unless listed

    def name_listed(self, host: str) -> bool:
        return host in self.names or any(host.endswith(s) for s in self.suffixes)

    def network_listed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def guard_lifted(self, host: str, address: IPAddress) -> bool:
        """Listed explicitly: the exact name, or a network inside a guarded range."""
        if host in self.names:
            return True
        return any(
            address in network
            and any(
                network.version == guarded.version and network.subnet_of(guarded)  # type: ignore[arg-type]
                for guarded in GUARDED_NETWORKS
            )
            for network in self.networks
        )


def _rules() -> _Rules:
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[IPNetwork] = []
    entries = [e.strip().lower() for e in getattr(settings, "SPYGLASS_AGENT_HOSTS", []) or []]
    entries = [e for e in entries if e]
    for entry in entries:
        if entry.startswith("*."):
            suffixes.append(entry[1:].rstrip("."))
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return _Rules(
        names=frozenset(names),
        suffixes=tuple(suffixes),
        networks=tuple(networks),
        restricted=bool(entries),
        guarded=bool(getattr(settings, "SPYGLASS_AUTH", True)),
    )


def check_url(url: str, *, resolve: bool = True) -> None:
    """Refuse (EgressRefused) a URL the server may not call. `resolve=False` checks without
    DNS (a form's early answer): the name and literal addresses only; the call checks again.
    A name that does not resolve raises OSError (socket.gaierror)."""
    _target(url, resolve=resolve)


def _target(url: str, *, resolve: bool) -> Target:
    try:
        parts = urlsplit(url.strip())
        hostname, port = parts.hostname, parts.port
    except ValueError as exc:  # "[::1" and other unparseable hosts and ports
        raise EgressRefused(f"The URL cannot be read: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme}://" if scheme else "a URL without a scheme"
        raise EgressRefused(f"Only http:// and https:// URLs can be called, not {shown}.")
    if parts.username is not None or parts.password is not None:
        raise EgressRefused(
            "The URL carries credentials (user:password@): store the agent's API key instead."
        )
    host = (hostname or "").rstrip(".")
    if not host:
        raise EgressRefused("The URL has no host.")
    port = port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    rules = _rules()
    if rules.guarded and host in GUARDED_NAMES and host not in rules.names:
        raise EgressRefused(_guarded_message(host, host))
    literal = _literal_address(host)
    if not resolve:
        _check_addresses(host, [literal] if literal else [], rules)
        return Target(url, scheme, host, port, path)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses = tuple((family, sockaddr) for family, _, _, _, sockaddr in infos)
    _check_addresses(host, [_address(sockaddr[0]) for _, sockaddr in addresses], rules)
    return Target(url, scheme, host, port, path, addresses)


def _check_addresses(host: str, addresses: list[IPAddress], rules: _Rules) -> None:
    if rules.guarded:
        for address in addresses:
            if _is_guarded(address) and not rules.guard_lifted(host, address):
                raise EgressRefused(_guarded_message(host, str(address)))
    if not rules.restricted or rules.name_listed(host):
        return
    if not addresses:
        if not rules.networks:  # only names listed, and this one is not: no DNS can help
            raise EgressRefused(f"{host} is not in SPYGLASS_AGENT_HOSTS.")
        return  # a name checked against networks once it is resolved, at call time
    for address in addresses:
        if not rules.network_listed(address):
            shown = host if host == str(address) else f"{host} ({address})"
            raise EgressRefused(f"{shown} is not in SPYGLASS_AGENT_HOSTS.")


def _guarded_message(host: str, address: str) -> str:
    where = host if host == address else f"{host} ({address})"
    return (
        f"{where} is a link-local or cloud metadata address, which agents may not call while "
        "logins are on. List it in SPYGLASS_AGENT_HOSTS if it really is an agent."
    )


def _is_guarded(address: IPAddress) -> bool:
    return any(address in network for network in GUARDED_NETWORKS)


def _address(text: str) -> IPAddress:
    """An address as the kernel connects to it: IPv4 inside IPv6 (mapped, NAT64) unwrapped."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names without DNS: "10.0.0.1", "::1", and the legacy IPv4 forms
    (2852039166, 0xa9.0xfe.0xa9.0xfe) that the C resolver accepts."""
    try:
        return _address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


# --- Sending ----------------------------------------------------------------------------------


def open(
    request: urllib.request.Request,
    timeout: float,
    on_socket: Callable[[socket.socket], None] | None = None,
) -> http.client.HTTPResponse:
    """Send `request` through the gate; like `urllib.request.urlopen`: the response (2xx),
    `urllib.error.HTTPError` for 4xx/5xx, OSError (TimeoutError, ConnectionError, ...) when
    the host cannot be reached, and EgressRefused for a URL or redirect the gate refuses.
    `timeout` applies to the connection and to each read. `on_socket` is handed every socket
    before it connects: a caller that must abort the call from another thread (a cancelled
    answer) shuts it down, which wakes a read blocked on it at once."""
    url = request.full_url
    method = request.get_method()
    body = request.data
    if body is not None and not isinstance(body, bytes):
        raise TypeError("egress.open sends bytes bodies only")
    headers = {"User-Agent": "Spyglass", **dict(request.header_items())}
    target = _target(url, resolve=True)
    for hop in range(MAX_REDIRECTS + 1):
        response = _send(target, method, body, headers, timeout, on_socket)
        location = response.headers.get("Location")
        if response.status not in _REDIRECT_STATUSES or not location:
            break
        response.close()
        next_url = urljoin(target.url, location.strip())
        if hop == MAX_REDIRECTS:
            raise EgressRefused(f"The agent redirected more than {MAX_REDIRECTS} times.")
        try:
            next_target = _target(next_url, resolve=True)
        except EgressRefused as exc:
            raise EgressRefused(f"It redirected to {_cut(next_url)}, refused: {exc}") from None
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            # What browsers and urllib do: the redirect is fetched with GET, without the body.
            method, body = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if next_target.origin != target.origin:
            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
        target = next_target
    if response.status >= 400:
        raise urllib.error.HTTPError(
            target.url, response.status, response.reason, response.headers, response
        )
    return response


def _send(target: Target, method: str, body: bytes | None, headers: Mapping[str, str],
          timeout: float, on_socket: Callable[[socket.socket], None] | None = None,
          ) -> http.client.HTTPResponse:  # fmt: skip
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, timeout)
    connection.on_socket = on_socket
    try:
        connection.request(method, target.path, body=body, headers=dict(headers))
        response = connection.getresponse()
    except BaseException:
        connection.close()
        raise
    # As urllib does: the response holds the socket until it is closed; the connection lets go.
    if connection.sock is not None:
        connection.sock.close()
        connection.sock = None
    return response


def _connect(
    target: Target, timeout: float | None, on_socket: Callable[[socket.socket], None] | None = None
) -> socket.socket:
    """A socket connected to one of the target's checked addresses, never to a fresh lookup."""
    last_error: OSError | None = None
    for family, sockaddr in target.addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if on_socket is not None:
                on_socket(sock)
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            # Belt and braces: the peer is the address that was checked.
            if _address(sock.getpeername()[0]) != _address(sockaddr[0]):
                raise EgressRefused(f"The connection to {target.host} reached another address.")
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    if last_error is None:
        raise OSError(f"{target.host} resolves to no address")
    raise last_error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    on_socket: Callable[[socket.socket], None] | None = None

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.target = target

    def connect(self) -> None:
        self.sock = _connect(self.target, self.timeout, self.on_socket)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    on_socket: Callable[[socket.socket], None] | None = None

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self.target = target

    def connect(self) -> None:
        sock = _connect(self.target, self.timeout, self.on_socket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The certificate is checked against the name in the URL, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        if self.on_socket is not None:  # the plain socket handed over its descriptor
            self.on_socket(self.sock)


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --- Keys -------------------------------------------------------------------------------------


class Credentialed(Protocol):
    """What `secret_for` reads: an agent (or, later, a judge) with a config and maybe a
    stored, sealed key."""

    @property
    def config(self) -> Any: ...

    def sealed_api_key(self) -> str: ...


def check_env_name(name: str) -> None:
    """Refuse an `api_key_env` that may not be sent: not a variable name, the server's own
    configuration (whatever the allow-list says), or not on SPYGLASS_AGENT_ENV_ALLOW."""
    if not _ENV_NAME.fullmatch(name):
        raise EgressRefused(f"{_cut(name, 80)!r} is not an environment variable name.")
    if env_name_forbidden(name):
        raise EgressRefused(
            f"{name} holds the server's own configuration or credentials: it is never sent to "
            "an agent, even when SPYGLASS_AGENT_ENV_ALLOW lists it. Store the agent's key "
            "with the agent instead."
        )
    if name not in _allowed_env():
        raise EgressRefused(
            f"{name} is not in SPYGLASS_AGENT_ENV_ALLOW: list it there (on the web server and "
            "the workers) to let agents send it, or store the key with the agent."
        )


def env_name_forbidden(name: str) -> bool:
    upper = name.upper()
    return (
        upper in FORBIDDEN_ENV
        or upper.startswith(_FORBIDDEN_ENV_PREFIXES)
        or any(part in upper for part in _FORBIDDEN_ENV_PARTS)
    )


def _allowed_env() -> Iterable[str]:
    return [n.strip() for n in getattr(settings, "SPYGLASS_AGENT_ENV_ALLOW", []) or []]


def secret_for(agent: Credentialed) -> str | None:
    """The API key to send for `agent`, or None when it has none. A stored key first; else
    the environment variable its `api_key_env` names, re-checked now (an agent saved before
    the rules, or edited outside the form, gets a clear refusal, never the value)."""
    sealed = agent.sealed_api_key()
    if sealed:
        try:
            return vault.unseal(sealed)
        except vault.SealError as exc:
            raise EgressRefused(str(exc)) from None
    config = agent.config if isinstance(agent.config, dict) else {}
    name = config.get("api_key_env")
    if not name:
        return None
    name = str(name)
    check_env_name(name)
    value = os.environ.get(name)
    if not value:
        raise EgressRefused(f"The environment variable {name} (the API key) is not set.")
    return value
