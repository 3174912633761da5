"""The partitioned vector index: add, replace, remove, search, isolation, growth, concurrency."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.semantic import DIM, VectorIndex


def units(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(params=["dense", "ann"])
def index(request: pytest.FixtureRequest) -> VectorIndex:
    # ann_above=0 puts every partition in the usearch HNSW form from the first entry.
    return VectorIndex(ann_above=0) if request.param == "ann" else VectorIndex()


def test_search_finds_the_entry_itself_first(index: VectorIndex) -> None:
    v = units(50)
    index.add_many("t1:s", range(100, 150), v)
    for i in (0, 17, 49):
        top = index.search("t1:s", v[i], k=2)
        assert top[0][0] == 100 + i
        assert top[0][1] == pytest.approx(1.0, abs=0.01)
        assert len(top) == 2 and top[1][1] < top[0][1]
    assert len(index) == 50


def test_replace_and_remove(index: VectorIndex) -> None:
    v = units(3)
    index.add("p", 1, v[0])
    index.add("p", 1, v[1])  # same id: replaced, not duplicated
    assert index.partition_size("p") == 1
    assert index.search("p", v[1], k=2)[0][0] == 1
    index.add("p", 2, v[2])
    index.remove("p", 1)
    index.remove("p", 1)  # absent: a no-op
    assert [i for i, _ in index.search("p", v[1], k=2)] == [2]
    assert ("p", 2) in index and ("p", 1) not in index


def test_a_key_twice_in_one_batch_keeps_the_last_vector(index: VectorIndex) -> None:
    v = units(3, seed=5)
    index.add_many("p", [1, 2, 1], v)
    assert index.partition_size("p") == 2
    assert index.search("p", v[2], k=1)[0][0] == 1
    assert index.search("p", v[2], k=1)[0][1] == pytest.approx(1.0, abs=0.01)


def test_empty_and_unknown_partitions(index: VectorIndex) -> None:
    assert index.search("nobody", units(1)[0]) == []
    index.add("p", 1, units(1)[0])
    index.remove("p", 1)
    assert index.search("p", units(1)[0]) == []
    index.remove("never-seen", 5)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["tenantA:x", "tenantB:x", "tenantA:y"]), st.integers(0, 40)), max_size=60)
)
def test_partition_isolation(entries: list[tuple[str, int]]) -> None:
    """Whatever is stored, a search never returns an entry of another partition."""
    index = VectorIndex()
    vecs = units(41, seed=3)
    owner: dict[str, set[int]] = {}
    for part, eid in entries:
        index.add(part, eid, vecs[eid])
        owner.setdefault(part, set()).add(eid)
    for part in ("tenantA:x", "tenantB:x", "tenantA:y"):
        for q in vecs[:10]:
            got = {eid for eid, _ in index.search(part, q, k=5)}
            assert got <= owner.get(part, set())


def test_dense_partition_moves_to_ann_and_keeps_entries() -> None:
    index = VectorIndex(ann_above=100)
    v = units(250, seed=1)
    index.add_many("big", range(60), v[:60])
    index.add_many("small", range(10), v[:10])
    assert not index.is_ann("big")
    index.add_many("big", range(60, 250), v[60:])
    assert index.is_ann("big") and not index.is_ann("small")
    assert index.partition_size("big") == 250
    hits = sum(index.search("big", v[i], k=1)[0][0] == i for i in range(250))
    assert hits >= 245  # HNSW is approximate; on its own vectors it is near perfect
    index.remove("big", 7)
    assert all(i != 7 for i, _ in index.search("big", v[7], k=3))


def test_memory_is_counted_per_partition() -> None:
    index = VectorIndex()
    index.add_many("a", range(1000), units(1000))
    # Dense rows: 1536 bytes of float32 per vector plus ids and the id map.
    assert 1536 * 1000 <= index.nbytes() <= 2000 * 1000


def test_one_writer_many_readers() -> None:
    """Searches run while the refresher adds and removes; nothing raises, nothing leaks."""
    index = VectorIndex(ann_above=300)
    v = units(800, seed=2)
    index.add_many("p", range(100), v[:100])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for eid, _ in index.search("p", v[5], k=3):
                    assert 0 <= eid < 800
        except BaseException as exc:  # noqa: BLE001 - report any failure to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(100, 800):
        index.add("p", i, v[i])
        if i % 50 == 0:
            index.remove("p", i - 1)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert index.is_ann("p")
    assert index.partition_size("p") == 800 - 14


def test_vector_returns_the_stored_direction(index: VectorIndex) -> None:
    v = units(3, seed=5)
    index.add_many("p", [1, 2, 3], v)
    got = index.vector("p", 2)
    assert got is not None and got.shape == (DIM,)
    assert float(np.linalg.norm(got)) == pytest.approx(1.0, abs=1e-5)
    assert float(got @ v[1]) > 0.995  # int8 rounding in the ANN form moves it by about 0.002
    index.remove("p", 2)
    assert index.vector("p", 2) is None and index.vector("other", 1) is None
