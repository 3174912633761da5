"""What the optimizer's portal pages read, apart from the overview's figures (``figures``,
``latency_figures``): quota bars, key names, pages of rows, a request's stored body, the cache
page's hits, and the adaptive semantic rule in force. Every function takes the tenant (or its id)
and reads only that tenant's rows; the views in ``views`` stay parse, call, render.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from optimizer.analytics import CACHE_TECHNIQUES
from optimizer.models import CacheEntry, Feedback, OptimizerSettings, RequestBody, RequestLog, month_start
from optimizer.pipeline.strictness import strictness_of
from optimizer.semantic.policy import rule_at
from tenants.models import ApiKey, Tenant

from . import figures

#: How many recent cache hits the cache page lists.
RECENT_HITS = 20


def one_page(rows: QuerySet[Any], page: int, size: int) -> tuple[list[Any], bool]:
    """Page ``page`` (from 1) of an ordered queryset, and whether another page follows.

    No COUNT(*) over a large ledger: one row more than a page is fetched to know whether there is
    another."""
    offset = (page - 1) * size
    fetched = list(rows[offset:offset + size + 1])
    return fetched[:size], len(fetched) > size


# --- Overview --------------------------------------------------------------------------------------

def quota_bars(tenant: Tenant, now: datetime) -> list[dict[str, Any]]:
    """The overview's bars for the tenant's monthly token and spend quotas, this calendar month (UTC)
    so far; none when the tenant has no monthly quota."""
    if tenant.monthly_token_quota is None and tenant.monthly_spend_quota_usd is None:
        return []
    month = figures.overview(int(tenant.pk), month_start(now), now, now).totals
    bars = []
    if tenant.monthly_token_quota is not None:
        used = month.prompt_tokens + month.completion_tokens
        bars.append({"label": "Tokens this month", "used": f"{used:,}", "limit": f"{tenant.monthly_token_quota:,}",
                     "percent": min(100, round(used * 100 / tenant.monthly_token_quota)) if tenant.monthly_token_quota else 100})
    if tenant.monthly_spend_quota_usd is not None:
        limit = Decimal(tenant.monthly_spend_quota_usd)
        used_usd = month.cost_usd
        bars.append({"label": "Spend this month", "used": f"${used_usd:,.2f}", "limit": f"${limit:,.2f}",
                     "percent": min(100, round(float(used_usd * 100 / limit))) if limit else 100})
    return bars


# --- Keys ------------------------------------------------------------------------------------------

def key_names(tenant: Tenant) -> dict[str, str]:
    """The tenant's API keys' names by prefix (what the ledger and breakdowns show of a key)."""
    return dict(ApiKey.objects.filter(tenant=tenant).values_list("prefix", "name"))


def key_prefixes(tenant: Tenant) -> dict[int, str]:
    """The tenant's API keys' prefixes by id."""
    return dict(ApiKey.objects.filter(tenant=tenant).values_list("pk", "prefix"))


def key_choices(tenant: Tenant) -> list[tuple[int, str]]:
    """The tenant's API keys as choices for the ledger's key filter."""
    return [(k.pk, f"{k.prefix}… {k.name}") for k in ApiKey.objects.filter(tenant=tenant).only("pk", "prefix", "name")]


# --- A request's detail ----------------------------------------------------------------------------

def body_context(row: RequestLog) -> dict[str, Any]:
    """What the detail page says about the request's body and, for a hit, the entry that served it."""
    body = RequestBody.objects.filter(request_log_id=row.request_id, tenant_id=row.tenant_id).first()
    entry = None
    if row.cache_key:
        entry = (CacheEntry.objects.filter(tenant_id=row.tenant_id, key_hash=row.cache_key)
                 .only("pk", "request_text", "model", "created_at", "hits").first())
    return {"body": body, "body_messages": _messages(body.prompt) if body else [],
            "body_answer": _answer(body.response) if body else None,
            "bodies_on": OptimizerSettings.objects.filter(tenant_id=row.tenant_id, store_bodies=True).exists(),
            "cache_entry": entry}


def _messages(prompt: Any) -> list[dict[str, str]]:
    """A stored prompt as (role, text) pairs: chat messages, or a completions prompt as one."""
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return [{"role": str(m.get("role", "")), "text": _text(m.get("content"))} for m in prompt]
    return [{"role": "prompt", "text": _text(prompt)}]


def _answer(response: Any) -> str | None:
    """The text of a stored answer: every choice's content, or a truncated body's kept text."""
    if not isinstance(response, dict):
        return None
    choices = response.get("choices") or []
    parts = []
    for choice in choices if isinstance(choices, list) else []:
        if isinstance(choice, dict):
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            parts.append(_text(message.get("content") if message else choice.get("text")))
    return "\n\n".join(parts) if parts else (response.get("text") if response.get("truncated") else None)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text kept, other kinds named
        return "\n".join(p.get("text", "") if isinstance(p, dict) and p.get("type") == "text"
                         else f"[{p.get('type', 'part') if isinstance(p, dict) else 'part'}]" for p in content)
    return str(content)


# --- Cache -----------------------------------------------------------------------------------------

def cache_entries(tenant_id: int, q: str, model: str) -> QuerySet[CacheEntry]:
    """The tenant's cache entries whose text contains ``q`` and whose model is ``model`` (either
    may be empty: no filter), newest first, without the heavy columns."""
    entries = CacheEntry.objects.filter(tenant_id=tenant_id).defer("embedding", "response")
    if q:
        entries = entries.filter(request_text__icontains=q)
    if model:
        entries = entries.filter(model=model)
    return entries.order_by("-created_at", "-id")


def cache_hits(tenant_id: int, since: datetime) -> tuple[int, QuerySet[RequestLog]]:
    """How many requests the cache served since ``since``, and the latest ``RECENT_HITS`` of them
    (ever), each marked ``feedback_wrong`` when someone said its answer was wrong.

    Both read the same rows: the ledger's hits of every kind (exact, semantic, decomposed,
    in-flight dedup), so the count is of what the list shows."""
    hits = RequestLog.objects.filter(tenant_id=tenant_id, technique__in=CACHE_TECHNIQUES)
    recent = (hits.annotate(feedback_wrong=Exists(Feedback.objects.filter(request_log=OuterRef("pk"), correct=False)))
              .order_by("-created_at")[:RECENT_HITS])
    return hits.filter(created_at__gte=since).count(), recent


# --- Settings --------------------------------------------------------------------------------------

def adaptive_rule(row: OptimizerSettings) -> dict[str, Any]:
    """The semantic rule that feedback has moved the tenant to (empty before any feedback)."""
    if not row.adaptive_state:
        return {}
    level = strictness_of(row.adaptive_state, row.max_wrong_rate).level
    threshold, min_probability = rule_at(level, row.semantic_threshold)
    return {"level": level, "threshold": threshold, "min_probability": min_probability, "bound": row.max_wrong_rate}
