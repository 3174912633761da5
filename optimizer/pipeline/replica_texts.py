"""The questions of the semantic replica's entries, held in memory beside their vectors.

A lookup verifies the nearest entries' questions against the query. Read from the database, they
cost every lookup with candidates a round trip (1-2 ms on SQLite and PostgreSQL under load, about
half the semantic stage's time beside the embedding, #14), although most lookups are misses whose
candidates' answers are never needed. So each entry's question (a few hundred characters at most:
longer messages are never looked up semantically) is held with its vector: it comes with the rows
the replica loads and polls and with the entries this worker stores. An entry that arrived without
it (the Redis feed carries vectors only) gets it from its row at its first lookup. A question
leaves with its entry, and at its entry's expiry, when it is no longer served.

What this trades: a lookup used to find a deleted row at once; now a row deleted without a word to
this worker (a purge in another worker without the Redis feed) is found when its entry is chosen,
and is then not served, or at the next sweep (`semantic_replica._sweep`, every minute). Until then it
can only make a lookup miss, never serve a wrong or purged answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable


class Texts:
    """entry id -> (question, expiry as a Unix time). Ids are unique across tenants (row ids, and
    provisional ids far above them), and a lookup only asks for the ids its tenant's partition
    returned, so one map serves every tenant."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def put(self, entry_id: int, text: str, expires_at: float) -> None:
        with self._lock:
            self._by_id[entry_id] = (text, expires_at)

    def get(self, entry_id: int, now: float | None = None) -> str | None:
        """The question of a live entry; ``None`` when it is unknown here or expired."""
        held = self._by_id.get(entry_id)
        if held is None or held[1] <= (time.time() if now is None else now):
            return None
        return held[0]

    def expired(self, entry_id: int, now: float | None = None) -> bool:
        """Whether this entry is known here to be past its expiry (it must not be served)."""
        held = self._by_id.get(entry_id)
        return held is not None and held[1] <= (time.time() if now is None else now)

    def rename(self, old: int, new: int) -> None:
        with self._lock:
            held = self._by_id.pop(old, None)
            if held is not None:
                self._by_id[new] = held

    def drop(self, entry_ids: Iterable[int]) -> None:
        with self._lock:
            for entry_id in entry_ids:
                self._by_id.pop(entry_id, None)

    def drop_expired(self, now: float | None = None) -> list[int]:
        """Forget the questions of expired entries; returns their ids."""
        now = time.time() if now is None else now
        with self._lock:
            gone = [entry_id for entry_id, (_, until) in self._by_id.items() if until <= now]
            for entry_id in gone:
                del self._by_id[entry_id]
        return gone

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)
