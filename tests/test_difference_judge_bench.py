"""The learned-judge experiment's instrument (tests/bench/difference_judge.py): which pairs it
studies, and how it counts what a floor lets through."""

from __future__ import annotations

import numpy as np

from tests.bench.difference_judge import Bucketed, Pair, _bucket, best_case, floors_for_budgets, passing


def pair(query: str, cached: str, kind: str = "lookalike", record: str = "r", first: bool = True,
         cosine: float = 0.94) -> Pair:
    return Pair("set", kind, record, first, query, cached, cosine)


def test_the_bucket_holds_a_pair_only_the_difference_rule_refuses() -> None:
    b = _bucket(pair("What is the second best-selling PS4 game of all time?",
                     "What is the best-selling PS4 game of all time?"))
    assert b is not None
    assert b.q_left == ["second"] and b.c_left == []


def test_the_bucket_leaves_out_a_pair_another_rule_refuses() -> None:
    # The numbers rule refuses it first; lifting the difference rule would change nothing.
    assert _bucket(pair("How long do I cook 2 cups of rice?", "How long do I cook 3 cups of rice?")) is None
    # And a pair the verifier serves is not refused at all.
    assert _bucket(pair("How do I cook rice?", "How do I cook rice?")) is None


def item(kind: str, record: str, first: bool = True) -> Bucketed:
    return Bucketed(pair("q", "c", kind, record, first), [], [], [], [], True, 0)


def test_a_lookalike_counts_once_however_many_of_its_lookups_pass() -> None:
    items = [item("lookalike", "a"), item("lookalike", "a"), item("lookalike", "b"),
             item("paraphrase", "p"), item("paraphrase", "p", first=False)]
    scores = np.array([0.9, 0.95, 0.5, 0.99, 0.97])
    assert passing(items, scores, 0.9) == (1, 1, 2)
    assert passing(items, scores, 0.4) == (2, 1, 2)
    assert passing(items, scores, 0.98) == (0, 1, 1)


def test_each_budget_gets_the_lowest_floor_within_it() -> None:
    items = [item("lookalike", str(k)) for k in range(50)]
    scores = np.linspace(0.0, 0.98, 50)
    floors = dict(floors_for_budgets(items, scores))
    assert passing(items, scores, floors[5])[0] == 5
    assert passing(items, scores, floors[40])[0] == 40
    assert floors[5] > floors[10] > floors[20] > floors[40]


def test_the_best_case_serves_what_the_lowest_floor_within_the_budget_serves() -> None:
    items = [item("paraphrase", "p1"), item("lookalike", "a"), item("paraphrase", "p2"),
             item("lookalike", "b"), item("paraphrase", "p3")]
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    assert best_case(items, scores, 0) == 1  # the floor stops above the first look-alike
    assert best_case(items, scores, 1) == 2
    assert best_case(items, scores, 2) == 3
