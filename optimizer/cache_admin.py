"""Cache management for a tenant: stats, purge (all, by model, by age), delete one, and eviction.

The database rows are the source of truth; the exact-cache values in the shared state are
deleted alongside, so a purged answer is never served again by any worker. Every delete goes
through `delete_entries`; tests/test_cache_delete_paths.py checks that no other code deletes rows.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Count, Max, Min, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from leo_optima.core.db import run_db
from leo_optima.core.state import StateUnavailable, get_state

from .models import CacheEntry, OptimizerSettings
from .pipeline import replica_feed
from .pipeline.exact_cache import kv_key


def stats(tenant_id: int) -> dict[str, Any]:
    now = timezone.now()
    qs = CacheEntry.objects.filter(tenant_id=tenant_id, expires_at__gt=now)
    agg = qs.aggregate(entries=Count("id"), bytes=Sum("size_bytes"), hits=Sum("hits"), oldest=Min("created_at"),
                       newest=Max("created_at"))
    by_model = list(qs.values("model").annotate(entries=Count("id"), hits=Sum("hits")).order_by("-entries")[:50])
    return {"entries": agg["entries"] or 0, "bytes": int(agg["bytes"] or 0), "hits": int(agg["hits"] or 0),
            "oldest": agg["oldest"].isoformat() if agg["oldest"] else None,
            "newest": agg["newest"].isoformat() if agg["newest"] else None, "by_model": by_model}


def _select(tenant_id: int, model: str | None, older_than_seconds: int | None,
            entry_id: int | None = None) -> QuerySet[CacheEntry]:
    qs = CacheEntry.objects.filter(tenant_id=tenant_id)
    if model:
        qs = qs.filter(model=model)
    if older_than_seconds is not None:
        qs = qs.filter(created_at__lt=timezone.now() - timedelta(seconds=older_than_seconds))
    if entry_id is not None:
        qs = qs.filter(pk=entry_id)
    return qs


def _refs(entries: QuerySet[CacheEntry]) -> list[tuple[int, int, str]]:
    return list(entries.values_list("id", "tenant_id", "key_hash"))


def _delete_rows(ids: list[int]) -> None:
    for i in range(0, len(ids), 1000):
        CacheEntry.objects.filter(pk__in=ids[i:i + 1000]).delete()


async def _drop_values(keys: list[str]) -> None:
    try:
        state = get_state()
        for i in range(0, len(keys), 500):
            await state.delete(*keys[i:i + 500])
    except StateUnavailable:
        pass  # the values expire by TTL; the rows, which the semantic index trusts, go too


def _values_of(rows: list[tuple[int, int, str]]) -> list[str]:
    return sorted({kv_key(tenant_id, key_hash) for _, tenant_id, key_hash in rows})


def _forget_here(rows: list[tuple[int, int, str]]) -> dict[int, list[int]]:
    """Drop this worker's semantic copies of the rows; returns their ids by tenant."""
    by_tenant: dict[int, list[int]] = {}
    for pk, tenant_id, _ in rows:
        by_tenant.setdefault(tenant_id, []).append(pk)
    # This worker's semantic replica holds these entries: forget them (only if the replica is
    # loaded here; importing it would load the semantic stack for nothing).
    replica = sys.modules.get("optimizer.pipeline.semantic_replica")
    if replica is not None:
        for tenant_id, ids in by_tenant.items():
            replica.forget_entries(tenant_id, ids)
    return by_tenant


def _publish_removed(by_tenant: dict[int, list[int]]) -> None:
    """Every other worker and node (and the servers, when a management command purges) drops them too."""
    for tenant_id, ids in by_tenant.items():
        replica_feed.publish_removed(tenant_id, ids)


async def delete_entries(entries: QuerySet[CacheEntry]) -> int:
    """THE way to delete cache entries (the API, the portal, the `cache` command and eviction; the
    admin through `delete_entries_now`): the exact-cache values, the rows, this worker's semantic
    copies and every other worker's (through the replica feed) go together, so a deleted answer is
    never served again. A plain queryset delete would leave the answers in the exact cache until
    their TTL (issue #13, item 10)."""
    rows = await run_db(_refs, entries)
    if rows:
        await _drop_values(_values_of(rows))
        await run_db(_delete_rows, [pk for pk, _, _ in rows])
        await asyncio.to_thread(_publish_removed, _forget_here(rows))
    return len(rows)


def delete_entries_now(entries: QuerySet[CacheEntry]) -> int:
    """`delete_entries`, step for step, for a sync caller inside a transaction (the admin wraps its
    deletes in one): the rows go on the caller's own connection, since another connection would
    wait on the caller's locks (SQLite) and delete outside its transaction."""
    rows = _refs(entries)
    if rows:
        async_to_sync(_drop_values)(_values_of(rows))
        _delete_rows([pk for pk, _, _ in rows])
        _publish_removed(_forget_here(rows))
    return len(rows)


async def purge(tenant_id: int, model: str | None = None, older_than_seconds: int | None = None) -> int:
    return await delete_entries(_select(tenant_id, model, older_than_seconds))


async def delete_entry(tenant_id: int, entry_id: int) -> int:
    return await delete_entries(_select(tenant_id, None, None, entry_id))


def _evictable(tenant_id: int, max_entries: int) -> list[int]:
    now = timezone.now()
    expired = list(CacheEntry.objects.filter(tenant_id=tenant_id, expires_at__lte=now).values_list("id", flat=True))
    live = CacheEntry.objects.filter(tenant_id=tenant_id, expires_at__gt=now)
    excess = live.count() - max_entries
    lru: list[int] = []
    if excess > 0:
        # Least recently used first: an entry's last use is its last hit, or its creation when never
        # hit. (Ordering by last_hit_at alone put never-hit entries first on SQLite but last on
        # PostgreSQL, where NULLs sort last.)
        lru = list(live.order_by(Coalesce("last_hit_at", "created_at"), "pk").values_list("id", flat=True)[:excess])
    return expired + lru


async def evict(tenant_id: int, max_entries: int) -> int:
    """Drop expired entries and, above the tenant's size cap, the least recently used."""
    ids = await run_db(_evictable, tenant_id, max_entries)
    dropped = 0
    for i in range(0, len(ids), 1000):  # bounded IN lists (SQLite caps a query's parameters)
        dropped += await delete_entries(CacheEntry.objects.filter(tenant_id=tenant_id, pk__in=ids[i:i + 1000]))
    return dropped


def _caps() -> dict[int, int]:
    """Every tenant with cache entries, and its size cap (the model's default when it has no settings)."""
    default = OptimizerSettings._meta.get_field("cache_max_entries").get_default()
    caps = dict(OptimizerSettings.objects.values_list("tenant_id", "cache_max_entries"))
    tenants = CacheEntry.objects.values_list("tenant_id", flat=True).distinct()
    return {tid: caps.get(tid, default) for tid in tenants}


async def evict_all() -> dict[int, int]:
    """`evict` every tenant that has cache entries, each with its own cap: {tenant id: entries dropped}."""
    return {tid: await evict(tid, cap) for tid, cap in (await run_db(_caps)).items()}
