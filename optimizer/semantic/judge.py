"""The pair judge: how likely a cached question has the same answer as the one being asked.

Cosine similarity alone cannot tell "How do I learn Python?" from "How do I learn Python fast?":
both sit above any usable threshold. The rule verifier catches changes it can name (numbers,
negation, entities...), but many different-answer pairs differ in a word no rule names. The judge
is a small learned classifier over the two embeddings the lookup already has, plus word-level
features, in the style of Sentence-BERT's classification head: the element-wise product and
absolute difference of the two vectors, and a few scalars (cosine, word overlaps, lengths). One
hidden layer; scoring a candidate costs about 22 microseconds once the verifier has read both
texts (its word features are cached; 0.17 ms when they are not), where a cross-encoder would
cost another forward pass of a transformer per candidate.

It is trained by ``scripts/train_judge.py`` on Quora question pairs from
``../shared/data/qqp_dev.jsonl.gz`` *excluding* the rows the quality benchmark scores
(see that script), and the weights ship with the code (``judge_weights.npz``, 370 KB). The judge
is off by default (floor 0): a tenant's wrong-answer feedback raises its floor through the
adaptive strictness (``policy.rule_at``). The benchmark reports what each floor costs and buys
(``python -m tests.bench.cache_quality``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .verifier import content_words, word_tokens

WEIGHTS = Path(__file__).with_name("judge_weights.npz")
"""The trained head (``scripts/train_judge.py`` writes it)."""

SCALARS = 7
"""How many scalar features follow the two 384-wide vector blocks."""


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def scalar_features(query: str, candidate: str, cosine: float) -> np.ndarray:
    """Word-level features of a pair, symmetric in its two texts (order carries no meaning)."""
    qw, cw = word_tokens(query), word_tokens(candidate)
    qs, cs = set(qw), set(cw)
    qc, cc = content_words(query), content_words(candidate)
    only = len(qc ^ cc)
    return np.array(
        [
            cosine,
            _jaccard(qs, cs),
            _jaccard(qc, cc),
            min(len(qw), len(cw)) / max(1, len(qw), len(cw)),
            np.log1p(only),
            float(bool(qw) and bool(cw) and qw[0] == cw[0]),  # same question word ("how" / "why")
            np.log1p(abs(len(qw) - len(cw))),
        ],
        dtype=np.float32,
    )


def pair_features(qvec: np.ndarray, cvec: np.ndarray, query: str, candidate: str) -> np.ndarray:
    """The judge's input for one pair: ``[q * c, |q - c|, scalars]``."""
    cosine = float(np.dot(qvec, cvec))
    return np.concatenate(
        [qvec * cvec, np.abs(qvec - cvec), scalar_features(query, candidate, cosine)]
    ).astype(np.float32)


class PairJudge:
    """The trained head: standardise, one ReLU layer, a logistic output."""

    def __init__(self, path: Path = WEIGHTS) -> None:
        with np.load(path) as w:
            self.mean = w["mean"].astype(np.float32)
            self.scale = w["scale"].astype(np.float32)
            self.w1 = w["w1"].astype(np.float32)
            self.b1 = w["b1"].astype(np.float32)
            self.w2 = w["w2"].astype(np.float32)
            self.b2 = float(w["b2"])

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(same answer) for each row of ``features`` (``pair_features`` stacked)."""
        x = (np.atleast_2d(features) - self.mean) / self.scale
        h = np.maximum(x @ self.w1 + self.b1, 0.0)
        z = h @ self.w2 + self.b2
        return 1.0 / (1.0 + np.exp(-z))

    def probability(self, qvec: np.ndarray, cvec: np.ndarray, query: str, candidate: str) -> float:
        """P(same answer) for one query and one cached candidate."""
        return float(self.probabilities(pair_features(qvec, cvec, query, candidate))[0])


_judge: PairJudge | None = None
_judge_lock = threading.Lock()


def get_judge() -> PairJudge:
    """The process-wide judge, loaded on first use."""
    global _judge
    if _judge is None:
        with _judge_lock:
            if _judge is None:
                _judge = PairJudge()
    return _judge
