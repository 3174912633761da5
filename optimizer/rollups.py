"""Usage rollups: ledger totals per tenant, hour or day (UTC) and technique, recomputed idempotently.

`rollup(tenant_id, period, start)` replaces one period's rows inside one transaction (delete, then
insert what the ledger says now), so rerunning a period gives the same rows and nothing double
counts. The ledger is written behind and a row's `created_at` is when its request *started*, so a
long stream can land in an hour that was already rolled up; `stale_periods` finds such periods by
comparing each period's ledger row count and newest row with its rollup, and `rollup_recent` (the
scheduled job) recomputes those plus the last few periods every run.

A rollup row holds the ledger's own totals (`RequestLog.objects....totals_by`, savings by the
saving rule), so what reads rollups (the overview's closed hours, billing's days) only adds them
up, in `rolled_totals`: no total is defined here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from tenants.models import Tenant

from . import latency
from .models import CACHE_TECHNIQUES, Feedback, LatencyRollup, LedgerTotals, RequestLog, Technique, UsageRollup

Period = UsageRollup.Period
LENGTH = {Period.HOUR: timedelta(hours=1), Period.DAY: timedelta(days=1)}
_TRUNC = {Period.HOUR: TruncHour, Period.DAY: TruncDay}

# The ledger totals a rollup row stores, one column each (hits follow from the row's technique).
STORED = ("requests", "errors", "routed_requests", "upstream_calls", "prompt_tokens", "completion_tokens",
          "tokens_saved", "cost_usd", "counterfactual_usd", "saved_usd", "prompt_opt_tokens_saved",
          "prompt_opt_saved_usd", "routing_saved_usd")


def period_start(period: str, moment: datetime) -> datetime:
    """The UTC start of the hour or day that contains `moment`."""
    moment = moment.astimezone(UTC)
    if period == Period.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    if period == Period.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown period {period!r}")


def _check_start(period: str, start: datetime) -> datetime:
    if timezone.is_naive(start):
        raise ValueError("start must be timezone-aware")
    aligned = period_start(period, start)
    if aligned != start:
        raise ValueError(f"{start.isoformat()} is not the start of a {period}")
    return aligned


def _ledger(tenant_id: int, start: datetime, end: datetime) -> dict[str, LedgerTotals]:
    """technique -> the ledger's totals of the period's rows."""
    rows = RequestLog.objects.for_tenant(tenant_id).between(start, end).totals_by("technique", names=STORED)
    return {row["technique"]: LedgerTotals.from_row(row) for row in rows.order_by("technique")}


def rolled_totals(rows: QuerySet[UsageRollup], *fields: str) -> QuerySet[UsageRollup, dict[str, Any]]:
    """`values(*fields)` rows of rollups, each with its group's totals by name, as
    `RequestLog.objects.totals_by` gives them for ledger rows (read them with `LedgerTotals.from_row`)."""
    # hits first: once `requests` names the sum, "requests" in a later aggregate would mean it.
    return (rows.values(*fields).annotate(hits=Sum("requests", filter=Q(technique__in=CACHE_TECHNIQUES)),
                                          **{name: Sum(name) for name in STORED})
            .order_by())


def daily_totals(tenant_id: int, start: datetime, end: datetime) -> dict[datetime, LedgerTotals]:
    """Day start -> the tenant's totals of that UTC day, for the days in [start, end) that are
    rolled up (billing reads these, after refreshing stale days)."""
    days = UsageRollup.objects.filter(tenant_id=tenant_id, period=Period.DAY, start__gte=start, start__lt=end)
    return {row["start"]: LedgerTotals.from_row(row) for row in rolled_totals(days, "start")}


def _histogram(tenant_id: int, start: datetime, end: datetime) -> dict[str, int]:
    """The period's latency histogram, bucketed in the database (a few dozen rows come back)."""
    qs = RequestLog.objects.filter(tenant_id=tenant_id, created_at__gte=start, created_at__lt=end)
    return latency.to_json({row["b"]: row["n"] for row in qs.annotate(b=latency.bucket_expression("latency_ms"))
                            .values("b").annotate(n=Count("id")).order_by()})


def rollup(tenant_id: int, period: str, start: datetime) -> list[UsageRollup]:
    """Recompute one tenant's rows for one hour or day; returns the rows now stored (one per technique).

    Idempotent: the period's rows are deleted and re-inserted in one transaction, so concurrent
    readers see the old rows or the new ones, never a mix. The tenant row is locked (PostgreSQL) so
    two workers recomputing the same tenant queue up rather than collide on the unique constraint.
    """
    start = _check_start(period, start)
    end = start + LENGTH[Period(period)]
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant_id).exists()
        rows = [UsageRollup(tenant_id=tenant_id, period=period, start=start, technique=technique,
                            **{name: getattr(totals, name) for name in STORED})
                for technique, totals in _ledger(tenant_id, start, end).items()]
        UsageRollup.objects.filter(tenant_id=tenant_id, period=period, start=start).delete()
        LatencyRollup.objects.filter(tenant_id=tenant_id, period=period, start=start).delete()
        if rows:
            LatencyRollup.objects.create(tenant_id=tenant_id, period=period, start=start,
                                         histogram=_histogram(tenant_id, start, end))
        return UsageRollup.objects.bulk_create(rows)


def rollup_range(period: str, start: datetime, end: datetime, tenant_ids: Iterable[int] | None = None) -> int:
    """Recompute every period in [start, end) that has ledger rows or rollups; returns periods done."""
    first = period_start(period, start)
    ids = list(tenant_ids) if tenant_ids is not None else None
    keys = _ledger_periods(period, first, end, ids).keys() | _rollup_periods(period, first, end, ids).keys()
    for tenant_id, p in sorted(keys):
        rollup(tenant_id, period, p)
    return len(keys)


def _ledger_periods(period: str, start: datetime, end: datetime,
                    tenant_ids: Iterable[int] | None) -> dict[tuple[int, datetime], tuple[int, datetime]]:
    """(tenant, period start) -> (ledger rows, newest created_at), for periods with ledger rows."""
    qs = RequestLog.objects.filter(created_at__gte=start, created_at__lt=end)
    if tenant_ids is not None:
        qs = qs.filter(tenant_id__in=list(tenant_ids))
    trunc = _TRUNC[Period(period)]("created_at", tzinfo=UTC)
    return {(r["tenant_id"], r["p"]): (r["n"], r["last"])
            for r in qs.annotate(p=trunc).values("tenant_id", "p").annotate(n=Count("id"), last=Max("created_at"))
            .order_by()}


def _rollup_periods(period: str, start: datetime, end: datetime,
                    tenant_ids: Iterable[int] | None) -> dict[tuple[int, datetime], tuple[int, datetime]]:
    """(tenant, period start) -> (requests counted, oldest computed_at), for periods with rollups."""
    qs = UsageRollup.objects.filter(period=period, start__gte=start, start__lt=end)
    if tenant_ids is not None:
        qs = qs.filter(tenant_id__in=list(tenant_ids))
    return {(r["tenant_id"], r["start"]): (r["n"], r["computed"])
            for r in qs.values("tenant_id", "start").annotate(n=Sum("requests"), computed=Min("computed_at"))
            .order_by()}


def stale_periods(period: str, start: datetime, end: datetime,
                  tenant_ids: Iterable[int] | None = None) -> set[tuple[int, datetime]]:
    """Periods in [start, end) whose rollup no longer matches the ledger.

    A period is stale when its ledger row count differs from the requests its rollup counted
    (late or removed rows), when its newest ledger row is newer than its rollup, or when it has
    ledger rows and no rollup at all. Counting is exact: ledger rows are only ever inserted.
    """
    first = period_start(period, start)
    ids = list(tenant_ids) if tenant_ids is not None else None
    ledger = _ledger_periods(period, first, end, ids)
    rolled = _rollup_periods(period, first, end, ids)
    stale: set[tuple[int, datetime]] = set()
    for key in ledger.keys() | rolled.keys():
        n_ledger, newest = ledger.get(key, (0, None))
        n_rolled, computed = rolled.get(key, (0, None))
        if n_ledger != n_rolled or (newest is not None and (computed is None or newest > computed)):
            stale.add(key)
    return stale


@dataclass(frozen=True)
class RecentResult:
    hours: int
    days: int


def rollup_recent(now: datetime | None = None, *, recent_hours: int = 3, recent_days: int = 2,
                  scan_days: int = 3, tenant_ids: Iterable[int] | None = None) -> RecentResult:
    """The scheduled job: recompute the last `recent_hours` hours and `recent_days` days, and any
    period of the last `scan_days` days that `stale_periods` finds (late ledger rows).

    A ledger row lands within seconds of its request's end, and a request lasts at most the
    upstream read timeout, so three days of staleness checks is ample; the check is one grouped
    scan of that window of the ledger, so it is kept short. Billing checks its own window again,
    per tenant, before it sends a day (billing/stripe_sync.py).
    """
    now = now or timezone.now()
    ids = list(tenant_ids) if tenant_ids is not None else None
    done = {}
    for period, recent in ((Period.HOUR, recent_hours), (Period.DAY, recent_days)):
        end = period_start(period, now) + LENGTH[period]
        recent_start = end - recent * LENGTH[period]
        keys = stale_periods(period, now - timedelta(days=scan_days), end, ids)
        keys |= _ledger_periods(period, recent_start, end, ids).keys()
        keys |= _rollup_periods(period, recent_start, end, ids).keys()
        for tenant_id, p in sorted(keys):
            rollup(tenant_id, period, p)
        done[period] = len(keys)
    return RecentResult(hours=done[Period.HOUR], days=done[Period.DAY])


def refresh_periods_of(tenant_id: int, moment: datetime) -> None:
    """Recompute the hour and the day holding `moment`, where they were already rolled up."""
    for period in (Period.HOUR, Period.DAY):
        start = period_start(period, moment)
        if UsageRollup.objects.filter(tenant_id=tenant_id, period=period, start=start).exists():
            rollup(tenant_id, period, start)


@receiver(post_save, sender=Feedback, dispatch_uid="leo_rollup_after_feedback")
def _refresh_after_feedback(sender: type[Feedback], instance: Feedback, **kwargs: object) -> None:
    """A verdict on a semantic hit changes what it saved (RequestLogQuerySet.with_saving_rule), and
    `stale_periods` cannot see that (no ledger row changed), so its hour and day are recomputed
    here, once the verdict is committed; billing then sends the difference for a day already sent."""
    row = (RequestLog.objects.filter(pk=instance.request_log_id, technique=Technique.SEMANTIC)
           .values_list("tenant_id", "created_at").first())
    if row is not None:
        transaction.on_commit(lambda: refresh_periods_of(*row))
