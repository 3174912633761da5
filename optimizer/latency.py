"""Latency percentiles from log-bucket histograms, computed the same way in SQL and in Python.

Percentiles cannot be summed, but histograms can: `LatencyRollup` keeps one per tenant and hour,
so the overview merges a few hundred small histograms instead of reading a million ledger rows,
and `/v1/analytics` groups the ledger by (group, bucket) in the database on PostgreSQL and SQLite
alike. Bucket b >= 1 holds [RATIO**(b-1), RATIO**b) milliseconds and reports its geometric middle,
so a percentile is within 5% of the exact value; bucket 0 holds (0, 1) ms and reports 0.5, and
bucket -1 holds exactly zero (no upstream wait, as on a cache hit) and reports 0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

from django.db.models import Case, ExpressionWrapper, F, IntegerField, Value, When
from django.db.models.functions import Floor, Ln

RATIO = 1.1
_LN_RATIO = math.log(RATIO)
PERCENTILES = (("p50", 0.50), ("p95", 0.95))

Histogram = Counter[int]


def bucket_of(ms: float) -> int:
    return -1 if ms <= 0 else 0 if ms < 1 else 1 + int(math.log(ms) / _LN_RATIO)


def bucket_expression(column: str) -> Case:
    """The bucket of a ledger column, as a database expression (same rule as `bucket_of`)."""
    index = ExpressionWrapper(Floor(Ln(F(column)) / Value(_LN_RATIO)) + Value(1), output_field=IntegerField())
    return Case(When(**{f"{column}__lte": 0}, then=Value(-1)), When(**{f"{column}__lt": 1}, then=Value(0)),
                default=index, output_field=IntegerField())


def _middle(bucket: int) -> float:
    return 0.0 if bucket < 0 else 0.5 if bucket == 0 else RATIO ** (bucket - 0.5)


def merge(histograms: Iterable[Mapping[str | int, int]]) -> Histogram:
    """Sum histograms; keys may be strings (they come back from JSON that way)."""
    total: Histogram = Counter()
    for h in histograms:
        for key, n in h.items():
            total[int(key)] += n
    return total


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (nearest rank) in milliseconds, rounded to 0.1 ms; None for no data."""
    count = sum(hist.values())
    if not count:
        return None
    rank = max(1, math.ceil(q * count))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return round(_middle(bucket), 1)
    return round(_middle(max(hist)), 1)  # unreachable; keeps the type checker content


def percentiles(hist: Mapping[int, int], prefix: str = "latency") -> dict[str, float | None]:
    """{"latency_p50_ms": .., "latency_p95_ms": ..} for a histogram."""
    return {f"{prefix}_{name}_ms": percentile(hist, q) for name, q in PERCENTILES}


def to_json(hist: Mapping[int, int]) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(hist.items()) if v}

