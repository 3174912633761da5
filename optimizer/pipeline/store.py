"""Storing an answer: the exact cache at once, its `CacheEntry` row behind, and, when the request
is in the semantic cache's scope, its vector in this worker's replica and on the row.

Only what `responses.is_storable` accepts is stored, and only when the plan allows it (`no-store`,
a zero TTL, the tenant's settings).
"""

from __future__ import annotations

from typing import Any

from . import exact_cache, semantic_replica, semantic_stage, singleflight
from .admission import prompt_text
from .exact_cache import Cached
from .plan import Plan
from .responses import is_storable, usage_of
from .types import Call


async def store(call: Call, plan: Plan, response: dict[str, Any]) -> None:
    if not plan.store or not is_storable(response):
        return
    if plan.semantic_scope and plan.embedding is None:  # not looked up (no-cache): embed it now
        plan.embedding, plan.embedded_text = await semantic_stage.embed(call.body.get("messages") or [])
    prompt_tokens, completion_tokens = usage_of(response)
    request_text = plan.embedded_text or plan.canon.last_user or prompt_text(call.endpoint, call.body)[:2000]
    cached = Cached(response=response, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    request_text=request_text, key_hash=plan.canon.key)
    tenant_id = call.principal.tenant_id
    await exact_cache.put(tenant_id, cached, plan.ttl)
    embedding = None
    on_saved = None
    if plan.semantic_scope and plan.embedding is not None:
        embedding = semantic_replica.to_bytes(plan.embedding)
        # Searchable in this worker from now on, before its row is written.
        on_saved = semantic_replica.remember(tenant_id, plan.canon.partition, cached, plan.embedding, plan.ttl)
    exact_cache.record_entry(tenant_id, cached, scope_hash=plan.canon.partition if embedding else plan.canon.scope,
                             model=str(call.body.get("model")), namespace=call.options.namespace, ttl=plan.ttl,
                             embedding=embedding, on_saved=on_saved)


async def store_then_finish(call: Call, plan: Plan, response: dict[str, Any],
                            leader: singleflight.Leader | None) -> None:
    """Store a relayed stream's answer, then end the flight (its followers already have every chunk)."""
    try:
        await store(call, plan, response)
    finally:
        if leader is not None:
            await leader.finish(True)
