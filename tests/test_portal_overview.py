"""The overview: figures equal the ledger's (/v1/analytics' summary) whether they come from hourly
rollups, the live ledger, or both; first run; period validation; quota bars; charts."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from optimizer import analytics, rollups
from optimizer.portal import figures
from tests.portal_helpers import Actors, build_actors, make_ledger_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def actors() -> Actors:
    return build_actors()


def _seed(actors: Actors, now) -> None:  # type: ignore[no-untyped-def]
    """Rows in five past hours and in the current one, several techniques, an error, a routed row."""
    hour = rollups.period_start("hour", now)
    for h in range(1, 6):
        at = hour - timedelta(hours=h) + timedelta(minutes=7)
        make_ledger_row(actors.tenant, actors.key, created_at=at, technique="miss", cost_usd=Decimal("0.002"),
                        counterfactual_usd=Decimal("0.002"), prompt_tokens=100, completion_tokens=50)
        make_ledger_row(actors.tenant, actors.key, created_at=at, technique="semantic", cost_usd=Decimal(0),
                        counterfactual_usd=Decimal("0.003"), saved_usd=Decimal("0.003"), tokens_saved=150,
                        prompt_tokens=0, completion_tokens=0, upstream_calls=0, similarity=0.93)
        make_ledger_row(actors.tenant, actors.key, created_at=at, technique="miss", model="gpt-4o",
                        served_model="gpt-4o-mini", cost_usd=Decimal("0.001"), counterfactual_usd=Decimal("0.004"),
                        saved_usd=Decimal("0.003"), routing_saved_usd=Decimal("0.003"),
                        prompt_opt_tokens_saved=12, tokens_saved=12, prompt_opt_saved_usd=Decimal("0.0001"))
    make_ledger_row(actors.tenant, actors.key, created_at=now - timedelta(seconds=1), technique="error",
                    status_code=502, cost_usd=Decimal(0), counterfactual_usd=Decimal(0), upstream_calls=1)
    make_ledger_row(actors.tenant, actors.key, created_at=now - timedelta(seconds=2), technique="exact",
                    cost_usd=Decimal(0), counterfactual_usd=Decimal("0.0005"), saved_usd=Decimal("0.0005"),
                    tokens_saved=40, upstream_calls=0)


def _assert_matches_summary(tenant_id: int, start, end, now) -> figures.Overview:  # type: ignore[no-untyped-def]
    data = figures.overview(tenant_id, start, end, now)
    want = analytics.summary(tenant_id, rollups.period_start("hour", start), end)
    t = data.totals
    assert t.requests == want["requests"]
    assert t.upstream_calls == want["upstream_calls"]
    assert t.prompt_tokens == want["prompt_tokens"] and t.completion_tokens == want["completion_tokens"]
    assert float(t.cost_usd) == pytest.approx(want["cost_usd"])
    assert float(t.saved_usd) == pytest.approx(want["saved_usd"])
    assert t.tokens_saved == want["tokens_saved"]
    assert t.hit_rate == pytest.approx(want["hit_rate"], abs=1e-4)
    assert t.saved_percent == pytest.approx(want["saved_percent"], abs=0.01)
    by = {row["technique"]: row for row in data.by_technique}
    for technique, figs in want["by_technique"].items():
        assert float(by[technique]["saved_usd"]) == pytest.approx(figs["saved_usd"]), technique
        assert by[technique]["tokens_saved"] == figs["tokens_saved"], technique
    return data


def test_figures_match_the_ledger_live_rolled_and_mixed(actors: Actors) -> None:
    now = timezone.now()
    _seed(actors, now)
    start, end = now - timedelta(days=1), now + timedelta(seconds=1)
    live = _assert_matches_summary(actors.tenant.pk, start, end, now)
    assert live.live_from == rollups.period_start("hour", start)  # no rollups: all live
    hour = rollups.period_start("hour", now)
    for h in range(3, 6):  # roll up the three oldest hours only: the rest stays live
        rollups.rollup(actors.tenant.pk, "hour", hour - timedelta(hours=h))
    mixed = _assert_matches_summary(actors.tenant.pk, start, end, now)
    assert mixed.live_from == hour - timedelta(hours=2)
    rollups.rollup_range("hour", hour - timedelta(hours=6), hour + timedelta(hours=1), [actors.tenant.pk])
    rolled = _assert_matches_summary(actors.tenant.pk, start, end, now)
    assert rolled.live_from == hour  # the open hour is always live, even when it has a rollup
    # A rollup computed before its hour closed is incomplete: that hour is read live instead.
    from optimizer.models import UsageRollup

    UsageRollup.objects.filter(tenant=actors.tenant, start=hour - timedelta(hours=1)).update(
        computed_at=hour - timedelta(minutes=5))
    late = make_ledger_row(actors.tenant, actors.key, created_at=hour - timedelta(seconds=30),
                           cost_usd=Decimal("0.5"), counterfactual_usd=Decimal("0.5"))
    partial = _assert_matches_summary(actors.tenant.pk, start, end, now)
    assert partial.live_from == hour - timedelta(hours=1)
    assert partial.totals.requests == rolled.totals.requests + 1 and late.cost_usd == Decimal("0.5")
    assert sum(b.totals.requests for b in rolled.buckets) == rolled.totals.requests
    assert len(rolled.buckets) == 25 and rolled.bucket_size == timedelta(hours=1)


def test_overview_page(actors: Actors) -> None:
    client = Client()
    client.force_login(actors.owner)
    actors.log.delete()
    page = client.get("/portal/")
    assert page.status_code == 200 and b'id="first-run"' in page.content
    assert b"http://testserver/v1" in page.content  # the exact base_url
    _seed(actors, timezone.now())
    actors.tenant.monthly_token_quota = 1000
    actors.tenant.monthly_spend_quota_usd = Decimal("1.00")
    actors.tenant.save()
    page = client.get("/portal/?period=24h")
    body = page.content.decode()
    assert page.status_code == 200 and 'id="figures"' in body
    assert 'id="fig-requests">17<' in body
    assert "<svg" in body and "<polyline" in body and "<rect" in body
    assert 'id="quotas"' in body and "Tokens this month" in body
    for period in ("7d", "30d", "90d"):
        assert client.get(f"/portal/?period={period}").status_code == 200
    today = timezone.now().astimezone(UTC).date()
    assert client.get(f"/portal/?period=custom&start={today - timedelta(days=3)}&end={today}").status_code == 200


@pytest.mark.parametrize("query", ["period=bogus", "period=custom", "period=custom&start=2026-05-02&end=2026-05-01",
                                   "period=custom&start=nope&end=2026-05-01", "period=custom&start=2020-01-01&end=2026-01-01"])
def test_bad_period_is_a_form_error(actors: Actors, query: str) -> None:
    client = Client()
    client.force_login(actors.member)
    response = client.get(f"/portal/?{query}")
    assert response.status_code == 400
    assert b"errorlist" in response.content
