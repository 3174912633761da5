"""Write-behind for the hot path: ledger rows, new cache entries and cache hit counts.

The proxy must not wait for the database on every request, so rows go into a queue that one
thread per process drains every `LEO_LEDGER_FLUSH_SECONDS` with `bulk_create`. At process exit
(gunicorn/uvicorn shut workers down gracefully on SIGTERM) the queue is flushed, so a restart
loses nothing; only a hard kill (SIGKILL, power loss) can lose the last fraction of a second, a
trade-off documented in SECURITY.md. A failed flush is retried, never dropped silently.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, connections, models, transaction
from django.db.models import F
from django.utils import timezone

from leo_optima.core.db import release_connections

from ..models import CacheEntry

log = logging.getLogger(__name__)

BATCH = 500

OnSaved = Callable[[models.Model], None]
"""Called in the writer thread once a row's write is settled: with its primary key set when it
was written, with `pk is None` when it was dropped as unwritable."""


class Writer:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending_retry: list[tuple[str, Any]] = []
        self._idle = threading.Event()
        self._idle.set()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="leo-writer", daemon=True)
                    self._thread.start()

    def put_row(self, row: models.Model, on_saved: OnSaved | None = None) -> None:
        self._idle.clear()
        self._queue.put(("row", (row, on_saved)))
        self._ensure_thread()

    def hit_by_key(self, tenant_id: int, key_hash: str) -> None:
        """Count a cache hit on the entry with this key (by key: its id is not known on the hot path)."""
        self._idle.clear()
        self._queue.put(("hit", (tenant_id, key_hash)))
        self._ensure_thread()

    def _run(self) -> None:
        interval = settings.LEO_LEDGER_FLUSH_SECONDS
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                self._idle.set()
                continue
            time.sleep(interval)  # let a batch gather
            items = [item]
            while len(items) < BATCH * 4:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._flush_items(items)
            if self._queue.empty() and not self._pending_retry:
                self._idle.set()

    def _flush_items(self, items: list[tuple[str, Any]]) -> None:
        items = self._pending_retry + items
        self._pending_retry = []
        rows: dict[type[models.Model], list[models.Model]] = {}
        callbacks: list[tuple[models.Model, OnSaved]] = []
        hits: Counter[tuple[int, str]] = Counter()
        for kind, payload in items:
            if kind == "row":
                row, on_saved = payload
                rows.setdefault(type(row), []).append(row)
                if on_saved is not None:
                    callbacks.append((row, on_saved))
            else:
                hits[payload] += 1
        try:
            with transaction.atomic():
                for model, batch in rows.items():
                    model.objects.bulk_create(batch, batch_size=BATCH)
        except (IntegrityError, DataError):
            # One bad row (say, its tenant was deleted meanwhile) must not block the rest forever.
            self._write_one_by_one(rows)
        except Exception:
            # The transaction rolled back as a whole (e.g. PostgreSQL restarting), so retrying the
            # whole batch later writes each row exactly once.
            log.exception("write-behind flush failed; %d items kept for retry", len(items))
            self._pending_retry = items[-100_000:]
            connections.close_all()
            time.sleep(1.0)
            return
        # bulk_create set the primary keys (PostgreSQL and SQLite >= 3.35 return them).
        for row, on_saved in callbacks:
            try:
                on_saved(row)
            except Exception:  # a listener's failure must not stop the ledger
                log.exception("write-behind: a row's on_saved callback failed")
        try:
            if hits:
                now = timezone.now()
                for (tenant_id, key_hash), n in hits.items():
                    CacheEntry.objects.filter(tenant_id=tenant_id, key_hash=key_hash).update(
                        hits=F("hits") + n, last_hit_at=now)
        except Exception:  # hit counts are statistics: losing one batch of them is acceptable
            log.warning("could not record cache hits", exc_info=True)
        finally:
            release_connections()

    def _write_one_by_one(self, rows: dict[type[models.Model], list[models.Model]]) -> None:
        for model, batch in rows.items():
            for row in batch:
                row.pk = None
                try:
                    with transaction.atomic():
                        row.save(force_insert=True)
                    continue
                except (IntegrityError, DataError):
                    pass
                # A ledger row whose key was deleted keeps its tenant and loses the key link.
                if getattr(row, "api_key_id", None) is not None:
                    row.api_key_id = None
                    try:
                        with transaction.atomic():
                            row.save(force_insert=True)
                        continue
                    except (IntegrityError, DataError):
                        pass
                log.error("dropping an unwritable %s row (its tenant no longer exists?): %s",
                          model.__name__, getattr(row, "request_id", row.pk))

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is written (tests, shutdown)."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._pending_retry and self._idle.wait(0.05):
                return True
        return False

    def drain_now(self) -> None:
        """Write what is queued from the calling thread (used at exit, when the writer may be gone)."""
        items: list[tuple[str, Any]] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if items or self._pending_retry:
            self._flush_items(items)


writer = Writer()


@atexit.register
def _flush_at_exit() -> None:
    try:
        if not writer.flush(timeout=5.0):
            writer.drain_now()
    except Exception:  # exiting anyway; say so loudly
        log.exception("could not flush the ledger at exit")
