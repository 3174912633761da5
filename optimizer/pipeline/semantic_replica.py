"""Each worker's replica of the semantic cache: the vectors, the questions, a few answers.

The database (`CacheEntry.embedding`) is the source of truth. Each worker keeps an in-process
replica (`optimizer.semantic.VectorIndex`), kept current three ways:

- at once, by the worker that stores an entry (`remember`): its row is written behind, so it
  enters the replica under a provisional id, with its answer in memory, and takes its row's id
  when the writer has written it (`_pending`);
- within milliseconds, in every other worker, from the Redis feed (`replica_feed`): new entries
  once their rows are written, and the ids a purge or eviction deleted;
- within `LEO_SEMANTIC_POLL_SECONDS` (plus the overlap), from the database poll, the catch-up
  path for anything the feed missed (and the only path between processes without Redis).

Each entry's question is held beside its vector (`replica_texts`), so a lookup that misses reads
no row; answers are read when they are served (`candidates_of`) and held for a few seconds.
Deleted or expired entries leave the replica from the feed, when a lookup would serve one whose
row is gone, and by a periodic sweep.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connections
from django.utils import timezone

from leo_optima.core.db import release_connections, run_db

from ..models import CacheEntry
from ..semantic import VectorIndex
from . import replica_feed
from .exact_cache import Cached
from .replica_texts import Texts
from .writer import OnSaved

log = logging.getLogger(__name__)

OVERLAP_SECONDS = 5.0  # re-read a window, since concurrent commits can land out of id order
SWEEP_SECONDS = 60.0
NEW_ROWS_BATCH = 500  # ids per query: under SQLite's bound on query parameters
FEED_BLOCK_MS = 1000
# Provisional ids of entries stored here whose rows are not written yet: far above any row id, so
# they never collide with one (and stay valid keys for both index forms).
PROVISIONAL_BASE = 1 << 62
PENDING_MAX_SECONDS = 60.0  # a row the writer has not settled by then is not served from memory

index = VectorIndex()
texts = Texts()  # each replica entry's question, so a lookup that misses reads no row
_candidates: OrderedDict[tuple[int, int], tuple[Cached, float]] = OrderedDict()
_CANDIDATE_TTL = 5.0
_CANDIDATES_MAX = 10_000
# Held while the copies are trimmed or forgotten: the replica feed's thread forgets purged entries
# while the event loop keeps new ones.
_candidates_lock = threading.Lock()
# (tenant, provisional id) -> (the answer, monotonic deadline): entries stored by this worker
# whose rows the writer has not written yet.
_pending: dict[tuple[int, int], tuple[Cached, float]] = {}
_provisional_ids = itertools.count(PROVISIONAL_BASE)
_refresher: threading.Thread | None = None
_feed_thread: threading.Thread | None = None
_refresher_lock = threading.Lock()


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(bytes(raw), dtype=np.float32)


def partition_key(tenant_id: int, partition: str) -> str:
    return f"{tenant_id}:{partition}"


# --- the replica --------------------------------------------------------------------------------

Row = tuple[int, int, str, bytes, "str | None", "datetime | None"]
"""(id, tenant, partition, vector, question, expiry): the last two are None from the feed."""
ROW_FIELDS = ("pk", "tenant_id", "scope_hash", "embedding", "request_text", "expires_at")


def _add_rows(rows: list[Row]) -> int:
    added = 0
    for pk, tenant_id, scope_hash, raw, text, expires_at in rows:
        if text is not None and expires_at is not None:
            texts.put(pk, text, expires_at.timestamp())
        key = partition_key(tenant_id, scope_hash)
        if (key, pk) in index:
            continue
        index.add(key, pk, from_bytes(raw))
        added += 1
    return added


def _live_rows(after_id: int = 0, limit: int = 5000) -> list[Row]:
    qs = CacheEntry.objects.filter(embedding__isnull=False, expires_at__gt=timezone.now())
    if after_id:
        qs = qs.filter(pk__gt=after_id)
    return list(qs.order_by("pk").values_list(*ROW_FIELDS)[:limit])


def _new_rows(since: Any) -> list[Row]:
    """The rows created since ``since`` that this replica lacks. The poll's window overlaps the
    last one, so most of its rows are here already: their ids are read first, and the vectors of
    the new ones only (a vector is 1.5 KB; re-reading every row of the window on every poll cost
    each worker thousands of rows a second under load)."""
    recent = CacheEntry.objects.filter(embedding__isnull=False, expires_at__gt=timezone.now(), created_at__gte=since)
    new = [pk for pk, tenant_id, scope_hash in recent.values_list("pk", "tenant_id", "scope_hash")
           if (partition_key(tenant_id, scope_hash), pk) not in index]
    rows: list[Row] = []
    for start in range(0, len(new), NEW_ROWS_BATCH):
        chunk = CacheEntry.objects.filter(pk__in=new[start:start + NEW_ROWS_BATCH])
        rows += chunk.values_list(*ROW_FIELDS)
    return rows


def load_all() -> int:
    """Fill the replica from the database (at worker start)."""
    total, after = 0, 0
    while True:
        rows = _live_rows(after)
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
    index.remove_ids(texts.drop_expired())  # anything past its expiry the query above missed
    # Rows deleted without a word to this worker (a purge elsewhere without the feed, a feed
    # message missed): their entries leave here. Held before the query, so none is new since.
    held = sorted(pk for pk in texts.ids() if pk < PROVISIONAL_BASE)
    live: set[int] = set()
    for start in range(0, len(held), NEW_ROWS_BATCH):
        live.update(CacheEntry.objects.filter(pk__in=held[start:start + NEW_ROWS_BATCH]).values_list("pk", flat=True))
    _forget_everywhere(set(held) - live)


def _forget_everywhere(entry_ids: set[int]) -> None:
    """`forget_entries` for ids of any tenant."""
    with _candidates_lock:
        for key in [key for key in _candidates if key[1] in entry_ids]:
            del _candidates[key]
    texts.drop(entry_ids)
    index.remove_ids(entry_ids)


def _refresh_loop() -> None:
    try:
        load_all()
    except Exception:
        log.exception("semantic index: initial load failed; continuing with incremental refresh")
    finally:
        connections.close_all()
    last_sweep = time.monotonic()
    since = timezone.now() - timedelta(seconds=OVERLAP_SECONDS)
    while True:
        time.sleep(settings.LEO_SEMANTIC_POLL_SECONDS)
        try:
            poll_started = timezone.now()
            _add_rows(_new_rows(since))
            since = poll_started - timedelta(seconds=OVERLAP_SECONDS)
            if time.monotonic() - last_sweep > SWEEP_SECONDS:
                _sweep()
                last_sweep = time.monotonic()
        except Exception:  # the database restarting: keep serving what we have, retry next round
            log.warning("semantic index refresh failed", exc_info=True)
            connections.close_all()
        finally:
            release_connections()


def _apply(message: replica_feed.Message) -> None:
    if isinstance(message, replica_feed.Added):
        _add_rows([(message.entry_id, message.tenant_id, message.partition, message.vector, None, None)])
    else:
        forget_entries(message.tenant_id, message.entry_ids)


def _feed_loop(feed: replica_feed.Feed) -> None:
    reader = feed.reader(FEED_BLOCK_MS)
    while True:
        try:
            messages = reader.read()
        except replica_feed.FeedUnavailable as exc:  # the poll covers the gap; retry shortly
            log.warning("semantic feed unavailable (%s); relying on the database poll", exc)
            time.sleep(1.0)
            continue
        for message in messages:
            try:
                _apply(message)
            except Exception:  # one bad message (a vector of the wrong size) must not stop the feed
                log.exception("semantic feed: could not apply a message")


def start_refresher() -> None:
    """Start this worker's replica threads (idempotent): the database poll, and the Redis feed."""
    global _refresher, _feed_thread
    if _refresher is not None and _refresher.is_alive():
        return
    with _refresher_lock:
        if _refresher is None or not _refresher.is_alive():
            feed = replica_feed.get_feed()
            if feed is not None and (_feed_thread is None or not _feed_thread.is_alive()):
                # Subscribed before the initial load, so nothing written meanwhile is missed.
                _feed_thread = threading.Thread(target=_feed_loop, args=(feed,), name="leo-semantic-feed",
                                                daemon=True)
                _feed_thread.start()
            _refresher = threading.Thread(target=_refresh_loop, name="leo-semantic-refresh", daemon=True)
            _refresher.start()


def remember(tenant_id: int, partition: str, cached: Cached, vector: np.ndarray, ttl: int) -> OnSaved:
    """Make an entry this worker has just stored searchable here at once; returns the callback
    for its row's write (`exact_cache.record_entry(..., on_saved=...)`).

    The row is written behind, so its id is not known yet: the vector enters the replica under a
    provisional id and the answer waits in `_pending`. When the row is written, the entry takes
    the row's id (in one step: no search sees it missing or twice) and becomes an ordinary entry,
    checked against its row like any other; when the row is dropped, the entry leaves."""
    entry_id = next(_provisional_ids)
    key = partition_key(tenant_id, partition)
    _pending[(tenant_id, entry_id)] = (cached, time.monotonic() + min(float(ttl), PENDING_MAX_SECONDS))
    texts.put(entry_id, cached.request_text, time.time() + min(float(ttl), PENDING_MAX_SECONDS))
    index.add(key, entry_id, vector)

    def saved(row: CacheEntry) -> None:
        if row.pk is not None:  # its question and answer are held under the row's id first
            _keep(tenant_id, row.pk, replace(cached, entry_id=row.pk), row.expires_at)
            index.rename(key, entry_id, row.pk)
        else:
            index.remove(key, entry_id)
        texts.drop([entry_id])
        _pending.pop((tenant_id, entry_id), None)

    return saved


def refresh_now() -> int:
    """Synchronously pull recent entries (tests and benchmarks; the refresher does this itself)."""
    return _add_rows(_new_rows(timezone.now() - timedelta(seconds=OVERLAP_SECONDS * 4)))


# --- answers held for lookups ------------------------------------------------------------------

def _fetch(tenant_id: int, entry_ids: list[int]) -> dict[int, tuple[Cached, datetime]]:
    rows = CacheEntry.objects.filter(pk__in=entry_ids, tenant_id=tenant_id, expires_at__gt=timezone.now())
    return {row.pk: (Cached.from_entry(row), row.expires_at) for row in rows}


def _keep(tenant_id: int, entry_id: int, cached: Cached, expires_at: datetime) -> None:
    """Hold an entry's answer for a few seconds, never past its expiry."""
    texts.put(entry_id, cached.request_text, expires_at.timestamp())
    left = (expires_at - timezone.now()).total_seconds()
    now = time.monotonic()
    key = (tenant_id, entry_id)
    with _candidates_lock:
        _candidates[key] = (cached, now + min(_CANDIDATE_TTL, left))
        _candidates.move_to_end(key)
        # Oldest first: drop the copies whose few seconds are over (they would otherwise stay
        # resident, answers and all, until 10,000 newer ones pushed them out), and any beyond the cap.
        while _candidates:
            _, until = next(iter(_candidates.values()))
            if until > now and len(_candidates) <= _CANDIDATES_MAX:
                break
            _candidates.popitem(last=False)


async def candidates_of(tenant_id: int, entry_ids: list[int]) -> dict[int, Cached]:
    """The stored entries behind these replica ids that still exist: from this worker's pending
    entries and recent copies, and the rest in one query (not one round trip per candidate)."""
    now = time.monotonic()
    found: dict[int, Cached] = {}
    missing: list[int] = []
    for entry_id in entry_ids:
        if entry_id >= PROVISIONAL_BASE:  # stored here, row not written yet: no row to ask
            pending = _pending.get((tenant_id, entry_id))
            if pending is not None and pending[1] > now:
                found[entry_id] = pending[0]
            continue
        hit = _candidates.get((tenant_id, entry_id))
        if hit is not None and hit[1] > now:
            found[entry_id] = hit[0]
        else:
            missing.append(entry_id)
    if missing:
        for entry_id, (cached, expires_at) in (await run_db(_fetch, tenant_id, missing)).items():
            _keep(tenant_id, entry_id, cached, expires_at)
            found[entry_id] = cached
    return found


def forget_entries(tenant_id: int, entry_ids: list[int]) -> None:
    """Purged or evicted entries leave this worker's replica and its copies of their answers.
    The purge publishes them on the feed, so every worker does this at once; without the feed,
    another worker serves a copy for at most `_CANDIDATE_TTL` seconds, then finds the row gone
    when it would serve it, and drops the entry then or at its next sweep (`replica_texts`)."""
    for entry_id in entry_ids:
        with _candidates_lock:
            _candidates.pop((tenant_id, entry_id), None)
    texts.drop(entry_ids)
    index.remove_ids(entry_ids, prefix=partition_key(tenant_id, ""))
