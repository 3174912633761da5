"""Cross-tenant isolation over every `/v1/*` URL and every portal URL.

Two tenants, A and B, each with a key, ledger rows, cache entries and a provider credential. A uses
everything it can reach, by every URL, with B's ids, and must see, change and spend nothing of B's.
The URL lists are read from the URLconf, so a new endpoint without a case here fails the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import openai
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from optimizer.models import CacheEntry, Feedback, OptimizerSettings, RequestLog
from tenants.models import ApiKey, Membership, ProviderCredential, Tenant, User
from tests.conftest import TenantKit, wait_for_rows
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)


# /v1 URL name -> what the test below does with it (kept in step with optimizer/api/urls.py).
V1_COVERED = {"chat-completions", "completions", "embeddings", "models", "model-detail", "analytics", "feedback",
              "cache", "cache-entry", "not-found"}


def _quiet(kit: TenantKit) -> TenantKit:
    OptimizerSettings.objects.update_or_create(tenant=kit.tenant, defaults={"semantic_cache": False})
    return kit


def _ask(kit: TenantKit, q: str) -> Any:
    return kit.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": q}])


def test_every_v1_url_is_covered() -> None:
    from optimizer.api import urls

    names = {p.name for p in urls.urlpatterns}
    assert names == V1_COVERED, f"add isolation cases for: {names - V1_COVERED}"


def test_v1_tenants_see_and_touch_only_their_own(make_tenant: Callable[..., TenantKit], fake_upstream: Any) -> None:
    a, b = _quiet(make_tenant("Alpha")), _quiet(make_tenant("Bravo"))
    # B's own provider, serving a model only B has, with B's own upstream key.
    cred = ProviderCredential(tenant=b.tenant, name="bravo-own", base_url=fake_upstream.url,
                              model_names=["bravo-private-model"], priority=1, exclusive=True)
    cred.set_key("sk-bravo-secret-provider-key-9f3a")
    cred.save()

    q = f"What is the capital of {uuid.uuid4().hex[:8]}?"
    b_raw = _ask(b, q)
    b_rid = b_raw.headers["x-leo-request-id"]
    assert _ask(b, q).headers["x-leo-cache"] == "exact"
    [b_entry] = wait_for_rows(CacheEntry, 1, tenant=b.tenant)
    b_private = b.client().chat.completions.create(model="bravo-private-model",
                                                   messages=[{"role": "user", "content": "hi " + q}])
    assert b_private.choices[0].message.content.startswith("ANSWER[")
    wait_for_rows(RequestLog, 3, tenant=b.tenant)

    # chat-completions / completions / embeddings: the same question is not B's cached answer.
    a_raw = _ask(a, q)
    assert a_raw.headers["x-leo-cache"] == "miss"
    client_a = a.client()
    assert client_a.completions.create(model="gpt-3.5-turbo-instruct", prompt=q).choices[0].text
    assert client_a.embeddings.create(model="text-embedding-3-small", input=q).data

    # models / model-detail: B's private model is invisible and uncallable for A.
    assert "bravo-private-model" not in {m.id for m in client_a.models.list()}
    with pytest.raises(openai.NotFoundError):
        client_a.models.retrieve("bravo-private-model")
    suffixes_before = dict(fake_upstream.stats()["auth_suffixes"])
    with pytest.raises(openai.NotFoundError) as nf:
        client_a.chat.completions.create(model="bravo-private-model", messages=[{"role": "user", "content": "x"}])
    assert nf.value.body["code"] == "model_not_found"
    assert fake_upstream.stats()["auth_suffixes"].get("9f3a", 0) == suffixes_before.get("9f3a", 0)

    with a.http() as http:
        # analytics: A's figures count A's requests only.
        wait_for_rows(RequestLog, 3, tenant=a.tenant)
        figures = http.get("/v1/analytics").json()
        assert figures["requests"] == RequestLog.objects.filter(tenant=a.tenant).count()
        assert figures["requests"] < RequestLog.objects.filter(tenant__in=[a.tenant, b.tenant]).count()
        # feedback on B's request id: not found, and nothing recorded against B.
        r = http.post("/v1/feedback", json={"request_id": b_rid, "correct": False})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert not Feedback.objects.filter(request_log__request_id=b_rid).exists()
        # cache: A's stats hold only A's entries; deleting B's entry by id is a 404; purging all is A's all.
        wait_for_rows(CacheEntry, 1, tenant=a.tenant)
        assert http.get("/v1/cache").json()["entries"] == CacheEntry.objects.filter(tenant=a.tenant).count()
        r = http.delete(f"/v1/cache/{b_entry.pk}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert http.delete("/v1/cache").json()["deleted"] >= 1
        # not-found: an unknown URL says nothing about anyone.
        r = http.get(f"/v1/tenants/{b.tenant.pk}/keys")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    assert CacheEntry.objects.filter(pk=b_entry.pk).exists()
    assert _ask(b, q).headers["x-leo-cache"] == "exact"  # B's answer survived A's purge

    # keys: A's key is A's; B's key with a tampered tail is nobody's.
    bad = b.key[:-4] + ("AAAA" if not b.key.endswith("AAAA") else "BBBB")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=a.base_url, api_key=bad, max_retries=0).models.list()
    # Every row A caused is A's; none of B's rows carry A's key.
    assert not RequestLog.objects.filter(tenant=b.tenant, api_key=a.api_key).exists()
    assert not RequestLog.objects.filter(tenant=a.tenant).exclude(api_key=a.api_key).exists()
    # A disabled tenant's keys stop working (within the 2 s key cache).
    Tenant.objects.filter(pk=b.tenant.pk).update(is_active=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            b.client().models.list()
        except openai.AuthenticationError:
            break
        time.sleep(0.3)
    else:
        pytest.fail("a disabled tenant's key still works")


# --- portal ----------------------------------------------------------------------------------------

def _portal_patterns() -> list[tuple[str, str, list[str]]]:
    """(url name, route template, converter names) of every URL under /portal/."""
    out: list[tuple[str, str, list[str]]] = []

    def walk(resolver: URLResolver, prefix: str, namespace: str) -> None:
        for p in resolver.url_patterns:
            if isinstance(p, URLResolver):
                ns = f"{namespace}:{p.namespace}" if namespace and p.namespace else (p.namespace or namespace)
                walk(p, prefix + str(p.pattern), ns or "")
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if route.startswith("portal/"):
                    converters = list(getattr(p.pattern, "converters", {}).keys())
                    out.append((f"{namespace}:{p.name}" if namespace else str(p.name), route, converters))

    walk(get_resolver(), "", "")
    return out


def _fill(route: str, values: dict[str, str]) -> str:
    import re

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)


@pytest.fixture
def two_portal_tenants(db: None) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for name in ("alpha", "bravo"):
        tenant = Tenant.objects.create(name=name.title(), slug=f"{name}-{uuid.uuid4().hex[:6]}")
        owner = User.objects.create_user(f"{name}-{uuid.uuid4().hex[:6]}@example.com", "pw-owner-123!")
        membership = Membership.objects.create(user=owner, tenant=tenant, role="owner")
        member = User.objects.create_user(f"{name}-m-{uuid.uuid4().hex[:6]}@example.com", "pw-member-123!")
        other = Membership.objects.create(user=member, tenant=tenant, role="member")
        key, plaintext = ApiKey.issue(tenant, name=f"{name}-key")
        cred = ProviderCredential(tenant=tenant, name=f"{name}-provider", base_url="http://127.0.0.1:9/v1",
                                  model_names=["m"])
        cred.set_key(f"sk-{name}-provider-secret-{uuid.uuid4().hex[:8]}")
        cred.save()
        from django.utils import timezone

        log = RequestLog.objects.create(request_id="req_" + uuid.uuid4().hex, created_at=timezone.now(),
                                        tenant=tenant, api_key=key, endpoint="chat", model="gpt-4o-mini",
                                        status_code=200, technique="miss", prompt_tokens=5)
        entry = CacheEntry.objects.create(tenant=tenant, scope_hash="s" * 64, key_hash=uuid.uuid4().hex * 2,
                                          model="gpt-4o-mini", request_text=f"{name} secret question",
                                          response={"choices": [{"message": {"content": f"{name} answer"}}]},
                                          expires_at=timezone.now() + timezone.timedelta(days=1))
        made[name] = {"tenant": tenant, "owner": owner, "membership": membership, "other": other, "key": key,
                      "plaintext": plaintext, "cred": cred, "log": log, "entry": entry}
    return made


def _ids_for(name: str, route: str, b: dict[str, Any]) -> list[dict[str, str]]:
    """B's object ids to put into a route's parameters, chosen by what the route is about."""
    if "request_id" in route:
        return [{"request_id": b["log"].request_id}]
    if "pk" not in route:
        return [{}]
    lowered = name.lower() + route.lower()
    candidates = []
    if "key" in lowered:
        candidates.append(b["key"].pk)
    if "member" in lowered:
        candidates += [b["membership"].pk, b["other"].pk]
    if "provider" in lowered:
        candidates.append(b["cred"].pk)
    if "cache" in lowered:
        candidates.append(b["entry"].pk)
    if not candidates:  # unknown kind of object: try every id B owns
        candidates = [b["key"].pk, b["membership"].pk, b["other"].pk, b["cred"].pk, b["entry"].pk]
    return [{"pk": str(pk)} for pk in candidates]


def _b_state(b: dict[str, Any]) -> tuple[Any, ...]:
    key = ApiKey.objects.get(pk=b["key"].pk)
    return (key.revoked_at, key.digest, key.name, ProviderCredential.objects.filter(pk=b["cred"].pk).exists(),
            tuple(Membership.objects.filter(tenant=b["tenant"]).values_list("pk", "role").order_by("pk")),
            CacheEntry.objects.filter(pk=b["entry"].pk).exists(), Feedback.objects.filter(tenant=b["tenant"]).count(),
            ApiKey.objects.filter(tenant=b["tenant"]).count(), Tenant.objects.get(pk=b["tenant"].pk).name)


def test_portal_every_url_refuses_other_tenants_objects(two_portal_tenants: dict[str, Any]) -> None:
    a, b = two_portal_tenants["alpha"], two_portal_tenants["bravo"]
    patterns = _portal_patterns()
    assert len(patterns) >= 10, "the portal URLs were not found"
    client = Client()
    client.force_login(a["owner"])
    before = _b_state(b)
    b_secrets = [b["key"].prefix, b["plaintext"], b["cred"].name, b["cred"].get_key(), b["log"].request_id,
                 b["entry"].request_text, b["tenant"].name + " ", b["tenant"].slug]
    tried = 0
    for name, route, _converters in patterns:
        for values in _ids_for(name, route, b):
            url = _fill(route, values)
            for method in ("get", "post"):
                payload = {"tenant": str(b["tenant"].pk), "role": "owner", "name": "pwned", "correct": "false",
                           "email": "x@example.com", "base_url": "http://127.0.0.1:1/v1", "api_key": "sk-x",
                           "model_names": "gpt-4o-mini"}
                response = getattr(client, method)(url, payload if method == "post" else None)
                tried += 1
                body = response.content.decode(errors="replace") if not getattr(response, "streaming", False) \
                    else b"".join(response.streaming_content).decode(errors="replace")
                for secret in b_secrets:
                    assert secret not in body, (method, url, secret)
                if values:  # a URL naming one of B's objects: never found, never changed
                    assert response.status_code in (403, 404, 405), (method, url, response.status_code)
                else:  # 503: a clean "not configured here" (billing without Stripe), never a crash
                    assert response.status_code < 500 or response.status_code == 503, (method, url,
                                                                                         response.status_code)
    assert _b_state(b) == before
    # The tenant switcher refuses a tenant the user is not a member of.
    assert client.post("/portal/switch/", {"tenant": str(b["tenant"].pk)}).status_code == 404
    print(f"\nisolation: {len(patterns)} portal URLs, {tried} cross-tenant requests, B unchanged")


def test_portal_requires_login_everywhere(two_portal_tenants: dict[str, Any]) -> None:
    b = two_portal_tenants["bravo"]
    client = Client()
    for name, route, _ in _portal_patterns():
        for values in _ids_for(name, route, b)[:1]:
            url = _fill(route, values)
            response = client.get(url)
            assert response.status_code in (302, 403, 404, 405), (url, response.status_code)
            if response.status_code == 302:
                assert "/accounts/login/" in response["Location"], (url, response["Location"])


def test_api_key_plaintext_is_not_in_any_portal_page_after_creation(two_portal_tenants: dict[str, Any]) -> None:
    a = two_portal_tenants["alpha"]
    client = Client()
    client.force_login(a["owner"])
    for name, route, converters in _portal_patterns():
        if converters or "export" in route:
            continue
        response = client.get(_fill(route, {}))
        if response.status_code == 200 and not getattr(response, "streaming", False):
            body = response.content.decode(errors="replace")
            assert a["plaintext"] not in body and a["cred"].get_key() not in body, route

