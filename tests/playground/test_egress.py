"""The outbound gate (webapp/egress.py): which URLs agents may be called on, through the
agent kinds and real HTTP servers (the test agent server, and a second one on 127.0.0.2 for
redirects across hosts)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from playground.agents import client_for
from playground.agents.base import AgentError, ChatRequest, consume
from playground.models import Agent
from playground.tracing import TraceRecorder
from tests.playground.agent_server import AgentServer
from webapp import egress

MESSAGES = [{"role": "user", "content": "hi"}]
METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


def call(url: str, kind: str = "mlflow-serving", **config) -> tuple[str, TraceRecorder]:
    agent = Agent(name="a", kind=kind, config={"url": url, **config})
    trace = TraceRecorder()
    parent = trace.root("a", "AGENT")
    answer = consume(client_for(agent).stream(ChatRequest(MESSAGES), parent), lambda _: None)
    return answer.content, trace


def redirect(server: AgentServer, to: str, status: int = 302) -> str:
    return f"{server.url}/redirect/invocations?status={status}&to={quote(to, safe='')}"


@pytest.fixture
def logins_on(settings) -> None:
    settings.SPYGLASS_AUTH = True


@pytest.fixture
def other_server() -> Iterator[AgentServer]:
    """A second agent server on another loopback address: another host to redirect to."""
    server = AgentServer("127.0.0.2").start()
    yield server
    server.stop()


# --- Schemes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "file:///proc/self/environ",
        "FILE:///etc/passwd",
        "ftp://127.0.0.1/pub",
        "data:text/plain,hello",
        "jar:file:///tmp/x.jar!/",
        "//127.0.0.1/v1",
    ],
)
def test_only_http_and_https_urls_are_called(url):
    for resolve in (False, True):
        with pytest.raises(egress.EgressRefused, match=r"Only http:// and https:// URLs"):
            egress.check_url(url, resolve=resolve)


def test_a_file_url_agent_fails_without_showing_the_file():
    with pytest.raises(AgentError) as refused:
        call("file:///proc/self/environ")

    message = str(refused.value)
    assert "refused" in message and "Only http:// and https://" in message
    assert "PATH=" not in message and "root:" not in message


def test_a_gopher_url_sends_nothing_to_its_port(agent_server):
    port = agent_server.server_address[1]

    with pytest.raises(AgentError, match="not gopher://"):
        call(f"gopher://127.0.0.1:{port}/_POST%20/chat-model/invocations")

    assert agent_server.requests == []


@pytest.mark.parametrize("url", ["http://[::1/v1", "http://127.0.0.1:99999/v1", "http:///v1"])
def test_a_url_that_cannot_be_read_is_refused(url):
    with pytest.raises(egress.EgressRefused, match=r"cannot be read|no host"):
        egress.check_url(url, resolve=False)


def test_credentials_in_the_url_are_refused(agent_server):
    with pytest.raises(AgentError, match="carries credentials"):
        call(agent_server.url.replace("//", "//user:pw@") + "/chat-model/invocations")

    assert agent_server.requests == []


# --- Link-local and metadata addresses ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        METADATA,
        "http://169.254.170.2/v2/credentials",  # ECS task credentials
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one number
        "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64
        "http://[fe80::1]/",
    ],
)
def test_metadata_and_link_local_addresses_are_refused_while_logins_are_on(logins_on, url):
    for resolve in (False, True):
        with pytest.raises(egress.EgressRefused, match="link-local or cloud metadata"):
            egress.check_url(url, resolve=resolve)


def test_a_metadata_agent_fails_at_once_without_connecting(logins_on):
    started = time.monotonic()

    with pytest.raises(AgentError, match=r"refused to call http://169\.254\.169\.254/"):
        call(METADATA, timeout=30)

    # A connection attempt to an address nobody answers would wait for the timeout.
    assert time.monotonic() - started < 5


def test_make_run_with_logins_off_allows_any_address(settings):
    settings.SPYGLASS_AUTH = False

    egress.check_url(METADATA)
    egress.check_url("http://[fe80::1]/", resolve=False)


@pytest.mark.parametrize("listed", ["169.254.169.254", "169.254.0.0/16"])
def test_a_metadata_address_is_allowed_when_listed_explicitly(logins_on, settings, listed):
    settings.SPYGLASS_AGENT_HOSTS = [listed]

    egress.check_url(METADATA)


def test_a_catch_all_network_does_not_lift_the_metadata_guard(logins_on, settings):
    settings.SPYGLASS_AGENT_HOSTS = ["0.0.0.0/0"]

    egress.check_url("http://10.1.2.3/v1")
    with pytest.raises(egress.EgressRefused, match="metadata"):
        egress.check_url(METADATA)


def test_loopback_agents_work_with_logins_on_by_default(logins_on, agent_server):
    content, _ = call(f"{agent_server.url}/chat-model/invocations")

    assert content == "Echo: hi"


# --- The allow-list ---------------------------------------------------------------------------


def test_a_listed_host_is_called_and_others_are_refused(settings, agent_server):
    settings.SPYGLASS_AGENT_HOSTS = ["127.0.0.1"]
    assert call(f"{agent_server.url}/chat-model/invocations")[0] == "Echo: hi"

    settings.SPYGLASS_AGENT_HOSTS = ["api.openai.com", "10.0.0.0/8"]
    agent_server.requests.clear()
    with pytest.raises(AgentError, match=r"127\.0\.0\.1 is not in SPYGLASS_AGENT_HOSTS"):
        call(f"{agent_server.url}/chat-model/invocations")

    assert agent_server.requests == []


def test_a_name_is_checked_by_the_addresses_it_resolves_to(settings, agent_server):
    port = agent_server.server_address[1]
    url = f"http://localhost:{port}/chat-model/invocations"

    settings.SPYGLASS_AGENT_HOSTS = ["127.0.0.0/8"]
    assert call(url)[0] == "Echo: hi"

    settings.SPYGLASS_AGENT_HOSTS = ["10.0.0.0/8"]
    with pytest.raises(AgentError, match=r"localhost \(127\.0\.0\.1\) is not in"):
        call(url)


def test_names_and_suffixes_match_whole_labels(settings):
    settings.SPYGLASS_AGENT_HOSTS = ["*.example.com", "gpu-box"]

    egress.check_url("https://api.example.com/v1", resolve=False)
    egress.check_url("http://GPU-BOX:8000/v1", resolve=False)
    for url in ["https://example.com.evil.org/v1", "https://evilexample.com/v1"]:
        with pytest.raises(egress.EgressRefused, match="not in SPYGLASS_AGENT_HOSTS"):
            egress.check_url(url, resolve=False)


def test_a_name_that_changes_its_answer_is_connected_to_as_checked(
    logins_on, agent_server, monkeypatch
):
    # A rebinding DNS: an allowed address when checked, the metadata address afterwards.
    real = socket.getaddrinfo
    port = agent_server.server_address[1]
    answers = iter(["127.0.0.1"] + ["169.254.169.254"] * 10)
    lookups: list[str] = []

    def rebinding(host, *args, **kwargs):
        if host != "rebind.test":
            return real(host, *args, **kwargs)
        lookups.append(host)
        return real(next(answers), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    content, _ = call(f"http://rebind.test:{port}/chat-model/invocations", timeout=3)

    assert content == "Echo: hi"
    assert lookups == ["rebind.test"]  # resolved once; the connection used that answer
    assert agent_server.requests[0]["headers"]["Host"] == f"rebind.test:{port}"


# --- Redirects --------------------------------------------------------------------------------


def test_a_redirect_to_the_metadata_address_is_refused(logins_on, agent_server):
    with pytest.raises(AgentError) as refused:
        call(redirect(agent_server, METADATA))

    message = str(refused.value)
    assert f"redirected to {METADATA}, refused" in message
    assert "link-local or cloud metadata" in message
    assert len(agent_server.requests) == 1  # the redirect itself, nothing after it


def test_a_redirect_to_a_host_not_listed_sends_it_nothing(settings, agent_server, other_server):
    settings.SPYGLASS_AGENT_HOSTS = ["127.0.0.1"]

    with pytest.raises(AgentError, match=r"127\.0\.0\.2 is not in SPYGLASS_AGENT_HOSTS"):
        call(redirect(agent_server, f"{other_server.url}/chat-model/invocations", 307))

    assert other_server.requests == []


def test_a_redirect_to_a_file_is_refused(agent_server):
    with pytest.raises(AgentError, match="redirected to file:///etc/passwd, refused"):
        call(redirect(agent_server, "file:///etc/passwd"))


def test_an_allowed_redirect_is_followed_with_its_method_and_body(agent_server):
    content, _ = call(redirect(agent_server, "/chat-model/invocations", 307))

    assert content == "Echo: hi"
    followed = agent_server.requests[1]
    assert followed["path"] == "/chat-model/invocations"
    assert followed["body"]["messages"] == MESSAGES


def test_a_redirect_to_another_host_drops_the_key(
    settings, monkeypatch, agent_server, other_server
):
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["AGENT_TEST_KEY"]
    monkeypatch.setenv("AGENT_TEST_KEY", "sk-only-for-the-first-host")

    to_self = redirect(agent_server, "/chat-model/invocations", 307)
    call(to_self, api_key_env="AGENT_TEST_KEY")
    elsewhere = redirect(agent_server, f"{other_server.url}/chat-model/invocations", 307)
    content, _ = call(elsewhere, api_key_env="AGENT_TEST_KEY")

    assert content == "Echo: hi"
    bearer = "Bearer sk-only-for-the-first-host"
    assert [r["headers"].get("Authorization") for r in agent_server.requests] == [bearer] * 3
    assert len(other_server.requests) == 1
    assert "Authorization" not in other_server.requests[0]["headers"]


def test_redirects_are_followed_a_bounded_number_of_times(agent_server):
    with pytest.raises(AgentError, match=f"more than {egress.MAX_REDIRECTS} times"):
        call(f"{agent_server.url}/redirect-loop/invocations")

    assert len(agent_server.requests) == egress.MAX_REDIRECTS + 1


# --- What the user is shown -------------------------------------------------------------------


def test_an_error_body_is_cut_to_a_few_hundred_characters(agent_server):
    with pytest.raises(AgentError) as failed:
        call(f"{agent_server.url}/fail-long/invocations")

    message = str(failed.value)
    assert message.startswith("The agent answered HTTP 500: FIRST xxx")
    assert "LAST" not in message and len(message) < 400


def test_the_http_span_records_no_request_headers(settings, monkeypatch, agent_server):
    settings.SPYGLASS_AGENT_ENV_ALLOW = ["AGENT_TEST_KEY"]
    monkeypatch.setenv("AGENT_TEST_KEY", "sk-not-in-spans")

    _, trace = call(f"{agent_server.url}/openai/v1", kind="openai", api_key_env="AGENT_TEST_KEY")

    assert agent_server.requests[0]["headers"]["Authorization"] == "Bearer sk-not-in-spans"
    spans = [span.to_span_data() for span in trace.spans]
    assert spans[1].attributes["http.url"].endswith("/openai/v1/chat/completions")
    assert "sk-not-in-spans" not in repr(spans)


# --- HTTPS ------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path, monkeypatch) -> Iterator[AgentServer]:
    """The agent server over TLS with a certificate for `localhost` only, trusted through
    SSL_CERT_FILE (which OpenSSL reads when a default context loads its roots)."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = AgentServer()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.start()
    yield server
    server.stop()


def test_https_connects_to_the_checked_address_and_verifies_the_urls_name(tls_server):
    port = tls_server.server_address[1]

    content, _ = call(f"https://localhost:{port}/chat-model/invocations", timeout=5)

    assert content == "Echo: hi"
    assert tls_server.requests[0]["headers"]["Host"] == f"localhost:{port}"
    # The same server by address: its certificate does not name 127.0.0.1.
    with pytest.raises(AgentError, match=r"CERTIFICATE_VERIFY_FAILED|doesn't match"):
        call(f"https://127.0.0.1:{port}/chat-model/invocations", timeout=5)
