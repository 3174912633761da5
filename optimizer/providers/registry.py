"""Which upstreams serve a tenant's model, in fallback order, and which models a tenant may call.

Order: the tenant's own provider credentials that list the model (by priority), then the
platform's default upstream (`LEO_UPSTREAM_URL`, or the labelled demo upstream when unset),
unless one of the tenant's credentials for the model is marked exclusive.

Two rules keep the platform's key from paying for what staff did not allow:
- the tenant's allow-list (`Tenant.allowed_models`, set by staff) bounds every model, the ones its
  own providers list included; it applies before any provider is chosen;
- the platform upstream serves only the platform's catalogue (the active `ModelPrice` rows, so
  always priced). A model only a tenant's provider lists has no platform fallback: when that
  provider fails, the client gets its error rather than a free answer on the platform's key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from leo_optima.core.db import run_db
from tenants.auth import Principal
from tenants.models import ProviderCredential

from ..pricing import prices
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
        return Upstream("platform", settings.LEO_UPSTREAM_URL, settings.LEO_UPSTREAM_API_KEY, trusted=True)
    return Upstream(DEMO_NAME, f"http://127.0.0.1:{settings.LEO_DEMO_UPSTREAM_PORT}/v1", "", is_demo=True,
                    trusted=True)


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


def permitted(principal: Principal, model: str) -> bool:
    """The staff allow-list, then the key's own: empty allows every model, otherwise only those named."""
    return ((not principal.allowed_models or model in principal.allowed_models)
            and (not principal.key_allowed_models or model in principal.key_allowed_models))


async def platform_offers(model: str) -> bool:
    """Whether the platform's upstream may serve `model`: it is in the priced catalogue."""
    return model in await prices()


async def allowed_models(principal: Principal, kinds: tuple[str, ...] | None = None) -> dict[str, str]:
    """model name -> owner label, for `/v1/models` and for the 404 check."""
    table = await prices()
    out = {m: p.kind for m, p in table.items() if permitted(principal, m) and (kinds is None or p.kind in kinds)}
    owners = {m: "leo-optima" for m in out}
    for upstream, model_names, _exclusive in (await tenant_providers(principal.tenant_id)).credentials:
        for m in model_names:
            if m != "*" and permitted(principal, m):
                owners.setdefault(m, upstream.name)
    return owners


async def upstreams_for(principal: Principal, model: str) -> list[Upstream]:
    """Where `model` may go, in fallback order; empty when nowhere (not allowed, or not offered)."""
    if not permitted(principal, model):
        return []
    providers = await tenant_providers(principal.tenant_id)
    chain: list[Upstream] = []
    exclusive = False
    for upstream, model_names, excl in providers.credentials:
        if model in model_names or "*" in model_names:
            chain.append(upstream)
            exclusive = exclusive or excl
    if not exclusive and await platform_offers(model):
        chain.append(platform_upstream())
    return chain
