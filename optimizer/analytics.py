"""A tenant's figures for a period, straight from the ledger: `GET /v1/analytics` and the portal's
breakdown page read this.

`summary` gives the totals; `breakdown` the same figures per model, key, end user (the OpenAI
`user` field) or tag value, with latency percentiles from optimizer/latency.py. Every total is the
ledger's own (`RequestLog.objects....totals()`, optimizer/models/totals.py), savings included: a semantic
hit marked wrong saved nothing. The portal's overview reads the same totals through
`optimizer.portal.figures` (hourly rollups for closed hours, the ledger for the rest, since a
million rows per render is too slow).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Expression, F, Q, QuerySet, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, NullIf

from . import latency
from .models import CACHE_TECHNIQUES, LedgerTotals, RequestLog

def _money(value: Any) -> float:
    return float(round(Decimal(value or 0), 8))


def ledger(tenant_id: int, start: datetime | None, end: datetime | None) -> QuerySet[RequestLog]:
    return RequestLog.objects.for_tenant(tenant_id).between(start, end)


def _as_json(t: LedgerTotals) -> dict[str, Any]:
    """The totals as /v1/analytics shows them (a summary, or one group of a breakdown)."""
    return {
        "requests": t.requests,
        "upstream_calls": t.upstream_calls,
        "errors": t.errors,
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "cost_usd": _money(t.cost_usd),
        "unpriced_requests": t.unpriced_requests,
        "counterfactual_usd": _money(t.counterfactual_usd),
        "saved_usd": _money(t.saved_usd),
        "saved_percent": round(t.saved_percent, 2),
        "tokens_saved": t.tokens_saved,
        "hit_rate": round(t.hit_rate, 4),
    }


def by_technique(per_technique: Mapping[str, LedgerTotals], totals: LedgerTotals) -> dict[str, dict[str, Any]]:
    """The saving split by what earned it: each cache technique's own saving (net of what prompt
    optimization and routing saved on the same rows), then prompt optimization and routing."""
    out = {technique: {"requests": t.requests, "tokens_saved": t.own_tokens_saved, "saved_usd": _money(t.own_saved_usd)}
           for technique, t in per_technique.items() if technique in CACHE_TECHNIQUES}
    if totals.prompt_optimized_requests:
        out["prompt_optimization"] = {"requests": totals.prompt_optimized_requests,
                                      "tokens_saved": totals.prompt_opt_tokens_saved,
                                      "saved_usd": _money(totals.prompt_opt_saved_usd)}
    if totals.routed_requests:
        out["routing"] = {"requests": totals.routed_requests, "tokens_saved": 0,
                          "saved_usd": _money(totals.routing_saved_usd)}
    return out


def summary(tenant_id: int, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    qs = ledger(tenant_id, start, end)
    # One grouped query; the period's totals are the sum of its techniques' totals.
    per_technique = {row["technique"]: LedgerTotals.from_row(row) for row in qs.totals_by("technique")}
    totals = sum(per_technique.values(), LedgerTotals())
    return {
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        **_as_json(totals),
        "by_technique": by_technique(per_technique, totals),
        "semantic_marked_wrong": qs.marked_wrong().count(),
        **latency_percentiles(qs),
    }


LATENCY_COLUMNS = (("latency", "latency_ms"), ("upstream_latency", "upstream_latency_ms"),
                   ("overhead", "overhead_ms"))


def latency_percentiles(qs: QuerySet[RequestLog]) -> dict[str, float | None]:
    """latency_p50_ms, latency_p95_ms, upstream_latency_p.., overhead_p.. of a set of ledger rows."""
    out: dict[str, float | None] = {}
    for prefix, column in LATENCY_COLUMNS:
        hist = latency.merge([{r["b"]: r["n"]} for r in qs.annotate(b=latency.bucket_expression(column))
                              .values("b").annotate(n=Count("id")).order_by()])
        out.update(latency.percentiles(hist, prefix))
    return out


# --- breakdowns --------------------------------------------------------------------------------

MAX_GROUPS = 100
_TAG_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True)
class GroupBy:
    """What to group the ledger by: `model`, `key` (its prefix), `user` or `tag:NAME`."""

    kind: str
    tag: str = ""

    @classmethod
    def parse(cls, text: str) -> GroupBy:
        """Raises ValueError with a message fit for the client."""
        if text in ("model", "key", "user"):
            return cls(text)
        if text.startswith("tag:") and _TAG_NAME.fullmatch(text[4:]):
            return cls("tag", text[4:])
        raise ValueError("group_by must be model, key, user or tag:NAME (NAME: up to 64 letters, digits or _.:-).")

    def __str__(self) -> str:
        return f"tag:{self.tag}" if self.kind == "tag" else self.kind

    def expression(self) -> Expression | F:
        if self.kind == "tag":
            # The name taken literally, never as a path; cast so that lookups treat it as text, not JSON.
            return Cast(KeyTextTransform(self.tag, "tags"), TextField())
        if self.kind == "user":  # stored as "" when no `user` was sent: that is the null group
            return NullIf(F("end_user"), Value(""))
        return F({"model": "model", "key": "api_key__prefix"}[self.kind])


def breakdown(tenant_id: int, start: datetime | None, end: datetime | None, group_by: GroupBy,
              limit: int = MAX_GROUPS) -> dict[str, Any]:
    """The summary's figures per group, the busiest `limit` groups first. A row without the
    dimension (no key, no `user`, no such tag) falls in the group whose value is null."""
    qs = ledger(tenant_id, start, end).annotate(g=group_by.expression())
    rows = list(qs.totals_by("g").order_by("-requests", "g")[:limit + 1])
    truncated = len(rows) > limit
    rows = rows[:limit]
    values = [r["g"] for r in rows]
    hists: dict[str, dict[Any, latency.Histogram]] = {prefix: defaultdict(latency.Histogram)
                                                      for prefix, _ in LATENCY_COLUMNS}
    techniques: dict[Any, dict[str, LedgerTotals]] = defaultdict(dict)
    if rows:
        chosen = qs.filter(Q(g__in=[v for v in values if v is not None]) |
                           (Q(g__isnull=True) if None in values else Q(pk__in=[])))
        for prefix, column in LATENCY_COLUMNS:
            for r in (chosen.annotate(b=latency.bucket_expression(column)).values("g", "b")
                      .annotate(n=Count("id")).order_by()):
                hists[prefix][r["g"]][r["b"]] += r["n"]
        for r in chosen.filter(technique__in=CACHE_TECHNIQUES).totals_by("g", "technique"):
            techniques[r["g"]][r["technique"]] = LedgerTotals.from_row(r)
    groups = []
    for r in rows:
        totals = LedgerTotals.from_row(r)
        group: dict[str, Any] = {"value": r["g"], **_as_json(totals),
                                 "by_technique": by_technique(techniques.get(r["g"], {}), totals)}
        for prefix, _ in LATENCY_COLUMNS:
            group.update(latency.percentiles(hists[prefix][r["g"]], prefix))
        groups.append(group)
    return {"group_by": str(group_by), "groups": groups, "groups_truncated": truncated}
