"""The decision rule, the verified-candidate choice, the judge floor and the adaptive strictness."""

from __future__ import annotations

import random

import pytest

from optimizer.semantic import AdaptiveStrictness, Verdict, decide
from optimizer.semantic.policy import (
    COSINE_CEILING,
    JUDGE_CEILING,
    choose,
    rule_at,
    wilson_upper,
)

OK = Verdict(True, "ok")


def test_decide_needs_threshold_margin_and_verdict() -> None:
    assert decide([0.95, 0.60], OK, 0.80, 0.02).hit
    assert decide([0.79, 0.60], OK, 0.80, 0.02).reason == "below_threshold"
    assert decide([0.95, 0.94], OK, 0.80, 0.02).reason == "ambiguous"
    assert decide([0.95, 0.60], Verdict(False, "numbers"), 0.80, 0.02).reason == "verifier:numbers"
    assert decide([0.95, 0.60], None, 0.80, 0.02).reason == "unverified"
    assert decide([0.95], OK, 0.80, 0.02).hit  # a lone entry has no runner-up
    assert decide([], OK).reason == "empty"
    assert decide([0.95, 0.60], OK, 0.80, 0.02).similarity == pytest.approx(0.95)


def test_choose_ignores_a_runner_up_the_verifier_rejects() -> None:
    stored = [
        (1, 0.93, "What is the capital of France?"),
        (2, 0.925, "What is the capital of Germany?"),
    ]
    entry, decision = choose("what's the capital of France", stored, 0.80, 0.02)
    assert entry == 1 and decision.hit


def test_choose_serves_the_best_of_two_interchangeable_candidates() -> None:
    # Issue #12: a paraphrase that missed once is stored beside the first asking; a later
    # paraphrase sits between the two. They would be served for each other: not a rival.
    stored = [
        (1, 0.93, "How do I sort a list in Python?"),
        (2, 0.925, "How can I sort a list in Python?"),
    ]
    entry, decision = choose("how do i sort a list in python please", stored, 0.80, 0.10)
    assert entry == 1 and decision.hit
    # Their own cosine is part of "would pass the decision against each other".
    entry, decision = choose("how do i sort a list in python please", stored, 0.80, 0.10,
                             between=lambda a, b: 0.70)
    assert entry is None and decision.reason == "ambiguous"


def test_choose_refuses_when_two_verified_candidates_are_not_interchangeable() -> None:
    stored = [(1, 0.93, "first stored question"), (2, 0.925, "second stored question")]

    def verifier(query: str, candidate: str, cosine: float | None = None) -> Verdict:
        # Both answer the query; neither answers the other.
        return Verdict(query not in {"first stored question", "second stored question"}, "stub")

    entry, decision = choose("the query", stored, 0.80, 0.10, verifier=verifier)
    assert entry is None and decision.reason == "ambiguous"


def test_choose_does_not_fall_through_past_a_rejected_nearest() -> None:
    stored = [
        (1, 0.97, "Is coffee not good for your health?"),
        (2, 0.90, "Is coffee good for your health?"),
    ]
    # The nearest entry is negated and the query is not: refuse rather than serve the next one.
    entry, decision = choose("Is coffee good for health?", stored, 0.80, 0.02)
    assert entry is None and decision.reason == "verifier:negation"
    entry, _ = choose("Is coffee good for health?", stored, 0.80, 0.02, fallthrough=True)
    assert entry == 2


def test_choose_asks_the_judge_only_above_a_positive_floor() -> None:
    stored = [(1, 0.93, "What is the capital of France?")]
    asked: list[int] = []

    def judge(entry_id: int, text: str) -> float:
        asked.append(entry_id)
        return 0.6

    entry, _ = choose("what's the capital of France", stored, 0.80, 0.02, judge=judge)
    assert entry == 1 and asked == []  # floor 0: the judge is not consulted
    entry, _ = choose("what's the capital of France", stored, 0.80, 0.02, judge=judge, min_probability=0.5)
    assert entry == 1 and asked == [1]
    entry, decision = choose("what's the capital of France", stored, 0.80, 0.02, judge=judge,
                             min_probability=0.7)
    assert entry is None and decision.reason == "verifier:judge"


def test_strictness_raises_the_judge_floor_first_then_the_cosine_threshold() -> None:
    assert rule_at(0.0, 0.80) == (0.80, 0.0)
    assert rule_at(0.5, 0.80) == pytest.approx((0.80, JUDGE_CEILING / 2))
    assert rule_at(1.0, 0.80) == pytest.approx((0.80, JUDGE_CEILING))
    assert rule_at(1.5, 0.80) == pytest.approx(((0.80 + COSINE_CEILING) / 2, JUDGE_CEILING))
    assert rule_at(2.0, 0.80) == pytest.approx((COSINE_CEILING, JUDGE_CEILING))
    assert rule_at(5.0, 0.80) == rule_at(2.0, 0.80) and rule_at(-1.0, 0.80) == rule_at(0.0, 0.80)


def test_wrong_feedback_raises_right_feedback_lowers_slowly() -> None:
    a = AdaptiveStrictness(level=0.5, bound=0.01, step_up=0.02)
    assert a.record(False) == pytest.approx(0.52)
    b = AdaptiveStrictness(level=0.5, bound=0.01, step_up=0.02)
    b.record(True)
    assert 0.5 - 0.0002 < b.level < 0.5
    # Going down a step takes many more "right" than going up takes "wrong".
    assert b.step_down < b.step_up / 50


def test_limits_hold() -> None:
    a = AdaptiveStrictness(level=1.95)
    for _ in range(10):
        a.record(False)
    assert a.level == 2.0
    b = AdaptiveStrictness(level=0.01)
    for _ in range(20_000):
        b.record(True)
    assert b.level == 0.0


def test_state_round_trips_through_a_dict() -> None:
    a = AdaptiveStrictness(level=0.83)
    for ok in (True, True, False, True):
        a.record(ok)
    b = AdaptiveStrictness.from_dict({**a.to_dict(), "unknown": 1})
    assert b.to_dict() == a.to_dict()
    assert b.record(True) == a.record(True)


def test_state_of_the_cosine_only_staircase_restarts_at_level_zero() -> None:
    old = {"threshold": 0.87, "bound": 0.01, "right": 3.0, "wrong": 2.0, "total_wrong": 2}
    a = AdaptiveStrictness.from_dict(old)
    assert a.level == 0.0 and a.total_wrong == 2


def test_wilson_upper() -> None:
    assert wilson_upper(0, 0) == 1.0
    assert wilson_upper(1, 1000) > 0.001
    assert wilson_upper(1, 1000) < wilson_upper(1, 100)


def _simulate(start: float, bound: float, steps: int, seed: int) -> tuple[float, int, int]:
    """A tenant whose served answers are wrong with a probability that falls as the strictness
    rises (10% at level 0, 0.3% at level 1.5); feedback arrives for every served answer."""
    rng = random.Random(seed)
    a = AdaptiveStrictness(level=start, bound=bound)
    wrong = right = 0
    for _ in range(steps):
        p_wrong = max(0.001, 0.10 * (1.5 - a.level) / 1.5 + 0.003)
        is_wrong = rng.random() < p_wrong
        wrong += is_wrong
        right += not is_wrong
        a.record(not is_wrong)
    return a.level, wrong, right


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_strictness_settles_where_the_wrong_rate_is_under_the_bound(seed: int) -> None:
    level, _, _ = _simulate(0.0, 0.01, 20_000, seed)
    # The level climbed from 0, where 10% of answers were wrong...
    assert level > 1.2
    # ...and over a second run from there the realised rate stays under the 1% bound.
    _, wrong2, right2 = _simulate(level, 0.01, 10_000, seed + 10)
    assert wrong2 / (wrong2 + right2) < 0.01


def test_a_clean_tenant_gets_less_strict() -> None:
    """Feedback that is always right lets the level drift down, slowly."""
    a = AdaptiveStrictness(level=0.5, bound=0.01)
    for _ in range(2000):
        a.record(True)
    assert 0.0 <= a.level < 0.5


@pytest.mark.parametrize("bound", [0.0, 0.5, 3.0, -1.0])
def test_any_stored_bound_gives_a_working_strictness(bound: float) -> None:
    """The admin can store any float as a tenant's bound; lookups must still get a rule."""
    from optimizer.pipeline.strictness import strictness_of

    a = strictness_of({"axis": "judge-then-cosine", "level": 0.4}, bound)
    assert a.level == 0.4 and 0.0 < a.bound < 0.5
    a.record(False)
