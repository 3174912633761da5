"""A tenant's optimizer settings as an immutable snapshot, cached per process for a few seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from leo_optima.core.db import run_db

from ..models import OptimizerSettings

_TTL = 2.0


@dataclass(frozen=True)
class TenantConfig:
    tenant_id: int
    exact_cache: bool = True
    semantic_cache: bool = True
    dedup: bool = True
    decomposition: bool = True
    prompt_mode: str = "lossless"
    routing: bool = False
    routing_rules: tuple[dict[str, Any], ...] = ()
    non_deterministic: str = "cache"
    cache_ttl_seconds: int = 7 * 24 * 3600
    cache_max_entries: int = 100_000
    semantic_threshold: float = 0.80
    semantic_margin: float = 0.02
    max_wrong_rate: float = 0.01
    adaptive_state: dict[str, Any] = field(default_factory=dict)
    store_bodies: bool = False
    body_retention_days: int = 7
    loaded_at: float = field(default_factory=time.monotonic)


def get_settings_row(tenant_id: int) -> OptimizerSettings:
    row, _ = OptimizerSettings.objects.get_or_create(tenant_id=tenant_id)
    return row


def _load(tenant_id: int) -> TenantConfig:
    row = get_settings_row(tenant_id)
    return TenantConfig(
        tenant_id=tenant_id, exact_cache=row.exact_cache, semantic_cache=row.semantic_cache, dedup=row.dedup,
        decomposition=row.decomposition, prompt_mode=row.prompt_mode, routing=row.routing,
        routing_rules=tuple(row.routing_rules or ()), non_deterministic=row.non_deterministic,
        cache_ttl_seconds=row.cache_ttl_seconds, cache_max_entries=row.cache_max_entries,
        semantic_threshold=row.semantic_threshold, semantic_margin=row.semantic_margin,
        max_wrong_rate=row.max_wrong_rate, adaptive_state=dict(row.adaptive_state or {}),
        store_bodies=row.store_bodies, body_retention_days=row.body_retention_days,
    )


_cache: dict[int, TenantConfig] = {}


async def tenant_config(tenant_id: int) -> TenantConfig:
    cfg = _cache.get(tenant_id)
    if cfg is None or time.monotonic() - cfg.loaded_at > _TTL:
        cfg = await run_db(_load, tenant_id)
        _cache[tenant_id] = cfg
    return cfg


def forget(tenant_id: int | None = None) -> None:
    if tenant_id is None:
        _cache.clear()
    else:
        _cache.pop(tenant_id, None)
