"""The overview's latency figures: p50 and p95 of total request latency, per bucket and overall.

Percentiles come from histograms (optimizer/latency.py): closed hours from the hourly
`LatencyRollup` rows, the rest from the ledger bucketed in the database, split at the same point
as the other overview figures (`figures.live_from`), so the page stays within its time budget at
a million ledger rows (one small histogram per hour). Hours rolled up before histograms existed
have none and count as no data until recomputed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count
from django.db.models.functions import TruncDay, TruncHour

from optimizer import latency
from optimizer.models import LatencyRollup, RequestLog, UsageRollup

from .figures import HOUR


@dataclass
class LatencySeries:
    p50: list[float | None]
    p95: list[float | None]
    total_p50: float | None
    total_p95: float | None


def series(tenant_id: int, times: list[datetime], size: timedelta, start: datetime, end: datetime,
           live_from: datetime) -> LatencySeries:
    """Percentiles per bucket of `times` (bucket starts, as the overview lays them out)."""
    per: dict[datetime, latency.Histogram] = defaultdict(latency.Histogram)

    def slot(moment: datetime) -> datetime:
        moment = moment.astimezone(UTC)
        return moment if size == HOUR else moment.replace(hour=0)

    if live_from > start:
        for hour, hist in LatencyRollup.objects.filter(tenant_id=tenant_id, period=UsageRollup.Period.HOUR,
                                                        start__gte=start, start__lt=live_from
                                                        ).values_list("start", "histogram"):
            target = per[slot(hour)]
            for key, n in hist.items():
                target[int(key)] += n
    if live_from < end:
        trunc = TruncHour if size == HOUR else TruncDay
        live = RequestLog.objects.filter(tenant_id=tenant_id, created_at__gte=live_from, created_at__lt=end)
        for row in (live.annotate(t=trunc("created_at", tzinfo=UTC), b=latency.bucket_expression("latency_ms"))
                    .values("t", "b").annotate(n=Count("id")).order_by()):
            per[slot(row["t"])][row["b"]] += row["n"]
    total = latency.merge(per.values())
    return LatencySeries(
        p50=[latency.percentile(per[t], 0.5) if t in per else None for t in times],
        p95=[latency.percentile(per[t], 0.95) if t in per else None for t in times],
        total_p50=latency.percentile(total, 0.5), total_p95=latency.percentile(total, 0.95))
