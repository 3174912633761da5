"""Usage rollups (optimizer/rollups.py): totals match the ledger, reruns are idempotent, late rows
are found and picked up. Database only, no servers."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from optimizer import rollups
from optimizer.models import RequestLog, Technique, UsageRollup
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

H10 = datetime(2026, 3, 14, 10, tzinfo=UTC)
DAY = datetime(2026, 3, 14, tzinfo=UTC)
_ids = itertools.count()


def log(tenant: Tenant, at: datetime, technique: str = Technique.MISS, **fields: Any) -> RequestLog:
    values: dict[str, Any] = {
        "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": Decimal("0.00001500"),
        "counterfactual_usd": Decimal("0.00001500"), "saved_usd": Decimal("0"), "tokens_saved": 0,
        "upstream_calls": 1, "status_code": 200, "model": "gpt-4o-mini", "served_model": "gpt-4o-mini",
    }
    if technique in (Technique.EXACT, Technique.SEMANTIC):
        values.update(prompt_tokens=0, completion_tokens=0, cost_usd=Decimal("0"), upstream_calls=0,
                      tokens_saved=15, saved_usd=Decimal("0.00001500"))
    values.update(fields)
    return RequestLog.objects.create(request_id=f"req-{next(_ids)}", created_at=at, tenant=tenant,
                                     endpoint="chat", technique=technique, **values)


@pytest.fixture
def tenant() -> Tenant:
    return Tenant.create("Rollup Co")


def snapshot(tenant: Tenant, period: str, start: datetime) -> list[tuple[Any, ...]]:
    fields = ["technique", "requests", "errors", "upstream_calls", "prompt_tokens", "completion_tokens",
              "tokens_saved", "cost_usd", "counterfactual_usd", "saved_usd", "prompt_opt_tokens_saved",
              "prompt_opt_saved_usd", "routing_saved_usd", "routed_requests"]
    return list(UsageRollup.objects.filter(tenant=tenant, period=period, start=start)
                .order_by("technique").values_list(*fields))


def test_rollup_totals_by_technique_match_the_ledger(tenant: Tenant) -> None:
    log(tenant, H10 + timedelta(minutes=1))
    log(tenant, H10 + timedelta(minutes=2), prompt_opt_tokens_saved=4, tokens_saved=4,
        prompt_opt_saved_usd=Decimal("0.00000060"), saved_usd=Decimal("0.00000060"))
    log(tenant, H10 + timedelta(minutes=3), Technique.EXACT)
    log(tenant, H10 + timedelta(minutes=59, seconds=59), Technique.EXACT)
    log(tenant, H10 + timedelta(minutes=4), Technique.ERROR, status_code=502, upstream_calls=1,
        prompt_tokens=0, completion_tokens=0, cost_usd=Decimal("0"), counterfactual_usd=Decimal("0"))
    log(tenant, H10 + timedelta(minutes=5), model="gpt-4o", served_model="gpt-4o-mini",
        routing_saved_usd=Decimal("0.00010000"), saved_usd=Decimal("0.00010000"))
    log(tenant, H10 + timedelta(hours=1))  # the next hour: not in this one
    log(Tenant.create("Other"), H10 + timedelta(minutes=1))  # another tenant

    rows = {r.technique: r for r in rollups.rollup(tenant.id, "hour", H10)}

    assert set(rows) == {"miss", "exact", "error"}
    miss, exact, error = rows["miss"], rows["exact"], rows["error"]
    assert (miss.requests, miss.prompt_tokens, miss.completion_tokens, miss.upstream_calls) == (3, 30, 15, 3)
    assert miss.tokens_saved == 4 and miss.prompt_opt_tokens_saved == 4
    assert miss.prompt_opt_saved_usd == Decimal("0.00000060")
    assert miss.routing_saved_usd == Decimal("0.0001") and miss.routed_requests == 1
    assert miss.saved_usd == Decimal("0.00010060")
    assert (exact.requests, exact.tokens_saved, exact.cost_usd, exact.upstream_calls) == (2, 30, 0, 0)
    assert exact.saved_usd == Decimal("0.00003")
    assert (error.requests, error.errors) == (1, 1)


def test_rerunning_a_period_gives_the_same_rows(tenant: Tenant) -> None:
    for minute in range(0, 60, 7):
        log(tenant, H10 + timedelta(minutes=minute), Technique.EXACT if minute % 2 else Technique.MISS)
    rollups.rollup(tenant.id, "hour", H10)
    first = snapshot(tenant, "hour", H10)
    ids_before = UsageRollup.objects.filter(tenant=tenant).count()

    rollups.rollup(tenant.id, "hour", H10)
    rollups.rollup(tenant.id, "hour", H10)

    assert snapshot(tenant, "hour", H10) == first
    assert UsageRollup.objects.filter(tenant=tenant).count() == ids_before == 2


def test_day_equals_the_sum_of_its_hours(tenant: Tenant) -> None:
    for hour in (0, 5, 23):
        log(tenant, DAY + timedelta(hours=hour, minutes=30), Technique.EXACT)
        log(tenant, DAY + timedelta(hours=hour, minutes=31))
    log(tenant, DAY + timedelta(days=1))  # midnight belongs to the next day

    assert rollups.rollup_range("hour", DAY, DAY + timedelta(days=1)) == 3
    assert rollups.rollup_range("day", DAY, DAY + timedelta(days=1)) == 1

    hours = UsageRollup.objects.filter(tenant=tenant, period="hour")
    day = UsageRollup.objects.filter(tenant=tenant, period="day", start=DAY)
    assert sum(r.requests for r in hours) == sum(r.requests for r in day) == 6
    assert sum(r.tokens_saved for r in hours) == sum(r.tokens_saved for r in day) == 45
    assert not UsageRollup.objects.filter(tenant=tenant, period="day", start=DAY + timedelta(days=1)).exists()


def test_late_ledger_rows_are_found_and_picked_up(tenant: Tenant) -> None:
    log(tenant, H10 + timedelta(minutes=10), Technique.EXACT)
    now = H10 + timedelta(hours=12)
    rollups.rollup_recent(now, recent_hours=1, recent_days=1)
    assert sum(r.requests for r in UsageRollup.objects.filter(tenant=tenant, period="hour")) == 1
    assert rollups.stale_periods("hour", H10 - timedelta(days=1), now) == set()

    # A request that started at 10:59 but whose row was written after the hour was rolled up.
    log(tenant, H10 + timedelta(minutes=59), Technique.EXACT)

    assert rollups.stale_periods("hour", H10 - timedelta(days=1), now) == {(tenant.id, H10)}
    assert rollups.stale_periods("day", H10 - timedelta(days=1), now) == {(tenant.id, DAY)}
    # H10 is 12 hours back, outside the always-recomputed window: only the staleness check finds it.
    result = rollups.rollup_recent(now, recent_hours=1, recent_days=0, scan_days=2)
    assert result.hours == 1 and result.days == 1
    (hour,) = UsageRollup.objects.filter(tenant=tenant, period="hour", start=H10)
    (day,) = UsageRollup.objects.filter(tenant=tenant, period="day", start=DAY)
    assert hour.requests == day.requests == 2 and hour.tokens_saved == day.tokens_saved == 30
    assert rollups.stale_periods("hour", H10 - timedelta(days=1), now) == set()


def test_a_period_whose_ledger_rows_are_gone_loses_its_rollup(tenant: Tenant) -> None:
    row = log(tenant, H10)
    rollups.rollup(tenant.id, "hour", H10)
    row.delete()
    assert rollups.stale_periods("hour", H10, H10 + timedelta(hours=1)) == {(tenant.id, H10)}
    assert rollups.rollup(tenant.id, "hour", H10) == []
    assert not UsageRollup.objects.filter(tenant=tenant).exists()


def test_rollup_start_must_be_an_aligned_aware_period_start(tenant: Tenant) -> None:
    with pytest.raises(ValueError, match="not the start"):
        rollups.rollup(tenant.id, "hour", H10 + timedelta(minutes=1))
    with pytest.raises(ValueError, match="not the start"):
        rollups.rollup(tenant.id, "day", H10)
    with pytest.raises(ValueError, match="aware"):
        rollups.rollup(tenant.id, "hour", datetime(2026, 3, 14, 10))  # noqa: DTZ001
    with pytest.raises(ValueError):
        rollups.rollup(tenant.id, "week", DAY)
