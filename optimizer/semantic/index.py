"""In-process vector index, partitioned by tenant and scope.

The database is the source of truth (each ``CacheEntry`` keeps its float32 embedding); every
worker holds this index as a replica that its refresher fills incrementally. One partition per
cache scope (the caller builds the key, e.g. ``f"{tenant_id}:{scope_hash}"``): a search only ever
looks inside one partition, so an entry of tenant A cannot be returned for tenant B.

A partition has two forms, chosen by size:

- dense (up to ``ANN_ABOVE`` entries): a float32 matrix searched exhaustively with one
  matrix-vector product (about 1 ms at 20k entries). Exact top-k and exact cosines. Most scopes
  of most tenants stay here, and it costs nothing per partition beyond its rows (usearch reserves
  a 16 MB arena per index, which thousands of small partitions could not afford).
- ANN (beyond): a ``usearch`` HNSW index of int8-quantised unit vectors: 384 bytes per vector
  plus the graph, about 0.6 to 0.9 KB per entry against 1.5 KB for float32, and well under a
  millisecond per search at 1M entries. int8 rounding moves a cosine by about 0.002, far below
  the gaps the decision rule works with. A partition is promoted once, when it outgrows dense.

Concurrency: a few writers (the pipeline's replica threads and its request path) and many readers.
A per-partition readers-writer lock lets searches run together while an add, remove or rename
(which may grow the graph's memory) runs alone; the partition map itself is guarded by a plain
lock held only for dictionary access.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np

# onnxruntime (the embedder's backend) segfaults on import when usearch's native module was loaded
# first (usearch 2.26 / onnxruntime 1.31; the reverse order is fine). Load it first, here, where
# usearch is imported, so the order holds whoever imports what.
if importlib.util.find_spec("onnxruntime") is not None:
    import onnxruntime  # noqa: F401

from usearch.index import Index

from .embedder import DIM

ANN_ABOVE = 20_000
"""A partition holds dense float32 rows (exact search) up to this size, then moves to HNSW."""


class _RWLock:
    """Many readers or one writer; writers are not starved (new readers wait for a queued one)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Partition:
    """One partition: dense float32 rows while small, a usearch HNSW index once large."""

    __slots__ = ("_connectivity", "_dtype", "ann", "ids", "lock", "n", "row_of", "vecs")

    def __init__(self, dtype: str, connectivity: int) -> None:
        self.lock = _RWLock()
        self.ann: Index | None = None
        self.vecs = np.empty((16, DIM), dtype=np.float32)
        self.ids = np.empty(16, dtype=np.int64)
        self.row_of: dict[int, int] = {}
        self.n = 0
        self._dtype = dtype
        self._connectivity = connectivity

    def __len__(self) -> int:
        return len(self.ann) if self.ann is not None else self.n

    # All methods below run under the partition lock (write for changes, read for search).

    def contains(self, entry_id: int) -> bool:
        if self.ann is not None:
            return bool(self.ann.contains(entry_id))
        return entry_id in self.row_of

    def add(self, keys: np.ndarray, vecs: np.ndarray, ann_above: int) -> None:
        if self.ann is None and self.n + len(keys) > ann_above:
            self._promote()
        if self.ann is not None:
            # A key twice in one batch: keep its last vector (usearch rejects in-batch repeats).
            _, last = np.unique(keys[::-1], return_index=True)
            if len(last) != len(keys):
                keep = np.sort(len(keys) - 1 - last)
                keys, vecs = keys[keep], vecs[keep]
            present = np.atleast_1d(self.ann.contains(keys.astype(np.uint64)))
            if present.any():
                self.ann.remove(keys[present].astype(np.uint64))
            self.ann.add(keys.astype(np.uint64), vecs, threads=0 if len(keys) > 1000 else 1)
            return
        for key, vec in zip(keys.tolist(), vecs, strict=True):
            row = self.row_of.get(key)
            if row is None:
                if self.n == len(self.vecs):
                    grow = max(16, self.n)
                    self.vecs = np.concatenate([self.vecs, np.empty((grow, DIM), np.float32)])
                    self.ids = np.concatenate([self.ids, np.empty(grow, np.int64)])
                row = self.n
                self.n += 1
                self.row_of[key] = row
                self.ids[row] = key
            self.vecs[row] = vec

    def remove(self, entry_id: int) -> None:
        if self.ann is not None:
            if self.ann.contains(entry_id):
                self.ann.remove(entry_id)
            return
        row = self.row_of.pop(entry_id, None)
        if row is None:
            return
        last = self.n - 1
        if row != last:
            # Keep rows contiguous: move the last row into the hole.
            self.vecs[row] = self.vecs[last]
            moved = int(self.ids[last])
            self.ids[row] = moved
            self.row_of[moved] = row
        self.n -= 1

    def present(self, entry_ids: set[int]) -> list[int]:
        """Which of `entry_ids` this partition holds."""
        if self.ann is not None:
            if not entry_ids or len(self.ann) == 0:
                return []
            keys = np.fromiter(entry_ids, dtype=np.int64, count=len(entry_ids))
            found = np.atleast_1d(self.ann.contains(keys.astype(np.uint64)))
            return [int(k) for k in keys[found]]
        if len(entry_ids) < len(self.row_of):
            return [i for i in entry_ids if i in self.row_of]
        return [i for i in self.row_of if i in entry_ids]

    def rename(self, old: int, new: int) -> None:
        """Give an entry another id, keeping its vector; when `new` is already present, drop `old`."""
        if not self.contains(old):
            return
        if self.contains(new):
            self.remove(old)
            return
        if self.ann is not None:
            vec = self.vector(old)
            assert vec is not None
            self.ann.remove(old)
            self.ann.add(np.uint64(new), vec)
            return
        row = self.row_of.pop(old)
        self.row_of[new] = row
        self.ids[row] = new

    def search(self, q: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.ann is not None:
            n = len(self.ann)
            if n == 0:
                return []
            m = self.ann.search(q, min(k, n))
            return [(int(key), float(1.0 - d)) for key, d in zip(m.keys, m.distances, strict=True)]
        if self.n == 0:
            return []
        # einsum runs single-threaded without BLAS: a threaded OpenBLAS sgemv is faster on an
        # idle machine but, with the web workers and the embedder busy on the same two cores,
        # its threads wait on each other (p50 12 ms against 1.3 ms at 20k rows, measured).
        sims = np.einsum("ij,j->i", self.vecs[: self.n], q)
        k = min(k, self.n)
        top = np.argpartition(-sims, k - 1)[:k] if self.n > k else np.arange(self.n)
        top = top[np.argsort(-sims[top])]
        return [(int(self.ids[i]), float(sims[i])) for i in top]

    def vector(self, entry_id: int) -> np.ndarray | None:
        if self.ann is not None:
            raw = self.ann.get(entry_id)
            if raw is None:
                return None
            # usearch hands back the stored int8 codes; their direction is the vector's.
            vec = np.asarray(raw, dtype=np.float32).reshape(DIM)
            norm = float(np.linalg.norm(vec))
            return vec / norm if norm else vec
        row = self.row_of.get(entry_id)
        return None if row is None else self.vecs[row].copy()

    def _promote(self) -> None:
        ann = Index(
            ndim=DIM,
            metric="cos",
            dtype=self._dtype,
            connectivity=self._connectivity,
            expansion_add=64,
            expansion_search=64,
        )
        if self.n:
            ann.add(self.ids[: self.n].astype(np.uint64), self.vecs[: self.n], threads=0)
        self.ann = ann
        self.vecs = np.empty((0, DIM), dtype=np.float32)
        self.ids = np.empty(0, dtype=np.int64)
        self.row_of = {}
        self.n = 0

    def nbytes(self) -> int:
        if self.ann is not None:
            return int(self.ann.memory_usage)
        # The row map costs about 100 bytes per entry in CPython; count it honestly.
        return int(self.vecs.nbytes + self.ids.nbytes + 100 * len(self.row_of))


class VectorIndex:
    """A set of independent vector partitions keyed by a string."""

    def __init__(
        self,
        *,
        dtype: str = "i8",
        connectivity: int = 12,
        ann_above: int = ANN_ABOVE,
    ) -> None:
        self._dtype = dtype
        self._connectivity = connectivity
        self._ann_above = ann_above
        self._parts: dict[str, _Partition] = {}
        self._parts_lock = threading.Lock()

    # -- partitions ----------------------------------------------------------------------------

    def _get(self, partition: str, create: bool = False) -> _Partition | None:
        part = self._parts.get(partition)
        if part is None and create:
            with self._parts_lock:
                part = self._parts.get(partition)
                if part is None:
                    part = _Partition(self._dtype, self._connectivity)
                    self._parts[partition] = part
        return part

    def partitions(self) -> list[str]:
        """The partition keys present."""
        with self._parts_lock:
            return list(self._parts)

    def drop_partition(self, partition: str) -> None:
        """Forget a whole partition (a tenant deleted, a scope flushed)."""
        with self._parts_lock:
            part = self._parts.pop(partition, None)
        if part is not None:
            with part.lock.write():
                if part.ann is not None:
                    part.ann.reset()
                part.ann = None
                part.row_of = {}
                part.n = 0

    def partition_size(self, partition: str) -> int:
        """How many entries one partition holds."""
        part = self._get(partition)
        return len(part) if part is not None else 0

    # -- writes (the refresher) ----------------------------------------------------------------

    def add(self, partition: str, entry_id: int, vector: np.ndarray) -> None:
        """Insert or replace one entry's vector (a unit float32 vector of width 384)."""
        self.add_many(partition, [entry_id], np.asarray(vector, dtype=np.float32).reshape(1, DIM))

    def add_many(self, partition: str, entry_ids: Iterable[int], vectors: np.ndarray) -> None:
        """Insert or replace many entries at once (the refresher's bulk load)."""
        keys = np.asarray(list(entry_ids), dtype=np.int64)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, DIM)
        if len(keys) != len(vecs):
            raise ValueError("entry_ids and vectors differ in length")
        if not len(keys):
            return
        part = self._get(partition, create=True)
        assert part is not None
        with part.lock.write():
            part.add(keys, vecs, self._ann_above)

    def remove(self, partition: str, entry_id: int) -> None:
        """Remove one entry; a no-op when it is absent."""
        part = self._get(partition)
        if part is None:
            return
        with part.lock.write():
            part.remove(int(entry_id))

    def rename(self, partition: str, old_id: int, new_id: int) -> None:
        """Move an entry to another id in one step, so no search sees it missing or twice (a
        provisional id replaced by the database's). A no-op when `old_id` is absent; when `new_id`
        is already present, `old_id` is dropped."""
        part = self._get(partition)
        if part is None:
            return
        with part.lock.write():
            part.rename(int(old_id), int(new_id))

    def remove_ids(self, entry_ids: Iterable[int], prefix: str = "") -> int:
        """Remove these entries from every partition whose key starts with `prefix` (a purge
        knows entry ids, not partitions). Costs one pass over those partitions' ids."""
        wanted = {int(i) for i in entry_ids}
        if not wanted:
            return 0
        with self._parts_lock:
            parts = [part for key, part in self._parts.items() if key.startswith(prefix)]
        removed = 0
        for part in parts:
            with part.lock.read():
                present = part.present(wanted)
            if present:
                with part.lock.write():
                    for entry_id in present:
                        if part.contains(entry_id):
                            part.remove(entry_id)
                            removed += 1
        return removed

    # -- reads ---------------------------------------------------------------------------------

    def is_ann(self, partition: str) -> bool:
        """True once a partition has moved to the HNSW form."""
        part = self._get(partition)
        return part is not None and part.ann is not None

    def search(self, partition: str, vector: np.ndarray, k: int = 2) -> list[tuple[int, float]]:
        """The ``k`` nearest entries of one partition: ``(entry_id, cosine similarity)``, best first."""
        part = self._get(partition)
        if part is None:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(DIM)
        with part.lock.read():
            return part.search(q, k)

    def vector(self, partition: str, entry_id: int) -> np.ndarray | None:
        """The stored unit vector of one entry (int8-rounded in ANN partitions), or ``None``."""
        part = self._get(partition)
        if part is None:
            return None
        with part.lock.read():
            return part.vector(int(entry_id))

    def __contains__(self, item: tuple[str, int]) -> bool:
        partition, entry_id = item
        part = self._get(partition)
        if part is None:
            return False
        with part.lock.read():
            return part.contains(int(entry_id))

    def __len__(self) -> int:
        with self._parts_lock:
            parts = list(self._parts.values())
        return sum(len(p) for p in parts)

    def nbytes(self) -> int:
        """Bytes the partitions hold: dense rows and id maps, or usearch's own count."""
        with self._parts_lock:
            parts = list(self._parts.values())
        return sum(p.nbytes() for p in parts)
