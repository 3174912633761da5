"""Per-key limits in the portal (#15.4): set at creation, edited later, kept on rotation; owners and
admins only; the API enforces an edit within seconds."""

from __future__ import annotations

import time
from decimal import Decimal

import openai
import pytest
from django.test import Client

from tenants.auth import CACHE_SECONDS
from tenants.models import ApiKey, AuditEvent
from tests.portal_helpers import Actors, build_actors


@pytest.fixture
def actors(db: None) -> Actors:
    return build_actors()


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_create_with_limits(actors: Actors) -> None:
    owner = _client(actors.owner)
    response = owner.post("/portal/keys/new/", {"name": "capped", "limits-monthly_budget_usd": "25",
                                                "limits-requests_per_minute": "60", "limits-tokens_per_minute": "",
                                                "limits-allowed_models": "gpt-4o-mini, gpt-4o-mini,gpt-4o"})
    assert response.status_code == 302  # POST/redirect/GET (the key is shown by the next GET)
    row = ApiKey.objects.get(tenant=actors.tenant, name="capped")
    assert (row.monthly_budget_usd, row.requests_per_minute, row.tokens_per_minute, row.allowed_models) == (
        Decimal("25"), 60, None, ["gpt-4o-mini", "gpt-4o"])
    event = AuditEvent.objects.get(tenant=actors.tenant, action="api_key.created", target=row.prefix)
    assert Decimal(event.data["limits"]["monthly_budget_usd"]) == 25
    page = owner.get("/portal/keys/").content.decode()
    assert "$25.00/month" in page and "60 req/min" in page


def test_create_refuses_bad_limits_with_form_errors(actors: Actors) -> None:
    owner = _client(actors.owner)
    before = ApiKey.objects.count()
    for field, value in (("monthly_budget_usd", "-1"), ("monthly_budget_usd", "NaN"), ("requests_per_minute", "0"),
                         ("tokens_per_minute", "lots"), ("allowed_models", "gpt\x00")):
        response = owner.post("/portal/keys/new/", {"name": "bad", f"limits-{field}": value})
        assert response.status_code == 400, (field, value)
        assert b"errorlist" in response.content and b"new-key-value" not in response.content
        assert ApiKey.objects.count() == before, (field, value)


def test_edit_limits_and_clear_them(actors: Actors) -> None:
    owner = _client(actors.owner)
    url = f"/portal/keys/{actors.key.pk}/limits/"
    assert owner.get(url).status_code == 200
    response = owner.post(url, {"monthly_budget_usd": "3.5", "requests_per_minute": "10",
                                "tokens_per_minute": "1000", "allowed_models": "gpt-4o-mini"})
    assert response.status_code == 302 and response["Location"] == "/portal/keys/"
    actors.key.refresh_from_db()
    assert actors.key.monthly_budget_usd == Decimal("3.5") and actors.key.allowed_models == ["gpt-4o-mini"]
    first_version = actors.key.limits_changed_at
    assert 'value="3.5000"' in owner.get(url).content.decode()  # the edit form shows what is set
    bad = owner.post(url, {"monthly_budget_usd": "abc"})
    assert bad.status_code == 400 and b"errorlist" in bad.content
    owner.post(url, {"monthly_budget_usd": "", "requests_per_minute": "", "tokens_per_minute": "",
                     "allowed_models": ""})
    actors.key.refresh_from_db()
    assert not actors.key.has_limits and actors.key.limits_changed_at > first_version
    changes = AuditEvent.objects.filter(tenant=actors.tenant, action="api_key.limits_changed")
    assert changes.count() == 2


def test_rotation_keeps_the_limits(actors: Actors) -> None:
    actors.key.set_limits(monthly_budget_usd=Decimal("7"), allowed_models=["gpt-4o-mini"])
    response = _client(actors.owner).post(f"/portal/keys/{actors.key.pk}/rotate/", {"old_key_expires": "0"})
    assert response.status_code == 302
    new = ApiKey.objects.filter(tenant=actors.tenant, revoked_at__isnull=True).exclude(pk=actors.key.pk).get()
    assert new.monthly_budget_usd == Decimal("7") and new.allowed_models == ["gpt-4o-mini"]


def test_only_managers_of_the_tenant_edit_limits(actors: Actors) -> None:
    url = f"/portal/keys/{actors.key.pk}/limits/"
    data = {"monthly_budget_usd": "0"}
    assert _client(actors.member).get(url).status_code == 403
    assert _client(actors.member).post(url, data).status_code == 403
    assert _client(actors.outsider).get(url).status_code == 404
    assert _client(actors.outsider).post(url, data).status_code == 404
    assert _client(actors.admin).post(url, data).status_code == 302
    actors.key.refresh_from_db()
    assert actors.key.monthly_budget_usd == Decimal("0")
    # Members see the limits on the list, without the edit link.
    page = _client(actors.member).get("/portal/keys/").content.decode()
    assert "$0.00/month" in page and url not in page


def test_an_edit_in_the_portal_reaches_the_api(make_tenant) -> None:
    kit = make_tenant("PortalLimits")
    client = kit.client()
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "before"}], max_tokens=5)
    owner = _client(kit.owner)
    assert owner.post(f"/portal/keys/{kit.api_key.pk}/limits/", {"allowed_models": "gpt-4o-mini"}).status_code == 302
    time.sleep(CACHE_SECONDS + 0.2)  # the server reads a key's row again after CACHE_SECONDS
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "after"}], max_tokens=5)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "ok"}], max_tokens=5)
