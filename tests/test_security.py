"""Security over real HTTP: bad-key throttling per client address, no secret in any log, error or page,
CSRF on the portal, and anti-framing headers.

The throttling test runs on a server of its own that trusts X-Forwarded-For (as it does behind
nginx), so each test uses its own made-up client addresses and never blocks loopback for the rest
of the suite.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from django.test import Client

from tenants.auth import BAD_KEY_LIMIT_PER_MINUTE
from tenants.models import ProviderCredential
from tests.conftest import LeoServer, TenantKit
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)


# A key's body has a digit or a capital letter; metric names (leo_request_duration_seconds) do not.
LEO_KEY = re.compile(r"leo_(?=[A-Za-z0-9_\-]*[0-9A-Z])[A-Za-z0-9_\-]{30,}")
SK_KEY = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")


def scan_for_secrets(text: str, secrets: list[str]) -> list[str]:
    """Every named secret, and anything shaped like a LEO or provider key, found in `text`."""
    found = [s for s in secrets if s and s in text]
    found += LEO_KEY.findall(text) + SK_KEY.findall(text)
    return found


@pytest.fixture(scope="module")
def edge_server(start_server: Callable[..., LeoServer]) -> LeoServer:
    """A server as behind nginx: the client address comes from X-Forwarded-For."""
    return start_server(LEO_TRUST_X_FORWARDED_FOR="true", LEO_LOG_LEVEL="DEBUG")


def _address() -> str:
    return f"198.51.100.{random.randint(1, 254)}" if random.random() < 0.5 else \
        f"203.0.113.{random.randint(1, 254)}"


def test_repeated_bad_keys_are_throttled_per_client_address(make_tenant: Callable[..., TenantKit],
                                                           edge_server: LeoServer) -> None:
    kit = make_tenant("Throttle", server=edge_server)
    attacker, bystander = _address(), _address()
    while bystander == attacker:
        bystander = _address()
    statuses = []
    with httpx.Client(base_url=edge_server.url, timeout=30) as http:
        for i in range(BAD_KEY_LIMIT_PER_MINUTE + 5):
            r = http.get("/v1/models", headers={"Authorization": f"Bearer leo_{uuid.uuid4().hex}{i:04d}xyzXYZ",
                                                "X-Forwarded-For": attacker})
            statuses.append(r.status_code)
            body = r.json()["error"]
            assert set(body) == {"message", "type", "param", "code"}
        assert statuses[:BAD_KEY_LIMIT_PER_MINUTE] == [401] * BAD_KEY_LIMIT_PER_MINUTE
        assert set(statuses[BAD_KEY_LIMIT_PER_MINUTE:]) == {429}
        assert body["code"] == "rate_limit_exceeded"
        # The throttled address is refused even with a valid key until the minute passes (a guessing
        # client gains nothing by mixing in its real key); other addresses are untouched.
        good = {"Authorization": f"Bearer {kit.key}"}
        assert http.get("/v1/models", headers={**good, "X-Forwarded-For": attacker}).status_code == 429
        assert http.get("/v1/models", headers={**good, "X-Forwarded-For": bystander}).status_code == 200
        # Not-even-key-shaped garbage counts too.
        for _ in range(3):
            http.get("/v1/models", headers={"Authorization": "Bearer nonsense", "X-Forwarded-For": bystander})
        assert http.get("/v1/models", headers={**good, "X-Forwarded-For": bystander}).status_code == 200
    print(f"\nthrottling: {BAD_KEY_LIMIT_PER_MINUTE} bad keys/min per address, then 429; other addresses unaffected")


def test_no_key_in_any_log_error_or_page(make_tenant: Callable[..., TenantKit], edge_server: LeoServer,
                                         fake_upstream: Any) -> None:
    kit = make_tenant("Secrets", server=edge_server)
    provider_key = "sk-tenant-provider-" + uuid.uuid4().hex
    cred = ProviderCredential(tenant=kit.tenant, name="own", base_url=fake_upstream.url,
                              model_names=["gpt-4o-mini"], priority=1)
    cred.set_key(provider_key)
    cred.save()
    near_miss = kit.key[:-3] + "zzz"  # a real prefix with a wrong tail
    secrets = [kit.key, near_miss, provider_key, edge_server.env["LEO_UPSTREAM_API_KEY"]]
    bodies: list[str] = []
    client = kit.client()
    r = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"key check {uuid.uuid4().hex}"}])
    bodies.append(r.http_response.text)
    bodies.append("".join(str(c) for c in client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "stream " + uuid.uuid4().hex}])))
    fake_upstream.configure(fail_next=10, error_status=401)  # the provider refuses its key
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": uuid.uuid4().hex}])
    bodies.append(refused.value.response.text)
    fake_upstream.reset()
    address = _address()
    with httpx.Client(base_url=edge_server.url, timeout=30, headers={"X-Forwarded-For": address}) as http:
        for auth in (f"Bearer {near_miss}", f"Bearer {kit.key}x", kit.key, f"Basic {kit.key}"):
            bodies.append(http.get("/v1/models", headers={"Authorization": auth}).text)
        bodies.append(http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {kit.key}"},
                                content=b"{broken " + kit.key.encode()).text)
        bodies.append(http.get("/metrics").text)
        bodies.append(http.get("/readyz").text)
        bodies.append(http.get("/api/schema").text)
        bodies.append(http.get("/v1/cache", headers={"Authorization": f"Bearer {kit.key}"}).text)
    leaks = {i: scan_for_secrets(b, secrets) for i, b in enumerate(bodies)}
    assert not any(leaks.values()), leaks
    log = edge_server.log()
    assert kit.key[:12] in log or "Secrets" in log or "secrets-" in log  # the log is there and has our traffic
    assert scan_for_secrets(log, secrets) == []
    print(f"\nsecrets: {len(bodies)} responses and {len(log.splitlines())} log lines scanned, no key found")


def test_portal_pages_have_anti_framing_and_csrf(kit: TenantKit, leo_server: LeoServer) -> None:
    # A real session for the tenant's owner, used over real HTTP.
    django_client = Client()
    django_client.force_login(kit.owner)
    session = django_client.cookies["sessionid"].value
    with httpx.Client(base_url=leo_server.url, timeout=30, cookies={"sessionid": session}) as http:
        for path in ("/portal/", "/portal/keys/", "/accounts/login/"):
            r = http.get(path) if "accounts" not in path else httpx.get(leo_server.url + path)
            assert r.status_code == 200, (path, r.status_code)
            assert r.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert r.headers["x-content-type-options"] == "nosniff"
        # A cross-site form post (no CSRF token) is refused and creates nothing.
        from tenants.models import ApiKey

        before = ApiKey.objects.filter(tenant=kit.tenant).count()
        r = http.post("/portal/keys/new/", data={"name": "csrf"}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert ApiKey.objects.filter(tenant=kit.tenant).count() == before
        # With the token from the page, the same post works: the 403 above was CSRF, not permissions.
        page = http.get("/portal/keys/")
        token = http.cookies.get("csrftoken") or re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                                                           page.text).group(1)
        form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        r = http.post("/portal/keys/new/", data={"name": "ok", "csrfmiddlewaretoken": form_token.group(1)
                                                 if form_token else token},
                      headers={"X-CSRFToken": token, "Referer": leo_server.url + "/portal/keys/"})
        assert r.status_code in (200, 302)
        assert ApiKey.objects.filter(tenant=kit.tenant).count() == before + 1
        # A portal session is not an API credential.
        r = http.get("/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
