"""Train the semantic cache's pair judge and write ``optimizer/semantic/judge_weights.npz``.

Run from the repository root (about 5 minutes on 2 cores, most of it embedding)::

    python -m scripts.train_judge

Data: Quora question pairs from ``../shared/data/qqp_dev.jsonl.gz`` (label 1 = same answer).
The first ``BENCH_ROWS`` rows are the ones ``tests/bench/cache_quality.py`` scores, so they are
never trained on; of the rest, a tenth (chosen with a fixed seed) is the validation set that picks
the epoch to keep. The held-back half of the Quora release (see ``../shared/data/README.md``) is
not here at all. Embeddings come from the production ``Embedder``, at the production precision,
so the judge learns the vectors it will be given.

Everything is seeded; rerunning on the same versions rewrites the same weights up to float
rounding in the BLAS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np

from optimizer.semantic import get_embedder
from optimizer.semantic.judge import WEIGHTS, pair_features

ROOT = Path(__file__).resolve().parents[1]
QQP = ROOT.parent / "shared" / "data" / "qqp_dev.jsonl.gz"
BENCH_ROWS = 4000
"""Rows 0..3999 are the benchmark's two QQP halves; training starts after them."""


def load_rows(path: Path = QQP) -> list[dict]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh]


def features(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Embed both sides of every pair and build the judge's input rows and labels."""
    emb = get_embedder()
    a = emb.encode([r["a"] for r in rows])
    b = emb.encode([r["b"] for r in rows])
    x = np.stack([pair_features(a[i], b[i], r["b"], r["a"]) for i, r in enumerate(rows)])
    y = np.array([int(r["label"]) for r in rows], dtype=np.float32)
    return x, y


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC by the rank-sum formula (no ties expected in float scores)."""
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def train(x: np.ndarray, y: np.ndarray, hidden: int, epochs: int, seed: int) -> dict[str, np.ndarray]:
    """Fit the one-hidden-layer head with early stopping on a seeded validation tenth."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_val = len(x) // 10
    val, tr = perm[:n_val], perm[n_val:]
    mean = x[tr].mean(0)
    scale = x[tr].std(0) + 1e-6
    xs = torch.from_numpy((x - mean) / scale)
    ys = torch.from_numpy(y)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(hidden, 1),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best: tuple[float, dict[str, np.ndarray]] = (-1.0, {})
    for epoch in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(tr))
        for start in range(0, len(order), 256):
            idx = order[start : start + 256]
            opt.zero_grad()
            loss = loss_fn(model(xs[idx]).squeeze(1), ys[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_auc = auc(model(xs[val]).squeeze(1).numpy(), y[val])
        print(f"epoch {epoch + 1:2d}  validation AUC {val_auc:.4f}", flush=True)
        if val_auc > best[0]:
            best = (
                val_auc,
                {
                    "mean": mean.astype(np.float32),
                    "scale": scale.astype(np.float32),
                    "w1": model[0].weight.detach().numpy().T.copy(),
                    "b1": model[0].bias.detach().numpy().copy(),
                    "w2": model[3].weight.detach().numpy()[0].copy(),
                    "b2": np.float32(model[3].bias.item()),
                },
            )
    return best[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args()
    rows = load_rows()[BENCH_ROWS:]
    t0 = time.perf_counter()
    x, y = features(rows)
    print(f"{len(rows)} training pairs ({int(y.sum())} duplicates) in {time.perf_counter() - t0:.0f} s")
    weights = train(x, y, args.hidden, args.epochs, args.seed)
    np.savez_compressed(args.out, **weights)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
