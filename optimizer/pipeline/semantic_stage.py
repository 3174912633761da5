"""The semantic cache stage: embed the conversation, search this tenant's partition, verify, decide.

The database (`CacheEntry.embedding`) is the source of truth. Each worker keeps an in-process
replica (`optimizer.semantic.VectorIndex`) that a refresher thread fills incrementally: it polls
for entries written in the last few seconds every `REFRESH_SECONDS`, so a new entry is visible to
every worker within a second. Deleted or expired entries are dropped from the replica when a
lookup finds their row gone, and by a periodic sweep.

The cosine threshold and the pair judge's floor come from the tenant's adaptive strictness (moved
by `POST /v1/feedback`, see `optimizer.semantic.policy.AdaptiveStrictness` and `rule_at`) over
its configured threshold; the margin and the wrong-answer bound come from its settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db import connections, transaction
from django.utils import timezone

from leo_optima.db import run_db

from ..models import CacheEntry, Feedback, OptimizerSettings, RequestLog, Technique
from ..semantic import AdaptiveStrictness, VectorIndex, conversation_text, get_embedder
from ..semantic.judge import get_judge
from ..semantic.policy import CANDIDATES, choose, rule_at
from . import config
from .exact_cache import Cached

if TYPE_CHECKING:
    from .ledger import Record
    from .run import _Plan
    from .types import Call

log = logging.getLogger(__name__)

REFRESH_SECONDS = 0.3
OVERLAP_SECONDS = 5.0  # re-read a window, since concurrent commits can land out of id order
SWEEP_SECONDS = 60.0

index = VectorIndex()
_candidates: OrderedDict[tuple[int, int], tuple[Cached, float]] = OrderedDict()
_CANDIDATE_TTL = 5.0
_refresher: threading.Thread | None = None
_refresher_lock = threading.Lock()
_loaded = threading.Event()


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(bytes(raw), dtype=np.float32)


def partition_key(tenant_id: int, partition: str) -> str:
    return f"{tenant_id}:{partition}"


# --- the replica --------------------------------------------------------------------------------

def _add_rows(rows: list[tuple[int, int, str, bytes]]) -> int:
    added = 0
    for pk, tenant_id, scope_hash, raw in rows:
        key = partition_key(tenant_id, scope_hash)
        if (key, pk) in index:
            continue
        index.add(key, pk, from_bytes(raw))
        added += 1
    return added


def _live_rows(since: Any | None, after_id: int = 0, limit: int = 5000) -> list[tuple[int, int, str, bytes]]:
    qs = CacheEntry.objects.filter(embedding__isnull=False, expires_at__gt=timezone.now())
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if after_id:
        qs = qs.filter(pk__gt=after_id)
    return list(qs.order_by("pk").values_list("pk", "tenant_id", "scope_hash", "embedding")[:limit])


def load_all() -> int:
    """Fill the replica from the database (at worker start)."""
    total, after = 0, 0
    while True:
        rows = _live_rows(None, after)
        if not rows:
            break
        total += _add_rows(rows)
        after = rows[-1][0]
    return total


def _sweep() -> None:
    now = timezone.now()
    gone = CacheEntry.objects.filter(embedding__isnull=False, expires_at__lte=now,
                                     expires_at__gt=now - timedelta(seconds=SWEEP_SECONDS * 2))
    for pk, tenant_id, scope_hash in gone.values_list("pk", "tenant_id", "scope_hash"):
        index.remove(partition_key(tenant_id, scope_hash), pk)


def _refresh_loop() -> None:
    try:
        load_all()
    except Exception:
        log.exception("semantic index: initial load failed; continuing with incremental refresh")
    finally:
        connections.close_all()
        _loaded.set()
    last_sweep = time.monotonic()
    since = timezone.now() - timedelta(seconds=OVERLAP_SECONDS)
    while True:
        time.sleep(REFRESH_SECONDS)
        try:
            poll_started = timezone.now()
            _add_rows(_live_rows(since))
            since = poll_started - timedelta(seconds=OVERLAP_SECONDS)
            if time.monotonic() - last_sweep > SWEEP_SECONDS:
                _sweep()
                last_sweep = time.monotonic()
        except Exception:  # the database restarting: keep serving what we have, retry next round
            log.warning("semantic index refresh failed", exc_info=True)
        finally:
            connections.close_all()


def start_refresher() -> None:
    global _refresher
    if _refresher is not None and _refresher.is_alive():
        return
    with _refresher_lock:
        if _refresher is None or not _refresher.is_alive():
            _refresher = threading.Thread(target=_refresh_loop, name="leo-semantic-refresh", daemon=True)
            _refresher.start()


def refresh_now() -> int:
    """Synchronously pull recent entries (tests and benchmarks; the refresher does this itself)."""
    return _add_rows(_live_rows(timezone.now() - timedelta(seconds=OVERLAP_SECONDS * 4)))


# --- lookup -------------------------------------------------------------------------------------

def _fetch(tenant_id: int, entry_id: int) -> Cached | None:
    row = CacheEntry.objects.filter(pk=entry_id, tenant_id=tenant_id, expires_at__gt=timezone.now()).first()
    return Cached.from_entry(row) if row else None


async def _candidate(tenant_id: int, entry_id: int) -> Cached | None:
    hit = _candidates.get((tenant_id, entry_id))
    now = time.monotonic()
    if hit is not None and hit[1] > now:
        return hit[0]
    cached = await run_db(_fetch, tenant_id, entry_id)
    if cached is not None:
        _candidates[(tenant_id, entry_id)] = (cached, now + _CANDIDATE_TTL)
        while len(_candidates) > 10_000:
            _candidates.popitem(last=False)
    return cached


def forget_entries(tenant_id: int, entry_ids: list[int]) -> None:
    """Purged or evicted entries: drop this worker's copies, so the next lookup asks the database
    (finds the row gone and removes it from the replica). Other workers hold a copy for at most
    `_CANDIDATE_TTL` seconds."""
    for entry_id in entry_ids:
        _candidates.pop((tenant_id, entry_id), None)


def strictness_of(state: dict[str, Any] | None, bound: float) -> AdaptiveStrictness:
    """The tenant's adaptive strictness from its saved state (fresh when there is none); the
    wrong-answer bound is always the one in its settings now (held inside the open interval the
    staircase needs, since the admin can store any float)."""
    return AdaptiveStrictness.from_dict({**(state or {}), "bound": min(max(bound, 1e-4), 0.49)})


def rule_of(cfg: config.TenantConfig) -> tuple[float, float]:
    """``(cosine threshold, judge floor)`` for this tenant now."""
    level = strictness_of(cfg.adaptive_state, cfg.max_wrong_rate).level
    return rule_at(level, cfg.semantic_threshold)


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
    key = partition_key(tenant_id, partition)
    top = index.search(key, vector, k=CANDIDATES)
    threshold, min_probability = rule_of(cfg)
    # Fetch the stored texts of the candidates that could matter (the ones `choose` will verify);
    # an entry whose row is gone (purged, expired) leaves the replica and the list.
    candidates: list[tuple[int, float, str]] = []
    stored: dict[int, Cached] = {}
    for entry_id, similarity in top:
        if similarity < threshold - cfg.semantic_margin:
            break
        cached = await _candidate(tenant_id, entry_id)
        if cached is None:
            index.remove(key, entry_id)
            continue
        stored[entry_id] = cached
        candidates.append((entry_id, similarity, cached.request_text))
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
    candidate = stored.get(chosen) if chosen is not None else None
    similarity = round(decision.similarity, 4) if top else None
    verifier = decision.reason.split(":", 1)[1] if decision.reason.startswith("verifier:") else (
        "ok" if decision.hit else None)
    rec.stage(label, hit=decision.hit, reason=decision.reason, similarity=similarity,
              threshold=round(threshold, 4), min_probability=round(min_probability, 4),
              verifier=verifier, candidates=len(candidates),
              ms=round((time.perf_counter() - started) * 1000, 2))
    if decision.hit and candidate is not None:
        return candidate, vector, text
    return None, vector, text


async def lookup(call: Call, rec: Record, plan: _Plan) -> Cached | None:
    cached, vector, text = await find(call.principal.tenant_id, call.body.get("messages") or [],
                                      plan.canon.partition, plan.cfg, rec)
    plan.embedding = vector
    plan.embedded_text = text
    last = rec.trail["stages"][-1] if rec.trail["stages"] else {}
    rec.similarity = last.get("similarity")
    return cached


# --- feedback -----------------------------------------------------------------------------------

def record_feedback(tenant_id: int, request_id: str, correct: bool) -> dict[str, Any] | None:
    """Store a verdict on a served answer; a verdict on a semantic hit moves the tenant's strictness."""
    log_row = RequestLog.objects.filter(tenant_id=tenant_id, request_id=request_id).first()
    if log_row is None:
        return None
    with transaction.atomic():
        Feedback.objects.update_or_create(request_log=log_row, defaults={"tenant_id": tenant_id, "correct": correct})
        rule: dict[str, float] = {}
        if log_row.technique == Technique.SEMANTIC:
            settings_row = OptimizerSettings.objects.select_for_update().filter(tenant_id=tenant_id).first()
            if settings_row is None:
                settings_row = config.get_settings_row(tenant_id)
            adaptive = strictness_of(settings_row.adaptive_state, settings_row.max_wrong_rate)
            level = adaptive.record(correct)
            settings_row.adaptive_state = adaptive.to_dict()
            settings_row.save(update_fields=["adaptive_state", "updated_at"])
            threshold, min_probability = rule_at(level, settings_row.semantic_threshold)
            rule = {"semantic_strictness": round(level, 6), "semantic_threshold": round(threshold, 6),
                    "semantic_min_probability": round(min_probability, 6)}
    config.forget(tenant_id)
    return {"request_id": request_id, "correct": correct, "technique": log_row.technique,
            "semantic_strictness": None, "semantic_threshold": None, "semantic_min_probability": None,
            **rule}
