"""The decomposition stage: a multi-part question reuses cached answers for its parts.

`decompose.split` decides whether a request is made of independent questions (and refuses when
parts depend on each other, tools or response_format are present, ...). Each part is looked up
as a standalone request (exact, then verified semantic). When no part hits, the request goes on
whole, as usual: splitting it would only cost more prompt tokens. When some hit, only the
missing parts go upstream, one call each, in parallel, so each answer stands alone; each part's
answer is stored as its own entry for later reuse, and the composed answer is served.

Every part call resends the shared context (system prompt, earlier turns), so decomposing is not
always cheaper: when the missing parts' prompts together are not smaller than the whole prompt,
the request goes on whole. The part calls are reserved against the quotas before any is made
(each may bill its own max_tokens); when the limits have no room for them, the request goes on
whole, within what admission reserved.

Ledger: technique `decomposed`; tokens and cost = what the part calls were billed, as the upstream
counted them, also when one of them failed (the request then fails, but the calls that succeeded
were billed). `usage` (what the client sees) = the tokens the composed answer stands for: the
whole question's prompt (estimated locally, the upstream never saw it whole, but never less than
the part calls' prompts as billed) and the composed answer's completion (each part's answer as
its upstream counted it, plus the headings, estimated). The counterfactual prices that `usage` at
the requested model's price, and always: usage total = billed tokens + tokens_saved.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tenants import quotas

from ..models import Technique
from ..pricing import Price, count_tokens
from . import exact_cache, semantic_replica, semantic_stage, singleflight
from .admission import completion_allowance, prompt_text, reserve_more
from .canonical import canonicalize
from .decompose import Decomposition, compose, split
from .exact_cache import Cached
from .ledger import Record
from .plan import Plan, question_sized
from .prompt_opt import count_prompt_tokens
from .responses import is_storable, usage_of
from .serve import serve_response
from .types import Call, Reply
from .upstream import call_json


async def _lookup_part(call: Call, rec: Record, plan: Plan, part_request: dict[str, Any], index: int
                       ) -> tuple[Cached | None, Any, str, Any]:
    tenant_id = call.principal.tenant_id
    canon = canonicalize(tenant_id, "chat", part_request, call.options.namespace)
    if plan.exact:
        hit = await exact_cache.lookup(tenant_id, canon.key)
        if hit is not None:
            exact_cache.count_hit(tenant_id, canon.key)
            rec.stage("part", index=index, hit="exact")
            return hit, None, "", canon
    if plan.cfg.semantic_cache and question_sized(canon.last_user):
        hit, vector, text = await semantic_stage.find(tenant_id, part_request["messages"], canon.partition,
                                                      plan.cfg, rec, label=f"part{index}_semantic")
        if hit is not None:
            rec.stage("part", index=index, hit="semantic")
            return hit, vector, text, canon
        return None, vector, text, canon
    return None, None, "", canon


async def try_decompose(call: Call, rec: Record, plan: Plan, price: Price, reservation: quotas.Reservation,
                        leader: singleflight.Leader | None) -> Reply | None:
    decomposition: Decomposition | None = split(call.body)
    if decomposition is None:
        return None
    parts = decomposition.parts
    looked = await asyncio.gather(*[_lookup_part(call, rec, plan, p.request, p.index) for p in parts])
    hits = sum(1 for cached, *_ in looked if cached is not None)
    rec.stage("decompose", parts=len(parts), hits=hits)
    if hits == 0:
        return None

    missing = [i for i, (cached, *_) in enumerate(looked) if cached is None]
    if missing and not await _worth_and_reserved(call, rec, price, reservation, [parts[i].request for i in missing]):
        return None
    started = time.perf_counter()
    results = await asyncio.gather(*[call_json(call, rec, parts[i].request, rec.model) for i in missing],
                                   return_exceptions=True)
    rec.upstream_latency_ms = max(rec.upstream_latency_ms, (time.perf_counter() - started) * 1000)
    fresh_answers = {i: r for i, r in zip(missing, results, strict=True) if not isinstance(r, BaseException)}
    # What the upstream billed is recorded whatever happens next: the calls that succeeded were paid for.
    prompt_used = sum(usage_of(r)[0] for r in fresh_answers.values())
    completion_used = sum(usage_of(r)[1] for r in fresh_answers.values())
    rec.prompt_tokens = prompt_used
    rec.completion_tokens = completion_used
    rec.cost_usd = price.cost(prompt_used, completion_used)
    rec.cost_known = price.known or not (prompt_used or completion_used)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        rec.stage("decompose_failed", failed=len(failures), succeeded=len(fresh_answers))
        raise failures[0]

    answers: list[str] = []
    answer_tokens = 0  # the parts' answers as the upstream counted them (stored or fresh)
    for i, (cached, vector, text, canon) in enumerate(looked):
        if cached is not None:
            answers.append(_text(cached.response))
            answer_tokens += cached.completion_tokens
            continue
        response = fresh_answers[i]
        p, c = usage_of(response)
        answer_tokens += c
        answers.append(_text(response))
        if plan.store and is_storable(response):
            stored = Cached(response=response, prompt_tokens=p, completion_tokens=c,
                            request_text=text or canon.last_user, key_hash=canon.key)
            await exact_cache.put(call.principal.tenant_id, stored, plan.ttl)
            embedding = semantic_replica.to_bytes(vector) if vector is not None else None
            exact_cache.record_entry(call.principal.tenant_id, stored,
                                     scope_hash=canon.partition if embedding else canon.scope,
                                     model=rec.model, namespace=call.options.namespace, ttl=plan.ttl,
                                     embedding=embedding, is_part=True)

    composed = compose(decomposition, answers)
    # Only what no upstream ever counted is estimated locally: the original prompt (never sent
    # whole) and the headings LEO adds; each part's answer keeps its upstream count. (Estimating
    # the whole composed text at ~4 characters a token overstated the counterfactual.) The prompt
    # is never reported below what the part calls were billed for, so usage >= the ledger's tokens.
    original_prompt = max(count_prompt_tokens(call.body.get("messages") or [], count_tokens), prompt_used)
    headings = max(0, count_tokens(composed) - sum(count_tokens(a) for a in answers))
    completion = answer_tokens + headings
    usage = {"prompt_tokens": original_prompt, "completion_tokens": completion,
             "total_tokens": original_prompt + completion}
    rec.technique = Technique.DECOMPOSED
    rec.served_model = rec.model
    rec.counterfactual_usd = price.cost(usage["prompt_tokens"], usage["completion_tokens"])
    rec.tokens_saved = usage["total_tokens"] - prompt_used - completion_used
    response = {
        "id": f"chatcmpl-{call.request_id}", "object": "chat.completion", "created": int(time.time()),
        "model": rec.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": composed}, "finish_reason": "stop",
                     "logprobs": None}],
        "usage": usage,
    }
    return serve_response(call, rec, response, reservation, leader)


async def _worth_and_reserved(call: Call, rec: Record, price: Price, reservation: quotas.Reservation,
                              requests: list[dict[str, Any]]) -> bool:
    """Whether the missing parts should go upstream one by one: they must send less prompt than
    the whole question (each resends the shared context), and the quotas must have room for every
    part call beyond what admission reserved for one call of the whole (estimated the same way)."""
    whole_prompt = count_tokens(prompt_text("chat", call.body))
    parts_prompt = sum(count_tokens(prompt_text("chat", r)) for r in requests)
    if parts_prompt >= whole_prompt:
        rec.stage("decompose_declined", reason="parts_cost_more", whole=whole_prompt, parts=parts_prompt)
        return False
    extra_completion = sum(completion_allowance("chat", r) for r in requests) - completion_allowance("chat", call.body)
    if extra_completion > 0:
        try:
            await reserve_more(call, price, reservation, 0, extra_completion)
        except quotas.QuotaExceeded:
            rec.stage("decompose_declined", reason="quota")
            return False
    return True


def _text(response: dict[str, Any]) -> str:
    choices = response.get("choices") or [{}]
    return ((choices[0].get("message") or {}).get("content")) or ""
