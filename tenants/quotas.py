"""Quotas and rate limits, admitted atomically across workers.

Four limits per tenant, each optional: requests per minute, tokens per minute, tokens per calendar
month (UTC) and spend per month; and three per API key, each optional: requests and tokens per
minute and spend per month (its budget). Admission is all-or-nothing in one Redis script (or one
step on the event loop without Redis), tenant's and key's counters together, so N workers cannot
together admit more than any limit, and a request refused by the key holds nothing of the tenant's.

Tokens and spend are not known until the upstream answers, so admission *reserves* an estimate
(prompt estimate + max_tokens, or a default completion allowance) and `settle` later adds the
difference between what was used and what was reserved. Every upstream call a request makes is
reserved before it is made: a request that makes more calls than the one admitted for (a
decomposed question's parts, each resending the shared context) reserves the extra with
`reserve_more` first, and does not make them when that is refused. The overspend bound is
therefore: at most the sum, over the upstream calls of requests admitted while the budget was
nearly spent, of (actual - reserved) usage, i.e. only the error of the prompt estimate and of the
completion allowance; it is zero for calls whose max_tokens bounds their completion and whose
prompt estimate is not below the provider's count.

The monthly counters start from the ledger: the caller passes `month_usage` (a coroutine reading
the tenant's ledger rows) and `key_month_spend` (the key's), used only when the counter does not
exist yet (new month, Redis flushed, new process). The overspend bound above holds per key too.
When Redis is down, limits fall back to per-process counters (documented in SECURITY.md): a tenant
may then get up to one limit per worker process, never an unlimited pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from leo_optima.core.state import LocalState, State, StateUnavailable, get_state

from .auth import Principal

# Spend is counted in micro-dollars so that Redis can add integers.
MICRO = Decimal("1000000")
MONTH_TTL = 40 * 24 * 3600

_fallback = LocalState()


class QuotaExceeded(Exception):
    def __init__(self, message: str, kind: str, retry_after: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


@dataclass
class Reservation:
    """What one request holds against the limits; grows with `reserve_more`, swapped by `settle`."""

    tenant_id: int
    minute_key: str
    month: str
    tokens: int
    micro_usd: int
    api_key_id: int = 0
    key_tokens: int = 0  # held against the key's tokens/minute
    key_micro_usd: int = 0  # held against the key's monthly budget
    key_limits_version: int = 0


def _key_minute(reservation: Reservation) -> str:
    return f"leo:q:k:{reservation.api_key_id}:m:{reservation.minute_key.rsplit(':', 1)[1]}"


def _key_month_usd(reservation: Reservation) -> str:
    return f"leo:q:k:{reservation.api_key_id}:M:{reservation.month}:usd:{reservation.key_limits_version}"


def _month(now: datetime) -> str:
    return now.strftime("%Y%m")


def _seconds_to_next_month(now: datetime) -> int:
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return max(1, math.ceil((nxt - now).total_seconds()))


async def _ensure_month(state: State, key: str, initial: Callable[[], Awaitable[int]]) -> None:
    if await state.get(key) is None:
        await state.set_nx(key, str(await initial()).encode(), MONTH_TTL)


async def admit(
    principal: Principal,
    tokens: int,
    usd: Decimal,
    month_usage: Callable[[], Awaitable[tuple[int, Decimal]]],
    key_month_spend: Callable[[], Awaitable[Decimal]] | None = None,
) -> Reservation:
    """Reserve `tokens` and `usd` against every configured limit, or raise QuotaExceeded."""
    now = datetime.now(UTC)
    reservation = Reservation(principal.tenant_id, f"leo:q:{principal.tenant_id}:m:{int(time.time() // 60)}",
                              _month(now), 0, 0, api_key_id=principal.api_key_id,
                              key_limits_version=principal.key_limits_version)
    await _reserve(principal, reservation, tokens, usd, month_usage, key_month_spend, count_request=True)
    return reservation


async def reserve_more(
    principal: Principal,
    reservation: Reservation,
    tokens: int,
    usd: Decimal,
    month_usage: Callable[[], Awaitable[tuple[int, Decimal]]],
    key_month_spend: Callable[[], Awaitable[Decimal]] | None = None,
) -> None:
    """Add to an admitted request's reservation (more upstream calls than admitted for), or raise
    QuotaExceeded and change nothing. The request is not counted again against requests/minute."""
    await _reserve(principal, reservation, tokens, usd, month_usage, key_month_spend, count_request=False)


async def _reserve(
    principal: Principal,
    reservation: Reservation,
    tokens: int,
    usd: Decimal,
    month_usage: Callable[[], Awaitable[tuple[int, Decimal]]],
    key_month_spend: Callable[[], Awaitable[Decimal]] | None,
    *,
    count_request: bool,
) -> None:
    now = datetime.now(UTC)
    month = reservation.month
    t = principal.tenant_id
    micro = int((usd * MICRO).to_integral_value())
    minute_key = reservation.minute_key
    checks: list[tuple[str, int, int, float]] = []
    kinds: list[str] = []
    if principal.requests_per_minute is not None and count_request:
        checks.append((f"{minute_key}:req", 1, principal.requests_per_minute, 120))
        kinds.append("requests_per_minute")
    if principal.tokens_per_minute is not None:
        checks.append((f"{minute_key}:tok", tokens, principal.tokens_per_minute, 120))
        kinds.append("tokens_per_minute")
    month_tok = f"leo:q:{t}:M:{month}:tok"
    month_usd = f"leo:q:{t}:M:{month}:usd"
    if principal.monthly_token_quota is not None:
        checks.append((month_tok, tokens, principal.monthly_token_quota, MONTH_TTL))
        kinds.append("monthly_tokens")
    if principal.monthly_spend_quota_usd is not None:
        checks.append((month_usd, micro, int(principal.monthly_spend_quota_usd * MICRO), MONTH_TTL))
        kinds.append("monthly_spend")
    # The key's limits join the same all-or-nothing step.
    key_month_usd = _key_month_usd(reservation)
    if principal.key_requests_per_minute is not None and count_request:
        checks.append((f"{_key_minute(reservation)}:req", 1, principal.key_requests_per_minute, 120))
        kinds.append("key_requests_per_minute")
    if principal.key_tokens_per_minute is not None:
        checks.append((f"{_key_minute(reservation)}:tok", tokens, principal.key_tokens_per_minute, 120))
        kinds.append("key_tokens_per_minute")
    if principal.key_monthly_budget_usd is not None:
        if key_month_spend is None:
            raise TypeError("a key with a monthly budget needs key_month_spend (its ledger spend)")
        checks.append((key_month_usd, micro, int(principal.key_monthly_budget_usd * MICRO), MONTH_TTL))
        kinds.append("key_monthly_budget")
    if not checks:
        return

    async def run(state: State) -> tuple[bool, int]:
        if "monthly_tokens" in kinds or "monthly_spend" in kinds:
            usage: tuple[int, Decimal] | None = None

            async def initial(index: int) -> int:
                nonlocal usage
                if usage is None:
                    usage = await month_usage()
                return usage[0] if index == 0 else int(usage[1] * MICRO)

            if "monthly_tokens" in kinds:
                await _ensure_month(state, month_tok, lambda: initial(0))
            if "monthly_spend" in kinds:
                await _ensure_month(state, month_usd, lambda: initial(1))
        if "key_monthly_budget" in kinds and key_month_spend is not None:
            spend = key_month_spend
            await _ensure_month(state, key_month_usd, lambda: _micro(spend))
        return await state.admit(checks)

    try:
        ok, failed = await run(get_state())
    except StateUnavailable:
        ok, failed = await run(_fallback)
    if not ok:
        kind = kinds[failed]
        if kind.startswith("key_"):
            raise _key_exceeded(principal, kind, now)
        if kind.endswith("per_minute"):
            retry = max(1, 60 - int(time.time()) % 60)
            what = "requests" if kind.startswith("requests") else "tokens"
            msg = f"Rate limit reached for {what} per minute on this tenant. Please try again in {retry}s."
        else:
            retry = _seconds_to_next_month(now)
            what = "token" if kind == "monthly_tokens" else "spend"
            msg = f"You exceeded your monthly {what} quota. It resets at the start of next month (UTC)."
        raise QuotaExceeded(msg, kind=kind, retry_after=retry)
    if principal.tokens_per_minute is not None or principal.monthly_token_quota is not None:
        reservation.tokens += tokens
    if principal.monthly_spend_quota_usd is not None:
        reservation.micro_usd += micro
    if principal.key_tokens_per_minute is not None:
        reservation.key_tokens += tokens
    if principal.key_monthly_budget_usd is not None:
        reservation.key_micro_usd += micro


async def _micro(spend: Callable[[], Awaitable[Decimal]]) -> int:
    return int((await spend() * MICRO).to_integral_value())


def _key_exceeded(principal: Principal, kind: str, now: datetime) -> QuotaExceeded:
    """The 429 for a key's own limit; the message names the limit and the key (by prefix)."""
    key = f"API key {principal.key_prefix}…"
    if kind == "key_monthly_budget":
        return QuotaExceeded(f"{key} exceeded its monthly budget of ${principal.key_monthly_budget_usd:f} "
                             "(key_monthly_budget_usd). It resets at the start of next month (UTC).",
                             kind=kind, retry_after=_seconds_to_next_month(now))
    retry = max(1, 60 - int(time.time()) % 60)
    if kind == "key_requests_per_minute":
        msg = (f"Rate limit reached for requests per minute on {key} (key_requests_per_minute: "
               f"{principal.key_requests_per_minute}). Please try again in {retry}s.")
    else:
        msg = (f"Rate limit reached for tokens per minute on {key} (key_tokens_per_minute: "
               f"{principal.key_tokens_per_minute}). Please try again in {retry}s.")
    return QuotaExceeded(msg, kind=kind, retry_after=retry)


async def settle(principal: Principal, reservation: Reservation, tokens: int, usd: Decimal) -> None:
    """Replace the reservation by what was actually used (may be negative: unused reservation)."""
    delta_tokens = tokens - reservation.tokens
    delta_micro = int((usd * MICRO).to_integral_value()) - reservation.micro_usd
    updates: list[tuple[str, int, float]] = []
    if principal.tokens_per_minute is not None and delta_tokens:
        updates.append((f"{reservation.minute_key}:tok", delta_tokens, 120))
    if principal.monthly_token_quota is not None and delta_tokens:
        updates.append((f"leo:q:{reservation.tenant_id}:M:{reservation.month}:tok", delta_tokens, MONTH_TTL))
    if principal.monthly_spend_quota_usd is not None and delta_micro:
        updates.append((f"leo:q:{reservation.tenant_id}:M:{reservation.month}:usd", delta_micro, MONTH_TTL))
    key_delta_tokens = tokens - reservation.key_tokens
    key_delta_micro = int((usd * MICRO).to_integral_value()) - reservation.key_micro_usd
    if principal.key_tokens_per_minute is not None and key_delta_tokens:
        updates.append((f"{_key_minute(reservation)}:tok", key_delta_tokens, 120))
    if principal.key_monthly_budget_usd is not None and key_delta_micro:
        updates.append((_key_month_usd(reservation), key_delta_micro, MONTH_TTL))
    for key, amount, ttl in updates:
        try:
            await get_state().add(key, amount, ttl)
        except StateUnavailable:
            await _fallback.add(key, amount, ttl)
