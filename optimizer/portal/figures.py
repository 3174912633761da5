"""The overview's figures, from hourly rollups for closed hours and the ledger for the rest.

Reading 1M ledger rows per render is too slow, so closed hours come from `UsageRollup` (hour
rows, recomputed by the scheduled `optimizer.rollups.rollup_recent`). Hours after the tenant's
newest hourly rollup, and always the current hour, are read live from the ledger, so a request
shows up on the overview as soon as its ledger row is written, with or without the scheduler.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDay, TruncHour

from optimizer.analytics import CACHE_TECHNIQUES
from optimizer.models import SAVING_FIELDS, RequestLog, Technique, UsageRollup
from optimizer.rollups import period_start

HOUR = timedelta(hours=1)
# Summed per (hour, technique); the same names on UsageRollup and as ledger aggregates.
INT_FIELDS = ("requests", "errors", "upstream_calls", "prompt_tokens", "completion_tokens", "tokens_saved",
              "prompt_opt_tokens_saved", "routed_requests")
USD_FIELDS = ("cost_usd", "counterfactual_usd", "saved_usd", "prompt_opt_saved_usd", "routing_saved_usd")
FIELDS = INT_FIELDS + USD_FIELDS
TECHNIQUE_LABELS = dict(Technique.choices)


@dataclass
class Totals:
    """Sums over any set of (hour, technique) cells."""

    values: dict[str, Any] = field(default_factory=lambda: {**{f: 0 for f in INT_FIELDS},
                                                            **{f: Decimal(0) for f in USD_FIELDS}})
    hits: int = 0

    def add(self, row: dict[str, Any]) -> None:
        for name in FIELDS:
            self.values[name] += row.get(name) or 0
        self.hits += row.get("hits") or 0

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def hit_rate(self) -> float:
        return self.hits / self.values["requests"] if self.values["requests"] else 0.0

    @property
    def saved_percent(self) -> float:
        cf = self.values["counterfactual_usd"]
        return float(self.values["saved_usd"] / cf * 100) if cf else 0.0


@dataclass
class Bucket:
    start: datetime
    totals: Totals


@dataclass
class Overview:
    start: datetime
    end: datetime
    totals: Totals
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


_HITS = Q(technique__in=CACHE_TECHNIQUES)


# Aggregates are named s_<field>: an annotation may not reuse a model field's name.
def _rolled_sums() -> dict[str, Any]:
    return {**{f"s_{name}": Sum(name) for name in FIELDS}, "s_hits": Sum("requests", filter=_HITS)}


def _live_sums() -> dict[str, Any]:
    """Ledger aggregates named as the rollup's; savings by the ledger's one rule (the queryset
    needs `with_saving_rule()`), as the rollups count them."""
    counted = RequestLog.objects.counted_sum
    return {"s_requests": Count("id"), "s_errors": Count("id", filter=Q(status_code__gte=400)),
            "s_routed_requests": Count("id", filter=~Q(served_model=F("model")) & ~Q(served_model="")),
            "s_hits": Count("id", filter=_HITS),
            **{f"s_{name}": counted(name) if name in SAVING_FIELDS else Sum(name)
               for name in FIELDS if name not in ("requests", "errors", "routed_requests")}}


# The charts need only these per bucket; fewer columns, fewer per-row conversions.
_BUCKET_KEYS = ("s_requests", "s_hits", "s_cost_usd", "s_saved_usd")


def _only(sums: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sums.items() if k in _BUCKET_KEYS}


def _strip(rows: Any) -> list[dict[str, Any]]:
    return [{k[2:] if k.startswith("s_") else k: v for k, v in row.items()} for row in rows]


def _groups(tenant_id: int, start: datetime, end: datetime, live_from: datetime,
            size: timedelta) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sums per technique and per bucket, summed in the database (a few dozen rows come back):
    hourly rollups for [start, live_from), the ledger for [live_from, end)."""
    by_technique: list[dict[str, Any]] = []
    by_bucket: list[dict[str, Any]] = []
    if live_from > start:
        rolled = UsageRollup.objects.filter(tenant_id=tenant_id, period=UsageRollup.Period.HOUR,
                                            start__gte=start, start__lt=live_from)
        by_technique += _strip(rolled.values("technique").annotate(**_rolled_sums()).order_by())
        # Grouped by the plain hour column (an index range, no per-row date function, which
        # SQLite evaluates in Python); days are folded from hours by the caller.
        by_bucket += _strip(rolled.annotate(bucket=F("start")).values("bucket")
                            .annotate(**_only(_rolled_sums())).order_by())
    if live_from < end:
        live = (RequestLog.objects.filter(tenant_id=tenant_id, created_at__gte=live_from, created_at__lt=end)
                .with_saving_rule())
        by_technique += _strip(live.values("technique").annotate(**_live_sums()).order_by())
        trunc = TruncHour if size == HOUR else TruncDay
        by_bucket += _strip(live.annotate(bucket=trunc("created_at", tzinfo=UTC)).values("bucket")
                            .annotate(**_only(_live_sums())).order_by())
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
    totals = Totals()
    per_technique: dict[str, Totals] = defaultdict(Totals)
    for row in technique_rows:
        totals.add(row)
        per_technique[row["technique"]].add(row)
    per_bucket: dict[datetime, Totals] = defaultdict(Totals)
    for row in bucket_rows:
        moment = row["bucket"].astimezone(UTC)
        per_bucket[moment if size == HOUR else moment.replace(hour=0)].add(row)
    buckets = []
    cursor = start if size == HOUR else start.replace(hour=0)
    while cursor < end:
        buckets.append(Bucket(cursor, per_bucket.get(cursor) or Totals()))
        cursor += size
    wrong = RequestLog.objects.filter(tenant_id=tenant_id, created_at__gte=start, created_at__lt=end).marked_wrong()
    return Overview(start, end, totals, _by_technique(per_technique, totals), buckets, size, live_from,
                    marked_wrong=wrong.count())


def _by_technique(per: dict[str, Totals], totals: Totals) -> list[dict[str, Any]]:
    """The saving split by what earned it, as /v1/analytics splits it: a cache technique's own
    saving is net of what prompt optimization and routing saved on the same rows."""
    rows = []
    for technique, t in sorted(per.items(), key=lambda item: -item[1].requests):
        own_usd = t.saved_usd - t.prompt_opt_saved_usd - t.routing_saved_usd
        own_tokens = t.tokens_saved - t.prompt_opt_tokens_saved
        rows.append({"technique": technique, "label": TECHNIQUE_LABELS.get(technique, technique),
                     "requests": t.requests, "tokens_saved": own_tokens if technique in CACHE_TECHNIQUES else 0,
                     "saved_usd": own_usd if technique in CACHE_TECHNIQUES else Decimal(0)})
    if totals.prompt_opt_tokens_saved:
        rows.append({"technique": "prompt_optimization", "label": "Prompt optimization", "requests": None,
                     "tokens_saved": totals.prompt_opt_tokens_saved, "saved_usd": totals.prompt_opt_saved_usd})
    if totals.routed_requests:
        # Routing changes the model of a request that is already counted in its technique's row.
        rows.append({"technique": "routing", "label": "Model routing", "requests": totals.routed_requests,
                     "tokens_saved": 0, "saved_usd": totals.routing_saved_usd, "also_above": True})
    return rows


def has_traffic(tenant_id: int) -> bool:
    return RequestLog.objects.filter(tenant_id=tenant_id).exists()
