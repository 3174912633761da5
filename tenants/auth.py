"""Authenticating `Authorization: Bearer leo_...` on the hot path.

A verified key is remembered in process memory for a few seconds (by its HMAC digest, never the
plaintext), so a busy key costs one HMAC and a dict lookup; revocation therefore takes effect
within `CACHE_SECONDS`, and expiry at once (a key is not remembered past its expiry). Whether a key
may be used is the model's rule (`ApiKey.objects.with_usable()`, read in the same query as the
key), and so is recording its use (`ApiKey.touch`). Repeated bad keys from one client address are
throttled.

The client address is REMOTE_ADDR and nothing else: the server (uvicorn or gunicorn) has already
replaced it with X-Forwarded-For's client, but only on connections from LEO_TRUSTED_PROXIES. A
header read here would let any client name a fresh address per request and never be throttled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.http import HttpRequest
from django.utils import timezone

from leo_optima.core.aio import background
from leo_optima.core.db import run_db
from leo_optima.core.state import LocalState, StateUnavailable, get_state

from . import keys
from .models import LAST_USED_RESOLUTION, ApiKey

CACHE_SECONDS = 2.0
BAD_KEY_LIMIT_PER_MINUTE = 30


class AuthError(Exception):
    def __init__(self, message: str, code: str = "invalid_api_key", status: int = 401) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's tenant, the tenant's and the key's limits, as of at most CACHE_SECONDS ago."""

    tenant_id: int
    tenant_slug: str
    api_key_id: int
    key_prefix: str
    key_name: str
    allowed_models: tuple[str, ...]
    monthly_token_quota: int | None
    monthly_spend_quota_usd: Decimal | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    expires_at: datetime | None = None
    # The key's own limits (None / empty: only the tenant's apply); see ApiKey.
    key_monthly_budget_usd: Decimal | None = None
    key_requests_per_minute: int | None = None
    key_tokens_per_minute: int | None = None
    key_allowed_models: tuple[str, ...] = ()
    key_limits_version: int = 0
    last_used_at: datetime | None = None
    cached_at: float = field(default_factory=time.monotonic)


def client_ip(request: HttpRequest) -> str:
    """The calling client's address, as resolved by the server from trusted proxies only."""
    return request.META.get("REMOTE_ADDR", "")


# digest -> (the principal, or None for a wrong key; the monotonic time it is forgotten).
_cache: dict[str, tuple[Principal | None, float]] = {}
# key id -> the monotonic time this process last had the key's use recorded (or tried to).
_touched: dict[int, float] = {}


def _load(prefix: str, plaintext: str) -> Principal | None:
    row = ApiKey.objects.with_usable().select_related("tenant").filter(prefix=prefix).first()
    if row is None:
        return None
    ok, rehash = keys.verify(plaintext, row.digest)
    if not ok:
        return None
    if rehash:  # verified with a retired pepper: move it to the current one
        ApiKey.objects.filter(pk=row.pk).update(digest=keys.digest(plaintext))
    if not row.usable:
        raise AuthError(row.refusal(), code="invalid_api_key")
    t = row.tenant
    return Principal(
        tenant_id=t.pk, tenant_slug=t.slug, api_key_id=row.pk, key_prefix=row.prefix, key_name=row.name,
        allowed_models=tuple(t.allowed_models or ()), monthly_token_quota=t.monthly_token_quota,
        monthly_spend_quota_usd=t.monthly_spend_quota_usd, requests_per_minute=t.requests_per_minute,
        tokens_per_minute=t.tokens_per_minute, expires_at=row.expires_at,
        key_monthly_budget_usd=row.monthly_budget_usd, key_requests_per_minute=row.requests_per_minute,
        key_tokens_per_minute=row.tokens_per_minute, key_allowed_models=tuple(row.allowed_models or ()),
        key_limits_version=int(row.limits_changed_at.timestamp()) if row.limits_changed_at else 0,
        last_used_at=row.last_used_at,
    )


def _remember_until(now: float, principal: Principal | None) -> float:
    """A verified key is remembered CACHE_SECONDS, never past its expiry, which `usable()` then
    judges on the next load."""
    until = now + CACHE_SECONDS
    if principal is not None and principal.expires_at is not None:
        until = min(until, now + (principal.expires_at - timezone.now()).total_seconds())
    return until


# Without Redis the bad-key counters live in this process (fail closed, like the quotas): a guesser
# then gets at most BAD_KEY_LIMIT_PER_MINUTE tries per worker, not an unlimited pass.
_fallback = LocalState()


async def _throttle_bad_key(client_ip: str) -> None:
    key = f"leo:badkey:{client_ip}"
    try:
        count = await get_state().add(key, 1, 60)
    except StateUnavailable:
        count = await _fallback.add(key, 1, 60)
    if count > BAD_KEY_LIMIT_PER_MINUTE:
        raise AuthError("Too many requests with invalid API keys from this address; retry later.",
                        code="rate_limit_exceeded", status=429)


async def _bad_key_blocked(client_ip: str) -> bool:
    try:
        raw = await get_state().get(f"leo:badkey:{client_ip}")
    except StateUnavailable:
        raw = await _fallback.get(f"leo:badkey:{client_ip}")
    return raw is not None and int(raw) > BAD_KEY_LIMIT_PER_MINUTE


async def authenticate(authorization: str | None, client_ip: str = "") -> Principal:
    if await _bad_key_blocked(client_ip):
        raise AuthError("Too many requests with invalid API keys from this address; retry later.",
                        code="rate_limit_exceeded", status=429)
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthError("You didn't provide an API key. Send it as 'Authorization: Bearer leo_...'.")
    plaintext = authorization[7:].strip()
    if not keys.looks_like_key(plaintext):
        await _throttle_bad_key(client_ip)
        raise AuthError("Incorrect API key provided.")
    cache_key = keys.digest(plaintext)
    now = time.monotonic()
    hit = _cache.get(cache_key)
    if hit is not None and hit[1] > now:
        principal = hit[0]
    else:
        try:
            principal = await run_db(_load, plaintext[: keys.PREFIX_LENGTH], plaintext)
        except AuthError:
            _cache.pop(cache_key, None)
            await _throttle_bad_key(client_ip)
            raise
        if len(_cache) > 50_000:
            _cache.clear()
        _cache[cache_key] = (principal, _remember_until(now, principal))
    if principal is None:
        await _throttle_bad_key(client_ip)
        raise AuthError("Incorrect API key provided.")
    # ApiKey.touch writes last_used_at at most once per LAST_USED_RESOLUTION; this process asks it
    # at most that often per key, off the request path.
    if now - _touched.get(principal.api_key_id, -1e9) >= LAST_USED_RESOLUTION.total_seconds():
        _touched[principal.api_key_id] = now
        # The key as loaded: touch() needs only its id and when it was last used.
        key = ApiKey(pk=principal.api_key_id, last_used_at=principal.last_used_at)
        background(run_db(key.touch))
    return principal


def forget_cached_keys() -> None:
    """Drop the in-process cache (tests, and after a revocation in this process)."""
    _cache.clear()
