"""The frozen trust evaluation sets (tests/bench/data/trust_eval.jsonl, trust_eval2.jsonl) and
their benchmark's judging.

Each set was frozen before any measurement (issue #12 item 5); the first test fails if one changes.
A correction goes into a new file, so that figures measured on the old one stay comparable.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from tests.bench.cache_trust import (
    SETS,
    Reply,
    family,
    group_bodies,
    half_of,
    judge_lookalike,
    judge_paraphrase,
    load_records,
    lookalike_bodies,
    tag,
    wilson,
)

FROZEN_SHA256 = {
    "eval": "2b6a0438913f1ebef5d7b6f4daa0602532d3bb3397d8498fbdfbacbcde40ce38",
    "eval2": "2d45570b6b81b77c16857b4f4bfeb1998e0d799efb8eec7d26475dc340bbaa69",
}
LOOKALIKE_CLASSES = {"antonym", "verb", "ordinal", "quoted", "attribute", "conversion", "recipient", "budget",
                     "negation", "unit", "number", "entity", "compound", "context", "tool_result"}


@pytest.mark.parametrize("name", list(SETS))
def test_the_set_is_frozen(name: str) -> None:
    assert hashlib.sha256(SETS[name].read_bytes()).hexdigest() == FROZEN_SHA256[name]


@pytest.mark.parametrize("name", list(SETS))
def test_records_are_well_formed(name: str) -> None:
    records = load_records(None, SETS[name])
    assert len({r["id"] for r in records}) == len(records)
    kinds = Counter(r["kind"] for r in records)
    assert kinds["lookalike"] >= 400 and kinds["paraphrase_group"] >= 200
    assert set(kinds) == {"lookalike", "paraphrase_group"}
    for r in records:
        if r["kind"] == "lookalike":
            assert r["class"] in LOOKALIKE_CLASSES
            assert len(r["a_paraphrases"]) >= 2
            twins, ask = lookalike_bodies(r)
            assert len(twins) == 1 + len(r["a_paraphrases"])
            if "messages_a" in r:  # conversations differ before the last user text
                assert r["messages_a"] != r["messages_b"]
            else:
                assert r["a"] != r["b"]
            assert ask["messages"][-1]["role"] in ("user", "tool")
        else:
            assert 3 <= len(r["texts"]) <= 5 and len(set(r["texts"])) == len(r["texts"])
            assert len(group_bodies(r)) == len(r["texts"])


@pytest.mark.parametrize("name", list(SETS))
def test_the_split_is_by_hash_and_keeps_families_together(name: str) -> None:
    tuning, test = load_records("tuning", SETS[name]), load_records("test", SETS[name])
    assert {r["id"] for r in tuning}.isdisjoint({r["id"] for r in test})
    assert len(tuning) + len(test) == len(load_records(None, SETS[name]))
    for r in tuning:
        assert int(hashlib.sha256(family(r).encode()).hexdigest()[-1], 16) % 2 == 0
    halves: dict[str, set[str]] = {}
    for r in [*tuning, *test]:
        halves.setdefault(family(r), set()).add(half_of(r))
    assert all(len(h) == 1 for h in halves.values())
    # Both halves hold every class, so either can be measured on its own.
    for half in (tuning, test):
        assert {r["class"] for r in half if r["kind"] == "lookalike"} == LOOKALIKE_CLASSES
    with pytest.raises(ValueError):
        load_records("train")


def test_wilson_interval() -> None:
    lo, hi = wilson(5, 10)
    assert round(lo, 4) == 0.2366 and round(hi, 4) == 0.7634
    assert wilson(0, 10)[0] == 0.0 and round(wilson(0, 10)[1], 4) == 0.2775
    assert wilson(0, 0) == (0.0, 1.0)


def _answer(text: str) -> str:
    return f"ANSWER[{tag(text)}] filler words."


def test_a_lookalike_is_wrong_when_served_from_the_cache() -> None:
    record = next(r for r in load_records(None) if r["kind"] == "lookalike" and r["class"] == "antonym")
    twins, ask = lookalike_bodies(record)
    own, twin = record["b"], record["a"]
    assert judge_lookalike(record, ask, twins, Reply(200, "miss", _answer(own), 0.0)) == "right"
    assert judge_lookalike(record, ask, twins, Reply(200, "semantic", _answer(twin), 0.0)) == "wrong"
    assert judge_lookalike(record, ask, twins, Reply(200, "miss", _answer(twin), 0.0)) == "wrong"
    assert judge_lookalike(record, ask, twins, Reply(500, "", "", 0.0)) == "failed"
    # A conversation look-alike has the twin's last text: only the cache header tells them apart.
    conv = next(r for r in load_records(None) if r["kind"] == "lookalike" and r["class"] == "context")
    twins, ask = lookalike_bodies(conv)
    assert judge_lookalike(conv, ask, twins, Reply(200, "semantic", _answer(conv["b"]), 0.0)) == "wrong"
    assert judge_lookalike(conv, ask, twins, Reply(200, "miss", _answer(conv["b"]), 0.0)) == "right"


def test_a_paraphrase_is_right_when_served_the_groups_answer() -> None:
    group = next(r for r in load_records(None) if r["kind"] == "paraphrase_group")
    bodies = group_bodies(group)
    original, second = group["texts"][0], group["texts"][1]
    assert judge_paraphrase(bodies, 1, Reply(200, "semantic", _answer(original), 0.0)) == "right"
    assert judge_paraphrase(bodies, 1, Reply(200, "miss", _answer(second), 0.0)) == "missed"
    assert judge_paraphrase(bodies, 1, Reply(200, "semantic", _answer("something else"), 0.0)) == "wrong"


def test_a_multi_turn_paraphrase_with_the_same_follow_up_is_judged_by_the_cache_header() -> None:
    follow_up = "And how long does it take?"
    bodies = [
        {"model": "m", "messages": [{"role": "user", "content": first}, {"role": "assistant", "content": "Steps: ..."},
                                    {"role": "user", "content": follow_up}]}
        for first in ("How do I replace a car battery?", "how do i change a car battery")
    ]
    assert judge_paraphrase(bodies, 1, Reply(200, "semantic", _answer(follow_up), 0.0)) == "right"
    assert judge_paraphrase(bodies, 1, Reply(200, "miss", _answer(follow_up), 0.0)) == "missed"
    assert judge_paraphrase(bodies, 1, Reply(200, "semantic", _answer("something else"), 0.0)) == "wrong"
