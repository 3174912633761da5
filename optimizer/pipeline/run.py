"""The request path: admit, look up, deduplicate, optimize, call upstream, store, record.

    admission -> routing decision -> plan -> exact cache -> single-flight -> semantic cache
              -> decomposition -> prompt optimization -> upstream (fallback chain) -> store -> ledger

(Routing is decided first because the model that answers is part of the cache scope; the routed
model is used when the upstream is called.)

Every stage is a module of its own; this one only orders them. It knows nothing of HTTP: it takes a
`Call` and returns a `Reply` whose body is a JSON dict or an async iterator of SSE bytes. Exactly
one ledger row is written per call, whatever happens, streams included (from the iterator's
`finally`, so client disconnects and cut streams are recorded too). Each admitted call's quota is
settled once: by the path that answers it, or here when none did.
"""

from __future__ import annotations

import asyncio
import time

from django.conf import settings

from leo_optima.core.aio import background
from tenants import quotas

from ..models import Technique
from ..pricing import Price, price_of
from . import decomposition_stage, exact_cache, optimize_stage, relay, semantic_stage, singleflight
from .admission import admit, check_model, settle
from .canonical import canonicalize
from .config import tenant_config
from .follower import follow
from .ledger import Record
from .plan import Plan, routed_model
from .replies import as_proxy_error, error_reply, leo_headers
from .responses import usage_of
from .serve import serve_cached
from .types import Call, Reply
from .upstream import call_json


async def handle(call: Call) -> Reply:
    rec = Record(principal=call.principal, request_id=call.request_id, endpoint=call.endpoint,
                 model=str(call.body.get("model") or ""), stream=call.stream,
                 end_user=str(call.body.get("user") or ""), tags=dict(call.options.tags))
    try:
        reply = await (_embeddings(call, rec) if call.endpoint == "embeddings" else _generate(call, rec))
        rec.replied()
        return reply
    except asyncio.CancelledError:
        rec.fail(499, "client_disconnected")
        rec.finish()
        raise
    except Exception as exc:  # never a 500 with a stack trace, never a lost ledger row
        err = as_proxy_error(call, exc)
        rec.fail(err.status, err.code or err.type)
        rec.finish()
        return error_reply(call, rec, err)


async def _embeddings(call: Call, rec: Record) -> Reply:
    """Embeddings are passed through and recorded."""
    await check_model(call)
    price = await price_of(rec.model)
    reservation = await admit(call, price)
    try:
        body = await call_json(call, rec, call.body, rec.model)
        rec.upstream_used(price, price, usage_of(body)[0], 0)
        rec.technique = Technique.MISS
        return Reply(200, leo_headers(call, rec), body=body)
    finally:
        settle(call, rec, reservation)
        rec.finish()


async def _generate(call: Call, rec: Record) -> Reply:
    """Chat and completions: admission, the plan, the exact cache and single-flight, then `_answer`."""
    await check_model(call)
    price = await price_of(rec.model)
    cfg = await tenant_config(call.principal.tenant_id)
    if cfg.store_bodies:  # the tenant opted in to keeping prompts and answers (redacted, for a while)
        rec.keep_body(cfg.body_retention_days, call.endpoint, call.body)
    reservation = await admit(call, price)
    settled = False
    try:  # 1. routing decision and plan
        routed_to = await routed_model(call, rec, cfg)
        canon = canonicalize(call.principal.tenant_id, call.endpoint, call.body, call.options.namespace, routed_to)
        plan = Plan(call, cfg, canon, routed_to or rec.model)
        if not plan.cacheable or (call.options.no_cache and call.options.no_store):
            rec.technique = Technique.BYPASS
            rec.stage("bypass", reason="policy" if not plan.cacheable else "cache-control")

        if plan.exact:  # 2. exact cache
            started = time.perf_counter()
            hit = await exact_cache.lookup(call.principal.tenant_id, canon.key)
            rec.stage("exact", hit=hit is not None, ms=round((time.perf_counter() - started) * 1000, 2))
            if hit is not None:
                exact_cache.count_hit(call.principal.tenant_id, canon.key)
                return serve_cached(call, rec, hit, Technique.EXACT, price, reservation)

        leader: singleflight.Leader | None = None
        if plan.dedup:  # 3. single-flight
            flight = await singleflight.join(call.principal.tenant_id, canon.key, call.stream,
                                             settings.LEO_UPSTREAM_READ_TIMEOUT + 30)
            if isinstance(flight, singleflight.Follower):
                reply = await follow(call, rec, flight, price, reservation)
                if reply is not None:
                    return reply  # else released: go on alone
            else:
                leader = flight

        settled = True  # from here the answer path settles the quota itself
        return await _answer(call, rec, plan, price, reservation, leader)
    finally:
        if not settled:
            settle(call, rec, reservation)


async def _answer(call: Call, rec: Record, plan: Plan, price: Price, reservation: quotas.Reservation,
                  leader: singleflight.Leader | None) -> Reply:
    """Semantic cache, decomposition, then the upstream. Owns quota settlement and the leader's end."""
    try:
        if plan.semantic:  # 4. semantic cache
            hit = await semantic_stage.lookup(call, rec, plan)
            if hit is not None:
                return serve_cached(call, rec, hit, Technique.SEMANTIC, price, reservation, leader,
                                    plan.embedded_text)

        if plan.lookup and call.endpoint == "chat" and plan.cfg.decomposition:  # 5. decomposition
            reply = await decomposition_stage.try_decompose(call, rec, plan, price, reservation, leader)
            if reply is not None:
                return reply

        out = await optimize_stage.prepare(call, rec, plan, price)  # 6. prompt optimization, routed model
        # 7. upstream, 8. store, 9. ledger row
        answer_from_upstream = relay.stream_reply if call.stream else relay.json_reply
        return await answer_from_upstream(call, rec, plan, out, price, reservation, leader)
    except BaseException:
        if leader is not None:
            background(leader.finish(False))
        if not rec.finished:
            # handle() records the failure; the quota gives back what was reserved but unused
            settle(call, rec, reservation)
        raise
