"""`GET /v1/analytics`: a tenant's figures for a period, summed straight from its ledger rows.

Only the API reads this. The portal's overview has its own reader (`optimizer.portal.figures`:
hourly rollups for closed hours, the ledger for the rest, since a million rows per render is too
slow) and shares just `CACHE_TECHNIQUES` from here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum

from .models import RequestLog, Technique

CACHE_TECHNIQUES = (Technique.EXACT, Technique.SEMANTIC, Technique.DEDUP, Technique.DECOMPOSED)


def _money(value: Any) -> float:
    return float(round(Decimal(value or 0), 8))


def summary(tenant_id: int, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    qs = RequestLog.objects.filter(tenant_id=tenant_id).with_saving_rule()
    counted = RequestLog.objects.counted_sum
    if start:
        qs = qs.filter(created_at__gte=start)
    if end:
        qs = qs.filter(created_at__lt=end)
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
    }
