"""#15.7: the cache page's hits count every kind of hit, the by-technique table adds up, and a
semantic hit marked wrong is not a saving anywhere (overview, /v1/analytics' summary, rollups and
so billing), with one rule: RequestLog.objects.with_saving_rule()."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from optimizer import analytics, rollups
from optimizer.models import Feedback, RequestLog, UsageRollup
from optimizer.portal import figures
from tests.portal_helpers import Actors, build_actors, make_ledger_row

pytestmark = pytest.mark.django_db(transaction=True)  # the rollup refresh runs on commit


def _hit(actors: Actors, technique: str, at, saved: str = "0.003", tokens: int = 150):  # type: ignore[no-untyped-def]
    return make_ledger_row(actors.tenant, actors.key, created_at=at, technique=technique, cost_usd=Decimal(0),
                           counterfactual_usd=Decimal(saved), saved_usd=Decimal(saved), tokens_saved=tokens,
                           upstream_calls=0, similarity=0.93 if technique == "semantic" else None)


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_cache_page_hits_count_every_kind_of_hit() -> None:
    actors = build_actors()
    now = timezone.now()
    for technique in ("exact", "semantic", "decomposed", "dedup"):
        _hit(actors, technique, now - timedelta(minutes=5))
    page = _client(actors.owner).get("/portal/cache/").content.decode()
    hits = re.search(r'id="cache-hits">([\d,]+)<', page).group(1)
    listed = page.split('id="recent-hits"')[1].count("/feedback/")
    assert int(hits) == 5 == listed  # and build_actors' own exact hit
    for label in ("Exact cache", "Semantic cache", "Query decomposition", "In-flight deduplication"):
        assert label in page.split('id="recent-hits"')[1]


def test_by_technique_adds_up_to_the_request_count() -> None:
    actors = build_actors()
    now = timezone.now()
    _hit(actors, "semantic", now - timedelta(minutes=3))
    make_ledger_row(actors.tenant, actors.key, created_at=now - timedelta(minutes=2), model="gpt-4o",
                    served_model="gpt-4o-mini", routing_saved_usd=Decimal("0.001"), saved_usd=Decimal("0.001"))
    page = _client(actors.owner).get("/portal/?period=24h").content.decode()
    table = page.split('id="by-technique"')[1].split("</table>")[0]
    counted = [int(n.replace(",", "")) for n in re.findall(
        r'<tr data-technique="(?!routing|prompt_optimization)[^"]+">.*?<td class="num">([\d,]+)</td>', table, re.S)]
    total = int(re.search(r'id="by-technique-total">.*?<td class="num">([\d,]+)</td>', table, re.S).group(1))
    assert sum(counted) == total == RequestLog.objects.filter(tenant=actors.tenant).count()
    assert "also counted in a row above" in table  # the routing row says it is not extra


def test_semantic_hit_marked_wrong_is_not_a_saving() -> None:
    actors = build_actors()
    now = timezone.now()
    hour = rollups.period_start("hour", now)
    at = hour - timedelta(hours=2) + timedelta(minutes=5)  # a closed hour: read from its rollup
    wrong = _hit(actors, "semantic", at)
    _hit(actors, "semantic", at, saved="0.002", tokens=100)
    _hit(actors, "exact", at, saved="0.001", tokens=40)
    rollups.rollup(actors.tenant.pk, "hour", hour - timedelta(hours=2))
    rollups.rollup(actors.tenant.pk, "day", rollups.period_start("day", at))
    before = analytics.summary(actors.tenant.pk, None, None)
    assert before["tokens_saved"] == 290 and before["semantic_marked_wrong"] == 0

    # Marked wrong through the portal, as a user does it.
    response = _client(actors.owner).post(f"/portal/requests/{wrong.request_id}/feedback/", {"correct": "0"})
    assert response.status_code == 302
    assert Feedback.objects.get(request_log=wrong).correct is False

    after = analytics.summary(actors.tenant.pk, None, None)
    assert after["tokens_saved"] == 140 and after["saved_usd"] == pytest.approx(0.00301)
    assert after["requests"] == before["requests"] and after["semantic_marked_wrong"] == 1
    assert after["by_technique"]["semantic"]["tokens_saved"] == 100
    # The rollups (which billing reads) were recomputed when the verdict landed.
    day = UsageRollup.objects.get(tenant=actors.tenant, period="day", start=rollups.period_start("day", at),
                                  technique="semantic")
    assert day.tokens_saved == 100 and day.requests == 2
    # The overview, from rollups and from the live ledger alike.
    for start in (hour - timedelta(hours=3), at):
        data = figures.overview(actors.tenant.pk, start, now, now)
        assert data.totals.tokens_saved == 140 and data.marked_wrong == 1
    page = _client(actors.owner).get("/portal/?period=24h").content.decode()
    assert re.search(r'id="marked-wrong"><strong>1</strong> semantic hit in this period', page)
    # Marked right again: it counts again.
    _client(actors.owner).post(f"/portal/requests/{wrong.request_id}/feedback/", {"correct": "1"})
    assert analytics.summary(actors.tenant.pk, None, None)["tokens_saved"] == 290
    day = UsageRollup.objects.get(tenant=actors.tenant, period="day", start=day.start, technique="semantic")
    assert day.tokens_saved == 250


def test_exact_hit_marked_wrong_still_counts() -> None:
    """The rule is about semantic hits: an exact hit returns the stored answer to the same request."""
    actors = build_actors()
    row = _hit(actors, "exact", timezone.now() - timedelta(minutes=1))
    Feedback.objects.create(tenant=actors.tenant, request_log=row, correct=False)
    assert analytics.summary(actors.tenant.pk, None, None)["tokens_saved"] == 150
