"""#15.14: a provider key added (or removed) in the portal is used by the next request, in every
worker: the save bumps a per-tenant version in the shared state (Redis under REDIS_URL) and the
registry reloads a tenant whose version moved (optimizer/providers/freshness.py)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from optimizer.providers import registry
from tenants.models import ProviderCredential
from tests.portal_helpers import Actors, build_actors

pytestmark = pytest.mark.django_db(transaction=True)  # the version is bumped on commit


def _names(tenant_id: int) -> set[str]:
    return {upstream.name for upstream, _models, _exclusive in async_to_sync(registry.tenant_providers)(tenant_id).credentials}


def test_added_and_removed_credentials_apply_to_the_next_request() -> None:
    actors: Actors = build_actors()
    tid = actors.tenant.pk
    assert _names(tid) == {"tenant:victim-provider"}  # this worker now holds the list (TTL 5 s)
    owner = Client()
    owner.force_login(actors.owner)
    response = owner.post("/portal/settings/providers/new/", {
        "name": "fresh", "base_url": "https://api.example.net/v1", "api_key": "sk-fresh-12345678",
        "priority": 1, "models_text": "gpt-4o-mini"})
    assert response.status_code == 302, response.content.decode()[:500]
    assert _names(tid) == {"tenant:victim-provider", "tenant:fresh"}  # no wait for the TTL
    fresh = ProviderCredential.objects.get(tenant=actors.tenant, name="fresh")
    assert owner.post(f"/portal/settings/providers/{fresh.pk}/delete/").status_code == 302
    assert _names(tid) == {"tenant:victim-provider"}


def test_another_tenants_change_does_not_reload_this_one() -> None:
    actors: Actors = build_actors()
    _names(actors.tenant.pk)
    before = registry._cache[actors.tenant.pk]
    other = ProviderCredential(tenant=actors.outsider_tenant, name="elsewhere", base_url="https://api.example.org/v1")
    other.set_key("sk-elsewhere-1234")
    other.save()
    _names(actors.tenant.pk)
    assert registry._cache[actors.tenant.pk] is before
