"""A tenant's figures for a period, straight from the ledger: `GET /v1/analytics` and the portal's
breakdown page read this.

`summary` gives the totals; `breakdown` the same figures per model, key, end user (the OpenAI
`user` field) or tag value, with latency percentiles from optimizer/latency.py. Savings follow the
ledger's one rule (`RequestLog.objects.with_saving_rule()`: a semantic hit marked wrong saved
nothing). The portal's overview has its own reader (`optimizer.portal.figures`: hourly rollups for
closed hours, the ledger for the rest, since a million rows per render is too slow).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Expression, F, Q, QuerySet, Sum, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, NullIf

from . import latency
from .models import RequestLog, Technique

CACHE_TECHNIQUES = (Technique.EXACT, Technique.SEMANTIC, Technique.DEDUP, Technique.DECOMPOSED)


def _money(value: Any) -> float:
    return float(round(Decimal(value or 0), 8))


def ledger(tenant_id: int, start: datetime | None, end: datetime | None) -> QuerySet[RequestLog]:
    qs = RequestLog.objects.filter(tenant_id=tenant_id).with_saving_rule()
    if start:
        qs = qs.filter(created_at__gte=start)
    if end:
        qs = qs.filter(created_at__lt=end)
    return qs


def summary(tenant_id: int, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    qs = ledger(tenant_id, start, end)
    counted = RequestLog.objects.counted_sum
    totals = qs.aggregate(
        requests=Count("id"), upstream_calls=Sum("upstream_calls"), prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"), cost_usd=Sum("cost_usd"),
        counterfactual_usd=Sum("counterfactual_usd"), saved_usd=counted("saved_usd"), tokens_saved=counted("tokens_saved"),
        errors=Count("id", filter=Q(status_code__gte=400)),
        hits=Count("id", filter=Q(technique__in=CACHE_TECHNIQUES)),
    )
    # A tenant's own provider served a model with no price: its cost is unknown, so not in cost_usd.
    unpriced = qs.filter(cost_usd__isnull=True).count()
    by_technique: dict[str, dict[str, Any]] = {}
    # Cache techniques: their saving net of what prompt optimization and routing saved on the same rows.
    for row in qs.filter(technique__in=CACHE_TECHNIQUES).values("technique").annotate(
            requests=Count("id"), tokens=counted(F("tokens_saved") - F("prompt_opt_tokens_saved")),
            usd=counted(F("saved_usd") - F("prompt_opt_saved_usd") - F("routing_saved_usd"))):
        by_technique[row["technique"]] = {"requests": row["requests"], "tokens_saved": int(row["tokens"] or 0),
                                          "saved_usd": _money(row["usd"])}
    opt = qs.filter(prompt_opt_tokens_saved__gt=0).aggregate(
        requests=Count("id"), tokens=counted("prompt_opt_tokens_saved"), usd=counted("prompt_opt_saved_usd"))
    if opt["requests"]:
        by_technique["prompt_optimization"] = {"requests": opt["requests"], "tokens_saved": int(opt["tokens"] or 0),
                                               "saved_usd": _money(opt["usd"])}
    routed = qs.exclude(served_model=F("model")).exclude(served_model="").aggregate(
        requests=Count("id"), usd=counted("routing_saved_usd"))
    if routed["requests"]:
        by_technique["routing"] = {"requests": routed["requests"], "tokens_saved": 0,
                                   "saved_usd": _money(routed["usd"])}
    requests = totals["requests"] or 0
    counterfactual = Decimal(totals["counterfactual_usd"] or 0)
    saved = Decimal(totals["saved_usd"] or 0)
    return {
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "requests": requests,
        "upstream_calls": int(totals["upstream_calls"] or 0),
        "errors": totals["errors"] or 0,
        "prompt_tokens": int(totals["prompt_tokens"] or 0),
        "completion_tokens": int(totals["completion_tokens"] or 0),
        "cost_usd": _money(totals["cost_usd"]),
        "unpriced_requests": unpriced,
        "counterfactual_usd": _money(counterfactual),
        "saved_usd": _money(saved),
        "saved_percent": float(round(saved / counterfactual * 100, 2)) if counterfactual else 0.0,
        "tokens_saved": int(totals["tokens_saved"] or 0),
        "hit_rate": round((totals["hits"] or 0) / requests, 4) if requests else 0.0,
        "by_technique": by_technique,
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
    # Annotations may not reuse a model field's name, hence s_.
    rows = [{k.removeprefix("s_"): v for k, v in r.items()} for r in qs.values("g").annotate(
        s_requests=Count("id"), s_upstream_calls=Sum("upstream_calls"), s_prompt_tokens=Sum("prompt_tokens"),
        s_completion_tokens=Sum("completion_tokens"), s_cost_usd=Sum("cost_usd"),
        s_counterfactual_usd=Sum("counterfactual_usd"), s_saved_usd=RequestLog.objects.counted_sum("saved_usd"),
        s_tokens_saved=RequestLog.objects.counted_sum("tokens_saved"), s_errors=Count("id", filter=Q(status_code__gte=400)),
        s_hits=Count("id", filter=Q(technique__in=CACHE_TECHNIQUES)),
        s_unpriced=Count("id", filter=Q(cost_usd__isnull=True)),
    ).order_by("-s_requests", "g")[:limit + 1]]
    truncated = len(rows) > limit
    rows = rows[:limit]
    values = [r["g"] for r in rows]
    hists: dict[str, dict[Any, latency.Histogram]] = {prefix: defaultdict(latency.Histogram)
                                                      for prefix, _ in LATENCY_COLUMNS}
    techniques: dict[Any, dict[str, dict[str, Any]]] = defaultdict(dict)
    if rows:
        chosen = qs.filter(Q(g__in=[v for v in values if v is not None]) |
                           (Q(g__isnull=True) if None in values else Q(pk__in=[])))
        for prefix, column in LATENCY_COLUMNS:
            for r in (chosen.annotate(b=latency.bucket_expression(column)).values("g", "b")
                      .annotate(n=Count("id")).order_by()):
                hists[prefix][r["g"]][r["b"]] += r["n"]
        for r in (chosen.filter(technique__in=CACHE_TECHNIQUES).values("g", "technique").annotate(
                n=Count("id"), tokens=RequestLog.objects.counted_sum(F("tokens_saved") - F("prompt_opt_tokens_saved")),
                usd=RequestLog.objects.counted_sum(F("saved_usd") - F("prompt_opt_saved_usd")
                                                   - F("routing_saved_usd"))).order_by()):
            techniques[r["g"]][r["technique"]] = {"requests": r["n"], "tokens_saved": int(r["tokens"] or 0),
                                                  "saved_usd": _money(r["usd"])}
    groups = []
    for r in rows:
        figures: dict[str, Any] = {
            "value": r["g"], "requests": r["requests"], "upstream_calls": int(r["upstream_calls"] or 0),
            "errors": r["errors"], "prompt_tokens": int(r["prompt_tokens"] or 0),
            "completion_tokens": int(r["completion_tokens"] or 0), "cost_usd": _money(r["cost_usd"]),
            "unpriced_requests": r["unpriced"], "counterfactual_usd": _money(r["counterfactual_usd"]),
            "saved_usd": _money(r["saved_usd"]), "tokens_saved": int(r["tokens_saved"] or 0),
            "hit_rate": round(r["hits"] / r["requests"], 4) if r["requests"] else 0.0,
            "by_technique": techniques.get(r["g"], {}),
        }
        for prefix, _ in LATENCY_COLUMNS:
            figures.update(latency.percentiles(hists[prefix][r["g"]], prefix))
        groups.append(figures)
    return {"group_by": str(group_by), "groups": groups, "groups_truncated": truncated}
