"""Cache pages: search, delete one (form and HTMX), purge by model and all."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from optimizer.models import CacheEntry
from tenants.models import AuditEvent
from tests.portal_helpers import Actors, build_actors

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def actors() -> Actors:
    return build_actors()


def _entry(actors: Actors, text: str, model: str = "gpt-4o-mini") -> CacheEntry:
    return CacheEntry.objects.create(tenant=actors.tenant, scope_hash="a" * 64, key_hash=text[:8].ljust(64, "0"),
                                     model=model, request_text=text, response={"choices": []},
                                     expires_at=timezone.now() + timedelta(days=1))


def test_search_delete_purge(actors: Actors) -> None:
    client = Client()
    client.force_login(actors.owner)
    apples = _entry(actors, "How do apples grow?")
    pears = _entry(actors, "How do pears grow?", model="gpt-4o")
    body = client.get("/portal/cache/?q=apples").content.decode()
    assert "apples" in body and "pears" not in body and "zebras" not in body
    assert "pears" in client.get("/portal/cache/?model=gpt-4o").content.decode()
    response = client.post(f"/portal/cache/{apples.pk}/delete/", headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.content == b""
    assert not CacheEntry.objects.filter(pk=apples.pk).exists()
    assert client.post("/portal/cache/purge/", {"model": "gpt-4o"}).status_code == 302
    assert not CacheEntry.objects.filter(pk=pears.pk).exists()
    assert CacheEntry.objects.filter(pk=actors.entry.pk).exists()
    client.post("/portal/cache/purge/", {})
    assert not CacheEntry.objects.filter(tenant=actors.tenant).exists()
    assert AuditEvent.objects.filter(tenant=actors.tenant, action="cache.purged").count() == 2
