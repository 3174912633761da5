"""The pair judge: its features, the shipped weights, and what it tells apart."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.semantic import get_embedder
from optimizer.semantic.judge import (
    SCALARS,
    WEIGHTS,
    PairJudge,
    get_judge,
    pair_features,
    scalar_features,
)


def test_scalar_features_are_symmetric_and_bounded() -> None:
    a, b = "How do I learn Python quickly?", "What is the fastest way to learn Python?"
    fa, fb = scalar_features(a, b, 0.9), scalar_features(b, a, 0.9)
    assert fa.shape == (SCALARS,) and np.allclose(fa, fb)
    assert 0.0 <= fa[1] <= 1.0 and 0.0 <= fa[2] <= 1.0
    same = scalar_features(a, a, 1.0)
    assert same[1] == same[2] == 1.0 and same[4] == 0.0  # full overlap, no word only one side has


def test_shipped_weights_match_the_feature_width() -> None:
    assert WEIGHTS.exists()
    judge = PairJudge()
    assert judge.w1.shape[0] == judge.mean.shape[0] == 2 * 384 + SCALARS
    assert get_judge() is get_judge()


@pytest.mark.parametrize(
    "query, same, different",
    [
        ("How can I lose weight fast?", "What is the quickest way to lose weight?", "How can I gain weight fast?"),
        ("What is the best way to learn Java?", "How should I start learning Java?", "What is the best way to learn Japanese?"),
    ],
)
def test_the_judge_prefers_the_same_question(query: str, same: str, different: str) -> None:
    judge = get_judge()
    q, s, d = get_embedder().encode([query, same, different])
    p_same = judge.probability(q, s, query, same)
    p_diff = judge.probability(q, d, query, different)
    assert 0.0 <= p_diff < p_same <= 1.0
    batch = judge.probabilities(np.stack([pair_features(q, s, query, same), pair_features(q, d, query, different)]))
    assert batch == pytest.approx([p_same, p_diff], abs=1e-6)
