"""The overview's figures, from hourly rollups for closed hours and the ledger for the rest.

Reading 1M ledger rows per render is too slow, so closed hours come from `UsageRollup` (hour
rows, recomputed by the scheduled `optimizer.rollups.rollup_recent`). Hours after the tenant's
newest hourly rollup, and always the current hour, are read live from the ledger, so a request
shows up on the overview as soon as its ledger row is written, with or without the scheduler.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F
from django.db.models.functions import TruncDay, TruncHour

from optimizer.models import CACHE_TECHNIQUES, LedgerTotals, RequestLog, Technique, UsageRollup
from optimizer.rollups import STORED, period_start, rolled_totals

HOUR = timedelta(hours=1)
TECHNIQUE_LABELS = dict(Technique.choices)
# The overview's totals: what rollups store, and the hits that follow from their technique.
OVERVIEW_TOTALS = (*STORED, "hits")
# The charts need only these per bucket; fewer columns, fewer per-row conversions.
BUCKET_TOTALS = ("requests", "hits", "cost_usd", "saved_usd")


@dataclass
class Bucket:
    start: datetime
    totals: LedgerTotals


@dataclass
class Overview:
    start: datetime
    end: datetime
    totals: LedgerTotals
    by_technique: list[dict[str, Any]]
    buckets: list[Bucket]
    bucket_size: timedelta
    live_from: datetime  # where rollups stop and the ledger is read directly
    marked_wrong: int = 0  # semantic hits marked wrong: counted as requests, not as savings


def _rollup_watermark(tenant_id: int, now: datetime) -> datetime | None:
    """The end of the newest hourly rollup computed after its hour closed, never past the current
    hour. A rollup computed while its hour was still open (the scheduled job also rolls the
    current hour) misses that hour's later rows, so such hours are read live until recomputed."""
    newest = (UsageRollup.objects.filter(tenant_id=tenant_id, period=UsageRollup.Period.HOUR,
                                         computed_at__gte=F("start") + HOUR)
              .order_by("-start").values_list("start", flat=True).first())
    if newest is None:
        return None
    return min(newest + HOUR, period_start("hour", now))


def _only(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: row[name] for name in names}


def _groups(tenant_id: int, start: datetime, end: datetime, live_from: datetime,
            size: timedelta) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Totals per technique and per bucket, summed in the database (a few dozen rows come back):
    hourly rollups for [start, live_from), the ledger for [live_from, end)."""
    by_technique: list[dict[str, Any]] = []
    by_bucket: list[dict[str, Any]] = []
    if live_from > start:
        rolled = UsageRollup.objects.filter(tenant_id=tenant_id, period=UsageRollup.Period.HOUR,
                                            start__gte=start, start__lt=live_from)
        by_technique += rolled_totals(rolled, "technique")
        # Grouped by the plain hour column (an index range, no per-row date function, which
        # SQLite evaluates in Python); days are folded from hours by the caller.
        by_bucket += [_only(row, ("start", *BUCKET_TOTALS)) for row in rolled_totals(rolled, "start")]
    if live_from < end:
        live = RequestLog.objects.for_tenant(tenant_id).between(live_from, end)
        by_technique += live.totals_by("technique", names=OVERVIEW_TOTALS)
        trunc = TruncHour if size == HOUR else TruncDay
        by_bucket += (live.annotate(start=trunc("created_at", tzinfo=UTC))
                      .totals_by("start", names=BUCKET_TOTALS))
    return by_technique, by_bucket


def bucket_size_for(start: datetime, end: datetime) -> timedelta:
    return HOUR if end - start <= timedelta(days=2) else timedelta(days=1)


def overview(tenant_id: int, start: datetime, end: datetime, now: datetime) -> Overview:
    """Figures for [start, end): `start` is floored to the hour (rollups are hourly)."""
    start = period_start("hour", start)
    watermark = _rollup_watermark(tenant_id, now)
    live_from = start if watermark is None else max(start, min(watermark, end))
    size = bucket_size_for(start, end)
    technique_rows, bucket_rows = _groups(tenant_id, start, end, live_from, size)
    totals = LedgerTotals()
    per_technique: dict[str, LedgerTotals] = defaultdict(LedgerTotals)
    for row in technique_rows:
        cell = LedgerTotals.from_row(row)
        totals += cell
        per_technique[row["technique"]] += cell
    per_bucket: dict[datetime, LedgerTotals] = defaultdict(LedgerTotals)
    for row in bucket_rows:
        moment = row["start"].astimezone(UTC)
        per_bucket[moment if size == HOUR else moment.replace(hour=0)] += LedgerTotals.from_row(row)
    buckets = []
    cursor = start if size == HOUR else start.replace(hour=0)
    while cursor < end:
        buckets.append(Bucket(cursor, per_bucket.get(cursor) or LedgerTotals()))
        cursor += size
    wrong = RequestLog.objects.for_tenant(tenant_id).between(start, end).marked_wrong()
    return Overview(start, end, totals, _by_technique(per_technique, totals), buckets, size, live_from,
                    marked_wrong=wrong.count())


def _by_technique(per: dict[str, LedgerTotals], totals: LedgerTotals) -> list[dict[str, Any]]:
    """The saving split by what earned it, as /v1/analytics splits it (`analytics.by_technique`):
    a cache technique's own saving (`LedgerTotals.own_saved_usd`), then prompt optimization and
    routing; every technique gets a row, so the requests add up."""
    rows = []
    for technique, t in sorted(per.items(), key=lambda item: -item[1].requests):
        cached = technique in CACHE_TECHNIQUES
        rows.append({"technique": technique, "label": TECHNIQUE_LABELS.get(technique, technique),
                     "requests": t.requests, "tokens_saved": t.own_tokens_saved if cached else 0,
                     "saved_usd": t.own_saved_usd if cached else Decimal(0)})
    if totals.prompt_opt_tokens_saved:
        rows.append({"technique": "prompt_optimization", "label": "Prompt optimization", "requests": None,
                     "tokens_saved": totals.prompt_opt_tokens_saved, "saved_usd": totals.prompt_opt_saved_usd})
    if totals.routed_requests:
        # Routing changes the model of a request that is already counted in its technique's row.
        rows.append({"technique": "routing", "label": "Model routing", "requests": totals.routed_requests,
                     "tokens_saved": 0, "saved_usd": totals.routing_saved_usd, "also_above": True})
    return rows


def has_traffic(tenant_id: int) -> bool:
    return RequestLog.objects.for_tenant(tenant_id).exists()
