"""SSRF through a tenant's provider URL (issue #13, item 1): the egress policy.

A tenant owner chooses a provider's base URL and the gateway POSTs there with the tenant's key, so
without a policy a tenant can make the gateway call its own loopback services, the cloud metadata
address or private ranges, and read the answers. Shown here: the policy itself (pure), the refusal
at save time (portal and admin form errors), the refusal at call time (a live server without any
allowance: an OpenAI error envelope, a ledger row, and nothing reaching the target), and that no
redirect is ever followed, for tenants' upstreams and for the platform's own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import openai
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from optimizer.models import RequestLog
from optimizer.providers import openai_compat
from optimizer.providers.base import ProviderError, Upstream
from tenants.egress import EgressPolicy, EgressRefused, refusal
from tenants.models import AuditEvent, ProviderCredential, User
from tests.conftest import LeoServer, TenantKit, wait_for_rows
from tests.portal_helpers import Actors, build_actors, sign_in_staff

NO_ALLOWANCE = EgressPolicy()
LOOPBACK_ALLOWED = EgressPolicy.parse(["127.0.0.1"])

# Every form of "not a public address" the issue names, as a tenant could type it.
REFUSED_URLS = [
    "http://127.0.0.1:8765/_reset?x=",
    "http://127.8.9.10/v1",
    "http://localhost:8765/v1",  # a DNS name (from /etc/hosts) that resolves to loopback
    "http://LOCALHOST:8765/v1",
    "http://[::1]:8765/v1",
    "http://[::ffff:127.0.0.1]:8765/v1",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]:8765/v1",
    "http://[64:ff9b::7f00:1]/v1",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::1]/v1",  # 6to4 of 127.0.0.1
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://100.100.100.200/",
    "http://0.0.0.0:8765/v1",
    "http://[::]:8765/v1",
    "http://10.1.2.3/v1",
    "http://172.16.0.1/v1",
    "http://192.168.1.1/v1",
    "http://100.64.0.1/v1",
    "http://[fc00::1]/v1",
    "http://[fe80::1]/v1",
    "http://224.0.0.1/v1",
    "http://[ff02::1]/v1",
    "http://240.0.0.1/v1",
    "http://255.255.255.255/v1",
    "http://198.18.0.1/v1",
    "http://2130706433:8765/v1",  # decimal 127.0.0.1
    "http://0177.0.0.1:8765/v1",  # octal
    "http://0x7f.0.0.1:8765/v1",  # hex
    "http://127.1:8765/v1",  # short form
]


# --- the policy (pure) ---------------------------------------------------------------------------

@pytest.mark.parametrize("url", REFUSED_URLS)
def test_the_policy_refuses_every_non_public_form(url: str) -> None:
    with pytest.raises(EgressRefused):
        NO_ALLOWANCE.check_url(url)


@pytest.mark.parametrize("url", ["https://8.8.8.8/v1", "http://[2606:4700:4700::1111]/v1",
                                 "http://[::ffff:8.8.8.8]/v1", "https://1.1.1.1:8443/v1"])
def test_the_policy_accepts_public_addresses(url: str) -> None:
    assert NO_ALLOWANCE.check_url(url)


def test_a_name_is_refused_if_any_of_its_addresses_is() -> None:
    def rebinding(host: str, port: int) -> list[str]:  # DNS: no local server can answer a chosen record
        return ["8.8.8.8", "127.0.0.1"]

    with pytest.raises(EgressRefused, match="provider.example resolves to a loopback address"):
        NO_ALLOWANCE.check_url("https://provider.example/v1", resolve=rebinding)
    assert NO_ALLOWANCE.check_url("https://provider.example/v1", resolve=lambda h, p: ["8.8.8.8"]) == ["8.8.8.8"]


def test_the_refusal_names_the_host_not_what_it_resolved_to() -> None:
    with pytest.raises(EgressRefused) as exc:
        NO_ALLOWANCE.check_url("https://internal.example/v1", resolve=lambda h, p: ["10.9.8.7"])
    assert "10.9.8.7" not in str(exc.value) and "private" in str(exc.value)


def test_refusal_reasons() -> None:
    reasons = {a: refusal(ipaddress.ip_address(a)) for a in
               ["169.254.169.254", "127.0.0.1", "::1", "10.0.0.1", "224.0.0.1", "0.0.0.0", "::ffff:127.0.0.1",
                "8.8.8.8"]}
    assert reasons == {
        "169.254.169.254": "the cloud metadata address", "127.0.0.1": "a loopback address",
        "::1": "a loopback address", "10.0.0.1": "a private address", "224.0.0.1": "a multicast address",
        "0.0.0.0": "an unspecified address", "::ffff:127.0.0.1": "a loopback address (IPv4 inside IPv6)",
        "8.8.8.8": None}


def test_staff_allowances_hosts_and_ranges() -> None:
    policy = EgressPolicy.from_env_value("127.0.0.1, llm.corp.internal, 10.20.0.0/16, fd12::/16")
    assert policy.check_url("http://127.0.0.1:9/v1") == ["127.0.0.1"]
    assert policy.check_url("http://[::ffff:127.0.0.1]:9/v1")  # the mapped form of an allowed address
    assert policy.check_url("http://10.20.3.4/v1") and policy.check_url("http://[fd12::1]/v1")
    assert policy.check_url("http://LLM.corp.internal./v1") == []  # allowed by name, whatever it resolves to
    with pytest.raises(EgressRefused):
        policy.check_url("http://127.0.0.2/v1")
    with pytest.raises(EgressRefused):
        policy.check_url("http://10.21.0.1/v1")
    assert policy.check_url("http://localhost:9/v1", resolve=lambda h, p: ["127.0.0.1"]) == ["127.0.0.1"]
    with pytest.raises(EgressRefused):  # an allowed range does not cover the name's other addresses
        policy.check_url("http://localhost:9/v1", resolve=lambda h, p: ["127.0.0.1", "::1"])
    assert EgressPolicy.from_env_value("").check_url("https://8.8.8.8/") == ["8.8.8.8"]


@pytest.mark.parametrize("raw", ["10.0.0.1/8", "http://llm.example", "a,,b", ",", "1.2.3", "10.0.0.0/33",
                                 "bad host", "*.example.com"])
def test_the_allow_setting_is_parsed_strictly(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from leo_optima.settings.env import egress_allow

    monkeypatch.setenv("LEO_EGRESS_ALLOW", raw)
    with pytest.raises(ImproperlyConfigured, match="LEO_EGRESS_ALLOW"):
        egress_allow("LEO_EGRESS_ALLOW")


# --- save time: the portal and the admin refuse with a form error --------------------------------

SAVE_TIME_URLS = ["http://127.0.0.1:8765/_reset?x=", "http://localhost:8765/v1", "http://[::ffff:127.0.0.1]/v1",
                  "http://169.254.169.254/latest/meta-data/", "http://[::1]/v1", "http://0.0.0.0/v1",
                  "http://10.0.0.5/v1", "http://0x7f.1/v1"]


def _says_refused(message: str) -> bool:
    # Numeric hosts such as 0x7f.1 already fail Django's own URL check ("Enter a valid URL.").
    return "only to public addresses" in message or message == "Enter a valid URL."


@pytest.fixture
def actors(db: None) -> Actors:
    return build_actors()


@pytest.mark.parametrize("url", SAVE_TIME_URLS)
def test_the_portal_refuses_a_non_public_provider_url(actors: Actors, url: str, settings: Any) -> None:
    settings.LEO_EGRESS_ALLOW = NO_ALLOWANCE
    client = Client()
    client.force_login(actors.owner)
    before = ProviderCredential.objects.count()
    response = client.post("/portal/settings/providers/new/", {
        "name": "internal", "base_url": url, "api_key": "sk-tenant-1234567890", "priority": "1"})
    assert response.status_code == 400
    assert "only to public addresses" in response.content.decode() or "valid URL" in response.content.decode()
    errors = response.context["form"].errors
    assert list(errors) == ["base_url"] and _says_refused(errors["base_url"][0])
    assert ProviderCredential.objects.count() == before
    assert not AuditEvent.objects.filter(tenant=actors.tenant, action="provider.added").exists()


def test_the_portal_accepts_what_staff_allow(actors: Actors, settings: Any) -> None:
    settings.LEO_EGRESS_ALLOW = LOOPBACK_ALLOWED
    client = Client()
    client.force_login(actors.owner)
    response = client.post("/portal/settings/providers/new/", {
        "name": "allowed", "base_url": "http://127.0.0.1:8765/v1", "api_key": "sk-tenant-1234567890",
        "priority": "1"})
    assert response.status_code == 302
    assert ProviderCredential.objects.filter(tenant=actors.tenant, name="allowed").exists()


@pytest.mark.parametrize("url", SAVE_TIME_URLS)
def test_the_admin_refuses_a_non_public_provider_url(actors: Actors, url: str, settings: Any) -> None:
    settings.LEO_EGRESS_ALLOW = NO_ALLOWANCE
    client = Client()
    sign_in_staff(client, f"staff-{uuid.uuid4().hex[:8]}@example.com")
    before = ProviderCredential.objects.count()
    response = client.post("/admin/tenants/providercredential/add/", {
        "tenant": actors.tenant.pk, "name": "internal", "base_url": url, "model_names": "[]",
        "priority": "1", "api_key": "sk-tenant-1234567890"})
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["base_url"] and _says_refused(errors["base_url"][0])
    assert ProviderCredential.objects.count() == before


# --- call time: a live server with no allowance ---------------------------------------------------

class _Server(ThreadingHTTPServer):
    """A loopback HTTP server that remembers what reached it: (method, path, Authorization)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], target: str = "") -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.seen: list[tuple[str, str, str]] = []
        self.target = target

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def _record(self) -> _Server:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        server = cast(_Server, self.server)
        server.seen.append((self.command, self.path, self.headers.get("authorization") or ""))
        return server

    def log_message(self, *args: Any) -> None:
        pass


class _Recorder(_Handler):
    """Answers every request with a chat completion (a redirect's target: nothing may reach it)."""

    def _any(self) -> None:
        self._record()
        body = json.dumps({"id": "chatcmpl-leak", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": "LEAKED internal answer"}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _any


class _Redirector(_Handler):
    """Answers every request with a 302 to the recorder, as the issue's hostile base URL did."""

    def _any(self) -> None:
        server = self._record()
        self.send_response(302)
        self.send_header("location", server.target + "/internal/secret")
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST = _any


def _serve(handler: type[BaseHTTPRequestHandler], target: str = "") -> _Server:
    server = _Server(handler, target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def redirect_pair() -> Iterator[tuple[_Server, _Server]]:
    recorder = _serve(_Recorder)
    redirector = _serve(_Redirector, target=recorder.url)
    yield redirector, recorder
    for server in (redirector, recorder):
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def strict_server(start_server: Callable[..., LeoServer],
                  redirect_pair: tuple[_Server, _Server]) -> LeoServer:
    """No allowance at all (production's default); its platform upstream answers with redirects."""
    redirector, _ = redirect_pair
    return start_server(upstream=redirector.url + "/v1", LEO_EGRESS_ALLOW="", LEO_UPSTREAM_RETRIES="0")


def _provider(kit: TenantKit, base_url: str, **fields: Any) -> ProviderCredential:
    # Stored without the save-time check, as a row from before the fix (or a name that has since been
    # pointed elsewhere) would be: the call-time check must stand on its own.
    cred = ProviderCredential(tenant=kit.tenant, name="own", base_url=base_url, model_names=["gpt-4o-mini"],
                              **fields)
    cred.set_key("sk-tenant-own-key-" + uuid.uuid4().hex[:8])
    cred.save()
    return cred


def _ask(kit: TenantKit, stream: bool = False) -> Any:
    # A server's first request loads the embedding model (the test settings do not preload it),
    # which takes far longer than the default 30 s on a busy machine.
    client = kit.client(timeout=120)
    messages = [{"role": "user", "content": f"egress {uuid.uuid4().hex}"}]
    if stream:
        with client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True) as s:
            return list(s)
    return client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)


def _envelope(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


CALL_TIME_HOSTS = ["127.0.0.1:{port}", "localhost:{port}", "[::ffff:127.0.0.1]:{port}", "[::1]:{port}",
                   "0.0.0.0:{port}", "169.254.169.254", "[::ffff:a9fe:a9fe]", "10.0.0.5:{port}",
                   "2130706433:{port}", "127.1:{port}"]


@pytest.mark.parametrize(("host", "stream"), [(host, False) for host in CALL_TIME_HOSTS]
                         + [("127.0.0.1:{port}", True), ("localhost:{port}", True)])
def test_a_tenant_provider_on_a_non_public_address_is_refused_at_call_time(
        make_tenant: Callable[..., TenantKit], strict_server: LeoServer, fake_upstream: Any,
        host: str, stream: bool) -> None:
    kit = make_tenant(server=strict_server)
    port = fake_upstream.url.rsplit(":", 1)[1].split("/")[0]
    # The exploit: the path turns the gateway's POST into one on the fake's /_reset.
    _provider(kit, f"http://{host.format(port=port)}/_reset?x=")
    fake_upstream.configure(latency_ms=1)  # a knob /_reset would put back
    before = fake_upstream.stats()["requests"]
    with pytest.raises(openai.PermissionDeniedError) as exc:
        _ask(kit, stream)
    error = _envelope(exc.value)
    assert exc.value.status_code == 403 and error["code"] == "egress_refused"
    assert "tenant:own" in error["message"]
    assert "public addresses" in error["message"] or "not a valid IP address" in error["message"]
    assert fake_upstream.stats()["requests"] == before and fake_upstream.configure()["latency_ms"] == 1
    [row] = wait_for_rows(RequestLog, 1, request_id=exc.value.response.headers["x-leo-request-id"])
    assert row.status_code == 403 and row.error_code == "egress_refused"
    assert {"stage": "upstream_error", "provider": "tenant:own", "kind": "egress_refused"} in row.trail["stages"]


def test_a_tenant_provider_that_redirects_is_not_followed(
        make_tenant: Callable[..., TenantKit], redirect_pair: tuple[_Server, _Server]) -> None:
    redirector, recorder = redirect_pair
    kit = make_tenant()  # the shared server allows loopback (tests/conftest.py): only the redirect is at stake
    _provider(kit, redirector.url + "/v1", exclusive=True)
    seen_before = len(recorder.seen)
    with pytest.raises(openai.APIStatusError) as exc:
        _ask(kit)
    assert exc.value.status_code == 502 and _envelope(exc.value)["code"] == "redirect"
    assert len(recorder.seen) == seen_before  # nobody went where it pointed
    [row] = wait_for_rows(RequestLog, 1, request_id=exc.value.response.headers["x-leo-request-id"])
    assert row.status_code == 502 and row.error_code == "redirect"


def test_the_platform_upstream_redirect_is_not_followed_either(
        make_tenant: Callable[..., TenantKit], strict_server: LeoServer,
        redirect_pair: tuple[_Server, _Server]) -> None:
    redirector, recorder = redirect_pair
    kit = make_tenant(server=strict_server)
    seen_before, hits_before = len(recorder.seen), len(redirector.seen)
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as exc:
            _ask(kit, stream)
        assert exc.value.status_code == 502 and _envelope(exc.value)["code"] == "redirect"
    # The platform upstream is trusted: the redirector on loopback was called with no allowance at all.
    assert len(redirector.seen) == hits_before + 2
    assert len(recorder.seen) == seen_before



# --- the connection goes to the address that was checked ----------------------------------------

class _RebindingDNS:
    """Stands in for the system resolver (DNS is the one boundary no loopback server here can play:
    a name must answer a chosen address, then another): each lookup pops the next answer."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups = 0

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        self.lookups += 1
        address = self.answers.pop(0)
        return [{"hostname": host, "host": address, "port": port, "proto": 0, "flags": socket.AI_NUMERICHOST,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET}]

    async def close(self) -> None:
        pass


def test_a_name_that_rebinds_is_checked_on_the_lookup_the_connection_uses(
        fake_upstream: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.LEO_EGRESS_ALLOW = LOOPBACK_ALLOWED
    dns = _RebindingDNS("127.0.0.1", "127.0.0.2")
    monkeypatch.setattr(openai_compat, "DefaultResolver", lambda: dns)
    port = fake_upstream.url.rsplit(":", 1)[1].split("/")[0]
    upstream = Upstream("tenant:rebinder", f"http://provider.invalid:{port}/v1", "sk-rebinder-0000")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"rebind {uuid.uuid4().hex}"}]}

    async def call() -> Any:
        try:
            return await openai_compat.request_json(upstream, "/chat/completions", body, retries=0)
        finally:  # a fresh session (and resolver, and DNS cache) for the next event loop
            await openai_compat.session(trusted=False).close()

    before = fake_upstream.stats()["chat"]
    # provider.invalid exists nowhere: the connection reached the fake only through the checked answer.
    answer = asyncio.run(call())
    assert answer.body["choices"][0]["message"]["content"].startswith("ANSWER[") and dns.lookups == 1
    with pytest.raises(ProviderError) as exc:  # the next lookup answers a refused address
        asyncio.run(call())
    assert exc.value.kind == "egress_refused" and exc.value.status == 403 and not exc.value.retryable
    assert dns.lookups == 2 and fake_upstream.stats()["chat"] == before + 1


def test_a_stored_url_that_does_not_parse_is_a_provider_error_not_a_500(settings: Any) -> None:
    settings.LEO_EGRESS_ALLOW = NO_ALLOWANCE
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for base_url, kind in [("http://[::1", "bad_url"), ("http:///v1", "egress_refused"),
                           ("http://[fe80::1%25eth0]:9/v1", "egress_refused")]:
        with pytest.raises(ProviderError) as exc:
            asyncio.run(openai_compat.request_json(Upstream("tenant:x", base_url, "sk-x"), "/chat/completions",
                                                   body, retries=0))
        assert exc.value.kind == kind and not exc.value.retryable
