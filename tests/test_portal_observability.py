"""Observability pages of the portal (issue #15): latency on the overview, the requests list
sorted and filtered by latency, user and tag, the request detail's conversation and served entry,
the breakdown page, and the owners-only body setting."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from optimizer.models import LatencyRollup, OptimizerSettings, RequestBody, UsageRollup
from optimizer.rollups import period_start, rollup
from tests.portal_helpers import Actors, build_actors, make_ledger_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def actors() -> Actors:
    return build_actors()


def login(user: object) -> Client:
    c = Client()
    c.force_login(user)
    return c


def order(body: str, *request_ids: str) -> list[str]:
    return sorted(request_ids, key=body.index)


def test_requests_sort_and_filter_by_latency_user_and_tag(actors: Actors) -> None:
    slow = make_ledger_row(actors.tenant, actors.key, latency_ms=900, end_user="alice", tags={"team": "search"})
    fast = make_ledger_row(actors.tenant, actors.key, latency_ms=3, end_user="bob", tags={"team": "ads"})
    mid = make_ledger_row(actors.tenant, actors.key, latency_ms=120)
    c = login(actors.member)
    ids = (slow.request_id, fast.request_id, mid.request_id)
    assert order(c.get("/portal/requests/?sort=slowest").content.decode(), *ids) == [slow.request_id,
                                                                                   mid.request_id, fast.request_id]
    assert order(c.get("/portal/requests/?sort=fastest").content.decode(), *ids)[0] == fast.request_id
    cases = {"min_latency=100": {slow, mid}, "max_latency=100": {fast}, "min_latency=100&max_latency=500": {mid},
             "user=alice": {slow}, "tag=team%3Dads": {fast}, "tag=team%3Dnone": set()}
    for query, expected in cases.items():
        body = c.get(f"/portal/requests/?{query}").content.decode()
        for row in (slow, fast, mid):
            assert (row.request_id in body) == (row in expected), query
    for bad in ("sort=sideways", "min_latency=-1", "tag=no-equals-sign", "tag=a%20b%3Dc"):
        response = c.get(f"/portal/requests/?{bad}")
        assert response.status_code == 400, bad
    csv_text = b"".join(c.get("/portal/requests/export.csv?sort=slowest").streaming_content).decode()
    assert csv_text.splitlines()[1].startswith(slow.request_id) and "team=search" in csv_text


def test_detail_shows_the_conversation_only_when_bodies_are_kept(actors: Actors) -> None:
    row = make_ledger_row(actors.tenant, actors.key, latency_ms=40, upstream_latency_ms=30, overhead_ms=10,
                          end_user="alice", tags={"env": "prod"})
    c = login(actors.member)
    page = c.get(f"/portal/requests/{row.request_id}/").content.decode()
    assert 'id="body-off"' in page and "not stored for this tenant" in page
    assert "overhead 10.0 ms" in page and "env=prod" in page and "alice" in page

    OptimizerSettings.objects.create(tenant=actors.tenant, store_bodies=True)
    page = c.get(f"/portal/requests/{row.request_id}/").content.decode()
    assert 'id="body-missing"' in page

    RequestBody.objects.create(
        request_log_id=row.request_id, tenant=actors.tenant, redactions=1, created_at=row.created_at,
        expires_at=row.created_at + timedelta(days=7),
        prompt=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<b>Capital of Peru?</b>"}],
        response={"choices": [{"message": {"role": "assistant", "content": "Lima."}}]})
    page = c.get(f"/portal/requests/{row.request_id}/").content.decode()
    assert "Be brief." in page and "&lt;b&gt;Capital of Peru?&lt;/b&gt;" in page and "Lima." in page
    assert "Secrets redacted: 1" in page


def test_detail_names_the_cache_entry_that_served_a_hit(actors: Actors) -> None:
    hit = make_ledger_row(actors.tenant, actors.key, technique="exact", cache_key=actors.entry.key_hash)
    gone = make_ledger_row(actors.tenant, actors.key, technique="exact", cache_key="f" * 64)
    c = login(actors.member)
    page = c.get(f"/portal/requests/{hit.request_id}/").content.decode()
    assert f"Cache entry #{actors.entry.pk}" in page and "victim question about zebras" in page
    assert "no longer in the cache" in c.get(f"/portal/requests/{gone.request_id}/").content.decode()
    # another tenant's entry with the same key is never shown
    other = make_ledger_row(actors.outsider_tenant, None, technique="exact", cache_key=actors.entry.key_hash)
    page = login(actors.outsider).get(f"/portal/requests/{other.request_id}/").content.decode()
    assert "zebras" not in page and "no longer in the cache" in page


def test_only_owners_turn_bodies_on_and_turning_off_forgets_them(actors: Actors) -> None:
    form = {"prompt_mode": "lossless", "non_deterministic": "cache", "cache_ttl_seconds": 3600,
            "cache_max_entries": 1000, "semantic_threshold": 0.8, "semantic_margin": 0.02, "max_wrong_rate": 0.01,
            "routing_rules_text": "[]", "exact_cache": "on", "store_bodies": "on", "body_retention_days": 14}
    admin = login(actors.admin)
    assert 'name="store_bodies"' in admin.get("/portal/settings/").content.decode()
    assert admin.post("/portal/settings/", form).status_code == 302
    settings_row = OptimizerSettings.objects.get(tenant=actors.tenant)
    assert not settings_row.store_bodies and settings_row.body_retention_days == 7  # ignored for an admin
    owner = login(actors.owner)
    assert owner.post("/portal/settings/", form).status_code == 302
    settings_row.refresh_from_db()
    assert settings_row.store_bodies and settings_row.body_retention_days == 14
    assert owner.post("/portal/settings/", {**form, "body_retention_days": 0}).status_code == 400

    row = make_ledger_row(actors.tenant, actors.key)
    RequestBody.objects.create(request_log_id=row.request_id, tenant=actors.tenant, prompt="p", created_at=row.created_at,
                               expires_at=row.created_at + timedelta(days=14))
    other = make_ledger_row(actors.outsider_tenant, None)
    RequestBody.objects.create(request_log_id=other.request_id, tenant=actors.outsider_tenant, prompt="p",
                               created_at=other.created_at, expires_at=other.created_at + timedelta(days=14))
    assert owner.post("/portal/settings/", {k: v for k, v in form.items() if k != "store_bodies"}).status_code == 302
    assert not RequestBody.objects.filter(tenant=actors.tenant).exists()
    assert RequestBody.objects.filter(tenant=actors.outsider_tenant).count() == 1


def test_breakdown_page(actors: Actors) -> None:
    make_ledger_row(actors.tenant, actors.key, model="gpt-4o", latency_ms=200, tags={"team": "search"})
    make_ledger_row(actors.tenant, actors.key, model="gpt-4o", latency_ms=400, tags={"team": "search"},
                    end_user="carol")
    make_ledger_row(actors.outsider_tenant, None, model="outsider-model", tags={"team": "outsiders"})
    c = login(actors.member)
    page = c.get("/portal/breakdown/").content.decode()
    assert 'id="breakdown"' in page and "gpt-4o" in page and "outsider-model" not in page
    page = c.get("/portal/breakdown/?group_by=tag&tag=team&period=7d").content.decode()
    assert "search" in page and "outsiders" not in page and "(none)" in page
    assert re.search(r"<td>search</td>\s*<td class=\"num\">2</td>", page)
    page = c.get("/portal/breakdown/?group_by=key&period=24h").content.decode()
    assert f"{actors.key.prefix}… victim-key" in page
    assert "carol" in c.get("/portal/breakdown/?group_by=user").content.decode()
    assert c.get("/portal/breakdown/?group_by=tag&tag=").status_code == 400
    assert c.get("/portal/breakdown/?group_by=nonsense").status_code == 400


def test_overview_shows_latency_percentiles_from_rollups_and_live_rows(actors: Actors) -> None:
    now = timezone.now()
    two_hours_ago = period_start("hour", now) - timedelta(hours=2)
    for ms in (100, 100, 100, 1000):
        make_ledger_row(actors.tenant, actors.key, latency_ms=ms, created_at=two_hours_ago + timedelta(minutes=5))
    rollup(actors.tenant.pk, "hour", two_hours_ago)
    UsageRollup.objects.filter(tenant=actors.tenant).update(computed_at=now)  # closed when computed
    assert sum(LatencyRollup.objects.get(tenant=actors.tenant).histogram.values()) == 4
    make_ledger_row(actors.tenant, actors.key, latency_ms=100, created_at=now - timedelta(minutes=1))
    page = login(actors.member).get("/portal/?period=24h").content.decode()
    p50 = re.search(r'id="fig-latency-p50">([\d.]+) ms', page)
    p95 = re.search(r'id="fig-latency-p95">([\d.]+) ms', page)
    assert p50 and p95 and page.count('class="p50"') >= 1
    assert float(p50.group(1)) == pytest.approx(100, rel=0.05)
    assert float(p95.group(1)) == pytest.approx(1000, rel=0.05)
