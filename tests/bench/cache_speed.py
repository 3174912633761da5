"""Semantic cache speed: lookup latency including embedding, and memory per entry.

Run from the repository root::

    python -m tests.bench.cache_speed                      # 10k, 100k and 1M entries
    python -m tests.bench.cache_speed --sizes 10000 100000 --queries 200

For each size, one partition of one tenant is filled with that many entries: the 999 GPTCache
origins (real texts, so lookups find real candidates and the verifier runs) and synthetic random
unit vectors for the rest. Each query is a real GPTCache paraphrase, embedded on the spot (the
embedder's LRU is off, so every lookup pays for the model), then searched (top ``CANDIDATES``),
verified and decided exactly as the pipeline does. Reported: p50/p99 of the whole lookup, of the
embedding alone and of search + verify + decide; memory per entry as the index's own byte count
and as the process RSS growth while filling, each divided by the number of entries.

Targets (issue): semantic lookup p50 <= 10 ms and p99 <= 25 ms including embedding; memory per
entry <= 1 KB. The exact-hit and end-to-end parts live in ``tests/bench/cache_speed_exact.py``
(run them alone with ``--parts exact e2e``; see that module for what they measure).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from optimizer.semantic import (
    DEFAULT_MARGIN,
    DEFAULT_THRESHOLD,
    DIM,
    Embedder,
    VectorIndex,
)
from optimizer.semantic.policy import CANDIDATES, choose

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass
class SpeedRow:
    """Figures for one partition size."""

    entries: int
    fill_s: float
    lookup_p50_ms: float
    lookup_p99_ms: float
    embed_p50_ms: float
    search_decide_p50_ms: float
    search_decide_p99_ms: float
    index_bytes_per_entry: float
    rss_bytes_per_entry: float
    hits: int
    queries: int


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _random_units(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def semantic_lookup_latency(
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
    queries: int = 300,
    embedder: Embedder | None = None,
    batch: int = 100_000,
) -> list[SpeedRow]:
    """Measure semantic lookups (embed + search + verify + decide) at each partition size."""
    pairs = json.loads((SHARED / "paraphrase_pairs_gptcache.json").read_text())
    stored = list(dict.fromkeys(p["origin"] for p in pairs))
    asked = [p["similar"] for p in pairs][:queries]
    emb = embedder or Embedder(cache_size=0)
    emb.warm_up()
    stored_vecs = emb.encode(stored)
    texts = dict(enumerate(stored))
    rows: list[SpeedRow] = []
    rng = np.random.default_rng(0)
    for n in sizes:
        index = VectorIndex()
        rss0 = _rss_bytes()
        t0 = time.perf_counter()
        index.add_many("tenant:scope", range(len(stored)), stored_vecs)
        next_id = len(stored)
        while next_id < n:
            m = min(batch, n - next_id)
            index.add_many("tenant:scope", range(next_id, next_id + m), _random_units(rng, m))
            next_id += m
        fill_s = time.perf_counter() - t0
        rss_per = (_rss_bytes() - rss0) / n
        total, embed, rest = [], [], []
        hits = 0
        for q in asked[:5]:  # warm the verifier's caches and the allocator
            vec = emb.encode_one(q)
            index.search("tenant:scope", vec, k=CANDIDATES)
        for q in asked:
            t_start = time.perf_counter()
            vec = emb.encode_one(q)
            t_embedded = time.perf_counter()
            top = index.search("tenant:scope", vec, k=CANDIDATES)
            cands = [(i, s, texts.get(i, "")) for i, s in top]
            chosen, _ = choose(q, cands, DEFAULT_THRESHOLD, DEFAULT_MARGIN)
            t_end = time.perf_counter()
            hits += chosen is not None
            total.append(t_end - t_start)
            embed.append(t_embedded - t_start)
            rest.append(t_end - t_embedded)
        ms = lambda xs, q: float(np.percentile(xs, q) * 1000)
        rows.append(
            SpeedRow(
                entries=len(index),
                fill_s=round(fill_s, 1),
                lookup_p50_ms=round(ms(total, 50), 2),
                lookup_p99_ms=round(ms(total, 99), 2),
                embed_p50_ms=round(ms(embed, 50), 2),
                search_decide_p50_ms=round(ms(rest, 50), 3),
                search_decide_p99_ms=round(ms(rest, 99), 3),
                index_bytes_per_entry=round(index.nbytes() / len(index), 1),
                rss_bytes_per_entry=round(rss_per, 1),
                hits=hits,
                queries=len(asked),
            )
        )
        print_rows(rows[-1:], header=len(rows) == 1)
        index.drop_partition("tenant:scope")
        del index
    return rows


def print_rows(rows: Sequence[SpeedRow], header: bool = True) -> None:
    """Print rows as a fixed-width table."""
    cols = list(asdict(rows[0]).keys()) if rows else []
    if header:
        print(" ".join(f"{c:>22}" for c in cols))
    for r in rows:
        print(" ".join(f"{v!s:>22}" for v in asdict(r).values()), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--parts", nargs="+", choices=["semantic", "exact", "e2e"], default=["semantic", "exact", "e2e"],
                    help="semantic: in-process semantic lookup; exact: in-process exact hit; e2e: live server")
    ap.add_argument("--lookups", type=int, default=5000, help="exact: hits timed per size")
    ap.add_argument("--requests", type=int, default=1000, help="e2e: requests timed per kind")
    args = ap.parse_args(argv)
    if "semantic" in args.parts:
        print("## semantic lookup, in process (embed + search + verify + decide)")
        semantic_lookup_latency(args.sizes, args.queries)
    if "exact" in args.parts:
        from tests.bench import cache_speed_exact

        cache_speed_exact.exact_hit_latency(args.sizes, args.lookups)  # prints each row as it is measured
    if "e2e" in args.parts:
        from tests.bench import cache_speed_exact

        cache_speed_exact.print_e2e(cache_speed_exact.end_to_end(args.requests, args.queries))


if __name__ == "__main__":
    main()
