"""Who may move a tenant's semantic strictness (issue #13, item 13).

A verdict on a semantic hit changes a tenant setting (the adaptive strictness), so it is a
management action: in the portal owners and admins give feedback, members only read (403, and
nothing moves). On the API, `/v1/feedback` takes any usable key of the tenant: a key acts for the
tenant, and only owners and admins can issue one (a member gets 403 on key creation), just as a
key may already purge the tenant's cache. SECURITY.md states the rule.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from optimizer.models import Feedback, OptimizerSettings
from tenants.models import ApiKey
from tests.conftest import TenantKit
from tests.portal_helpers import Actors, build_actors, make_ledger_row
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _level(tenant: Any) -> float:
    state = OptimizerSettings.objects.get(tenant=tenant).adaptive_state or {}
    return float(state.get("level", 0.0))


@pytest.mark.django_db
def test_a_member_cannot_post_feedback_in_the_portal() -> None:
    actors: Actors = build_actors()
    OptimizerSettings.objects.get_or_create(tenant=actors.tenant)
    row = make_ledger_row(actors.tenant, actors.key, technique="semantic", similarity=0.86)
    member = _client(actors.member)
    for _ in range(3):
        assert member.post(f"/portal/requests/{row.request_id}/feedback/", {"correct": "0"}).status_code == 403
    assert not Feedback.objects.filter(request_log=row).exists()
    assert _level(actors.tenant) == 0.0
    # The page a member reads offers no verdict buttons (a form that would only answer 403).
    page = member.get(f"/portal/requests/{row.request_id}/").content.decode()
    assert f"/portal/requests/{row.request_id}/feedback/" not in page
    assert "Owners and admins mark answers" in page
    assert "/feedback/" not in member.get("/portal/cache/").content.decode()
    # Nor can a member get around it with a key of their own.
    assert member.post("/portal/keys/new/", {"name": "mine"}).status_code == 403
    assert ApiKey.objects.filter(tenant=actors.tenant).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_post_feedback_in_the_portal(role: str) -> None:
    actors: Actors = build_actors()
    OptimizerSettings.objects.get_or_create(tenant=actors.tenant)
    row = make_ledger_row(actors.tenant, actors.key, technique="semantic", similarity=0.86)
    client = _client(getattr(actors, role))
    page = client.get(f"/portal/requests/{row.request_id}/").content.decode()
    assert f"/portal/requests/{row.request_id}/feedback/" in page
    assert client.post(f"/portal/requests/{row.request_id}/feedback/", {"correct": "0"}).status_code == 302
    assert Feedback.objects.get(request_log=row).correct is False
    assert _level(actors.tenant) > 0.0


def test_any_key_of_the_tenant_may_post_feedback_on_the_api(kit: TenantKit, make_tenant: Any) -> None:
    """The documented API rule: a key (issued by an owner or admin) acts for its tenant."""
    OptimizerSettings.objects.get_or_create(tenant=kit.tenant)
    row = make_ledger_row(kit.tenant, kit.api_key, technique="semantic", similarity=0.86)
    stranger = make_tenant("Stranger")
    with stranger.http() as http:  # another tenant's key: as if the request did not exist
        assert http.post("/v1/feedback", json={"request_id": row.request_id, "correct": False}).status_code == 404
    assert _level(kit.tenant) == 0.0
    with kit.http() as http:
        r = http.post("/v1/feedback", json={"request_id": row.request_id, "correct": False})
        assert r.status_code == 200, r.text
    assert _level(kit.tenant) > 0.0
