"""Which upstreams serve a tenant's model, in fallback order, and which models a tenant may call.

Order: the tenant's own provider credentials that list the model (by priority), then the
platform's default upstream (`LEO_UPSTREAM_URL`, or the labelled demo upstream when unset),
unless one of the tenant's credentials for the model is marked exclusive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from leo_optima.db import run_db
from tenants.auth import Principal
from tenants.models import ProviderCredential

from ..pipeline.pricing import prices
from . import freshness
from .base import Upstream

_TTL = 5.0
DEMO_NAME = "leo-demo-upstream"


@dataclass(frozen=True)
class TenantProviders:
    credentials: tuple[tuple[Upstream, frozenset[str], bool], ...]  # (upstream, models, exclusive)
    loaded_at: float


_cache: dict[int, TenantProviders] = {}


def platform_upstream() -> Upstream:
    if settings.LEO_UPSTREAM_URL:
        return Upstream("platform", settings.LEO_UPSTREAM_URL, settings.LEO_UPSTREAM_API_KEY)
    return Upstream(DEMO_NAME, f"http://127.0.0.1:{settings.LEO_DEMO_UPSTREAM_PORT}/v1", "", is_demo=True)


def _load(tenant_id: int) -> TenantProviders:
    creds = []
    for c in ProviderCredential.objects.filter(tenant_id=tenant_id).order_by("priority", "id"):
        try:
            key = c.get_key()
        except ValueError:
            continue  # undecryptable (key rotation unfinished): skip rather than fail every request
        creds.append((Upstream(f"tenant:{c.name}", c.base_url.rstrip("/"), key), frozenset(c.model_names),
                      c.exclusive))
    return TenantProviders(tuple(creds), time.monotonic())


async def tenant_providers(tenant_id: int) -> TenantProviders:
    if await freshness.changed_since_last_look(tenant_id):  # a credential was saved or deleted
        _cache.pop(tenant_id, None)
    cached = _cache.get(tenant_id)
    if cached is None or time.monotonic() - cached.loaded_at > _TTL:
        cached = await run_db(_load, tenant_id)
        _cache[tenant_id] = cached
    return cached


def forget(tenant_id: int | None = None) -> None:
    if tenant_id is None:
        _cache.clear()
    else:
        _cache.pop(tenant_id, None)


async def allowed_models(principal: Principal, kinds: tuple[str, ...] | None = None) -> dict[str, str]:
    """model name -> owner label, for `/v1/models` and for the 404 check."""
    table = await prices()
    allowed = set(principal.allowed_models)
    out = {m: p.kind for m, p in table.items() if (not allowed or m in allowed) and (kinds is None or p.kind in kinds)}
    owners = {m: "leo-optima" for m in out}
    for upstream, model_names, _exclusive in (await tenant_providers(principal.tenant_id)).credentials:
        for m in model_names:
            owners.setdefault(m, upstream.name)
    return owners


async def upstreams_for(principal: Principal, model: str) -> list[Upstream]:
    providers = await tenant_providers(principal.tenant_id)
    chain: list[Upstream] = []
    exclusive = False
    for upstream, model_names, excl in providers.credentials:
        if model in model_names or "*" in model_names:
            chain.append(upstream)
            exclusive = exclusive or excl
    if not exclusive:
        chain.append(platform_upstream())
    return chain
