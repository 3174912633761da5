"""The verified semantic cache core: embeddings, a partitioned vector index, a verifier and the
hit policy. Plain Python, no Django: the pipeline and the database layer call these.

Typical lookup (inside the pipeline, per request)::

    text = conversation_text(messages)
    vec = await get_embedder().aencode_one(text)
    top = index.search(partition, vec, k=CANDIDATES)   # [(entry_id, similarity), ...]
    threshold, min_probability = rule_at(strictness.level, tenant_threshold)
    entry_id, decision = choose(text, [(i, s, stored_text_of(i)) for i, s in top], threshold,
                                DEFAULT_MARGIN, judge=judge_closure, min_probability=min_probability)

See docs/semantic_cache.md for the definitions and the measured figures.
"""

from __future__ import annotations

from .embedder import DIM, Embedder, conversation_text, get_embedder
from .index import VectorIndex
from .policy import (
    DEFAULT_MARGIN,
    DEFAULT_THRESHOLD,
    DEFAULT_WRONG_RATE_BOUND,
    AdaptiveStrictness,
    Decision,
    decide,
)
from .verifier import Verdict, verify

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLD",
    "DEFAULT_WRONG_RATE_BOUND",
    "DIM",
    "AdaptiveStrictness",
    "Decision",
    "Embedder",
    "VectorIndex",
    "Verdict",
    "conversation_text",
    "decide",
    "get_embedder",
    "verify",
]
