"""The exact cache: the same scope and the same conversation get the stored answer.

Values live in the shared state (Redis in production, process memory by default) under
`leo:c:<tenant>:<key>`, with the tenant's TTL; every stored answer also gets a `CacheEntry` row,
written behind, which is the source of truth for the semantic index, purges and stats. Once an
entry with an embedding has its row (and so its id), it is announced to every worker's semantic
replica (`replica_feed`).
A state outage means a miss, never an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from leo_optima.core.state import StateUnavailable, get_state

from ..models import CacheEntry
from . import replica_feed
from .writer import OnSaved, writer

log = logging.getLogger(__name__)


def kv_key(tenant_id: int, key_hash: str) -> str:
    return f"leo:c:{tenant_id}:{key_hash}"


@dataclass
class Cached:
    """A stored answer, as kept in the shared state."""

    response: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    request_text: str
    key_hash: str
    entry_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def dumps(self) -> bytes:
        return json.dumps({"r": self.response, "p": self.prompt_tokens, "c": self.completion_tokens,
                           "t": self.request_text, "k": self.key_hash, "e": self.entry_id},
                          separators=(",", ":")).encode()

    @classmethod
    def loads(cls, raw: bytes) -> Cached:
        d = json.loads(raw)
        return cls(response=d["r"], prompt_tokens=d["p"], completion_tokens=d["c"], request_text=d["t"],
                   key_hash=d["k"], entry_id=d.get("e"))

    @classmethod
    def from_entry(cls, entry: CacheEntry) -> Cached:
        return cls(response=entry.response, prompt_tokens=entry.prompt_tokens,
                   completion_tokens=entry.completion_tokens, request_text=entry.request_text,
                   key_hash=entry.key_hash, entry_id=entry.pk)


async def lookup(tenant_id: int, key_hash: str) -> Cached | None:
    try:
        raw = await get_state().get(kv_key(tenant_id, key_hash))
    except StateUnavailable:
        return None
    if raw is None:
        return None
    try:
        return Cached.loads(raw)
    except (ValueError, KeyError):
        return None


async def put(tenant_id: int, cached: Cached, ttl: int) -> None:
    try:
        await get_state().set(kv_key(tenant_id, cached.key_hash), cached.dumps(), ttl)
    except StateUnavailable:
        pass


def record_entry(tenant_id: int, cached: Cached, *, scope_hash: str, model: str, namespace: str, ttl: int,
                 embedding: bytes | None, is_part: bool = False, on_saved: OnSaved | None = None) -> CacheEntry:
    """Queue the CacheEntry row (written behind). Returns the unsaved row; `on_saved` is called
    (in the writer's thread) once the row is written, or dropped."""
    size = len(cached.dumps()) + (len(embedding) if embedding else 0)
    entry = CacheEntry(
        tenant_id=tenant_id, scope_hash=scope_hash, key_hash=cached.key_hash, model=model, namespace=namespace,
        # PostgreSQL text cannot hold NUL; the text is only read by the verifier and the portal.
        request_text=cached.request_text.replace("\x00", ""), embedding=embedding, response=cached.response,
        prompt_tokens=cached.prompt_tokens, completion_tokens=cached.completion_tokens, is_part=is_part,
        size_bytes=size, created_at=timezone.now(), expires_at=timezone.now() + timedelta(seconds=ttl),
    )
    writer.put_row(entry, _announced(on_saved) if embedding is not None else on_saved)
    return entry


def _announced(on_saved: OnSaved | None) -> OnSaved:
    def saved(row: Any) -> None:
        if on_saved is not None:  # this worker's replica first: its copy takes the row's id
            on_saved(row)
        if row.pk is not None:
            replica_feed.publish_added(row.pk, row.tenant_id, row.scope_hash, bytes(row.embedding))
    return saved


def count_hit(tenant_id: int, key_hash: str) -> None:
    writer.hit_by_key(tenant_id, key_hash)
