"""The semantic cache stage: embed the conversation, search this tenant's partition, verify, decide.

The partition is searched in this worker's replica (`semantic_replica`): the nearest entries'
questions are verified against the query there, and the chosen entry's answer is read to serve
it. The cosine threshold and the judge's floor come from the tenant's adaptive strictness
(`strictness.rule_of`); the margin from its settings.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..semantic import conversation_text, get_embedder
from ..semantic.judge import get_judge
from ..semantic.policy import CANDIDATES, Decision, choose
from . import config
from .exact_cache import Cached
from .ledger import Record
from .plan import Plan
from .semantic_replica import candidates_of, index, partition_key, start_refresher, texts
from .strictness import rule_of
from .types import Call


async def embed(messages: list[dict[str, Any]]) -> tuple[np.ndarray | None, str]:
    """The vector and text a conversation is stored under (for an answer that was not looked up)."""
    text = conversation_text(messages)
    if not text:
        return None, ""
    return await get_embedder().aencode_one(text), text


async def _candidate_texts(tenant_id: int, key: str, near: list[tuple[int, float]]
                           ) -> tuple[list[tuple[int, float, str]], dict[int, Cached]]:
    """The questions of the candidates `choose` will verify, ``(id, similarity, question)``, and
    the answers read on the way; an entry whose row is gone leaves the replica and the list.

    The questions held in memory are used as they are (a miss reads no row); the chosen entry's
    row is read when it is served, so a deleted one is never served (`replica_texts`)."""
    now = time.time()
    known = {entry_id: held for entry_id, _ in near if (held := texts.get(entry_id, now)) is not None}
    unread = [entry_id for entry_id, _ in near if entry_id not in known and not texts.expired(entry_id, now)]
    stored = await candidates_of(tenant_id, unread) if unread else {}
    candidates: list[tuple[int, float, str]] = []
    for entry_id, similarity in near:
        question = known.get(entry_id) or (stored[entry_id].request_text if entry_id in stored else None)
        if question is None:
            index.remove(key, entry_id)
            texts.drop([entry_id])
            continue
        candidates.append((entry_id, similarity, question))
    return candidates, stored


async def find(tenant_id: int, messages: list[dict[str, Any]], partition: str, cfg: config.TenantConfig,
               rec: Record, label: str = "semantic") -> tuple[Cached | None, np.ndarray | None, str]:
    """Search one partition for a conversation. Returns (served entry or None, the query's vector,
    the embedded text), recording the decision in the request's trail."""
    start_refresher()
    text = conversation_text(messages)
    if not text:
        return None, None, ""
    started = time.perf_counter()
    vector = await get_embedder().aencode_one(text)
    embed_ms = round((time.perf_counter() - started) * 1000, 2)
    key = partition_key(tenant_id, partition)
    top = index.search(key, vector, k=CANDIDATES)
    threshold, min_probability = rule_of(cfg)
    near = [(entry_id, similarity) for entry_id, similarity in top if similarity >= threshold - cfg.semantic_margin]
    candidates, stored = await _candidate_texts(tenant_id, key, near)
    if not candidates and top:
        candidates = [(entry_id, similarity, "") for entry_id, similarity in top[:1]
                      if similarity < threshold - cfg.semantic_margin]
    def judge(entry_id: int, entry_text: str) -> float:
        stored_vector = index.vector(key, entry_id)
        if stored_vector is None:  # left the replica meanwhile: nothing to vouch for it
            return 0.0
        return get_judge().probability(vector, stored_vector, text, entry_text)

    def between(a: int, b: int) -> float:
        va, vb = index.vector(key, a), index.vector(key, b)
        return float(np.dot(va, vb)) if va is not None and vb is not None else 0.0

    chosen, decision = choose(text, candidates, threshold, cfg.semantic_margin,
                              judge=judge, min_probability=min_probability, between=between)
    candidate = None
    if decision.hit and chosen is not None:
        candidate = stored.get(chosen) or (await candidates_of(tenant_id, [chosen])).get(chosen)
        if candidate is None:  # its row went meanwhile: a purge or expiry this replica had not seen
            index.remove(key, chosen)
            texts.drop([chosen])
            decision = Decision(False, "gone", decision.similarity)
    similarity = round(decision.similarity, 4) if top else None
    verifier = decision.reason.split(":", 1)[1] if decision.reason.startswith("verifier:") else (
        "ok" if decision.hit else None)
    rec.stage(label, hit=decision.hit, reason=decision.reason, similarity=similarity,
              threshold=round(threshold, 4), min_probability=round(min_probability, 4),
              verifier=verifier, candidates=len(candidates),
              ms=round((time.perf_counter() - started) * 1000, 2), embed_ms=embed_ms)
    if decision.hit and candidate is not None:
        return candidate, vector, text
    return None, vector, text


async def lookup(call: Call, rec: Record, plan: Plan) -> Cached | None:
    cached, vector, text = await find(call.principal.tenant_id, call.body.get("messages") or [],
                                      plan.canon.partition, plan.cfg, rec)
    plan.embedding = vector
    plan.embedded_text = text
    last = rec.trail["stages"][-1] if rec.trail["stages"] else {}
    rec.similarity = last.get("similarity")
    return cached
