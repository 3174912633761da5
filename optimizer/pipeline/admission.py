"""Admission: may this key call this model, and do its quotas have room for the call?

A call is admitted by reserving, against the tenant's and the key's limits (`tenants.quotas`),
what it may bill at most: its prompt (estimated locally) and its completion allowance, priced at
the requested model's price. Every path that admitted a call settles it exactly once (`settle`),
with what the ledger row says it used; the quota gives back the rest.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from leo_optima.core.aio import background
from leo_optima.core.db import run_db
from tenants import quotas

from ..models import RequestLog
from ..pricing import Price, count_tokens
from ..providers.registry import allowed_models
from .canonical import text_of
from .ledger import Record
from .types import Call, ProxyError

DEFAULT_COMPLETION_ALLOWANCE = 512


async def check_model(call: Call) -> None:
    """A 404 in OpenAI's words for a model this key may not call (or no one offers)."""
    model = call.body.get("model")
    owners = await allowed_models(call.principal)
    if model not in owners:
        raise ProxyError(404, f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found", param="model")


def prompt_text(endpoint: str, body: dict[str, Any]) -> str:
    """The text a request sends, for local estimates (admission reserves count_tokens of it)."""
    if endpoint == "chat":
        return "\n".join(text_of(m.get("content")) for m in body.get("messages") or [])
    value = body.get("prompt") if endpoint == "completions" else body.get("input")
    if isinstance(value, list):
        value = [value] if any(isinstance(v, int) for v in value) else value  # one token array
        return "\n".join(v if isinstance(v, str) else " ".join(map(str, v)) for v in value)
    return str(value or "")


async def _month_usage(tenant_id: int) -> tuple[int, Decimal]:
    """The tenant's tokens and spend this UTC month, from the ledger (starts the quota counters)."""
    return tuple(await run_db(lambda: RequestLog.objects.for_tenant(tenant_id).this_month().usage()))  # type: ignore[return-value]


async def _key_month_spend(api_key_id: int) -> Decimal:
    """The key's spend this UTC month, from the ledger (starts the key's budget counter)."""
    return (await run_db(lambda: RequestLog.objects.for_key(api_key_id).this_month().usage())).cost_usd


def completion_allowance(endpoint: str, body: dict[str, Any]) -> int:
    """The completion tokens one upstream call of `body` may bill: max_tokens (or a default) per choice."""
    if endpoint == "embeddings":
        return 0
    allowance = body.get("max_completion_tokens") or body.get("max_tokens")
    n = body.get("n") if isinstance(body.get("n"), int) else 1
    completion = (allowance if isinstance(allowance, int) and allowance > 0 else DEFAULT_COMPLETION_ALLOWANCE)
    return completion * max(1, n or 1)


def quota_exceeded(exc: quotas.QuotaExceeded) -> ProxyError:
    minute = exc.kind.endswith("minute")
    return ProxyError(429, str(exc), type="rate_limit_error" if minute else "insufficient_quota",
                      code="rate_limit_exceeded" if minute else "insufficient_quota",
                      headers={"Retry-After": str(exc.retry_after)})


async def admit(call: Call, price: Price) -> quotas.Reservation:
    """Reserve what one upstream call of this request may bill: its prompt, estimated locally, and
    its completion allowance."""
    est_prompt = count_tokens(prompt_text(call.endpoint, call.body))
    completion = completion_allowance(call.endpoint, call.body)
    try:
        reservation = await quotas.admit(call.principal, est_prompt + completion, price.cost(est_prompt, completion),
                                         lambda: _month_usage(call.principal.tenant_id),
                                         lambda: _key_month_spend(call.principal.api_key_id))
    except quotas.QuotaExceeded as exc:
        raise quota_exceeded(exc) from None
    return reservation


async def reserve_more(call: Call, price: Price, reservation: quotas.Reservation, prompt_tokens: int,
                       completion_tokens: int) -> None:
    """Reserve what upstream calls beyond the admitted one may bill, before making them; raises
    quotas.QuotaExceeded (and reserves nothing) when the limits have no room for them."""
    await quotas.reserve_more(call.principal, reservation, prompt_tokens + completion_tokens,
                              price.cost(prompt_tokens, completion_tokens),
                              lambda: _month_usage(call.principal.tenant_id),
                              lambda: _key_month_spend(call.principal.api_key_id))


def settle(call: Call, rec: Record, reservation: quotas.Reservation) -> None:
    """Settle the reservation with what the ledger row records as used (in the background)."""
    background(quotas.settle(call.principal, reservation, rec.prompt_tokens + rec.completion_tokens, rec.cost_usd))
