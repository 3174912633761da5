"""Model routing (optimizer.pipeline.routing): rule matching and the documented classifier."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest

from optimizer.pipeline.prompt_opt import count_prompt_tokens
from optimizer.pipeline.routing import RouteDecision, RoutingRule, classify, route, routed_request

with warnings.catch_warnings():
    # bpe_openai loads its bundled tables at import with a deprecated importlib.resources call.
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

    _ENC = bpe_openai.get_encoding("o200k_base")


def count_tokens(text: str) -> int:
    """o200k_base, the tokenizer of gpt-4o."""
    return len(_ENC.encode(text))


MINI = RoutingRule("gpt-4o", "gpt-4o-mini", max_prompt_tokens=120, max_messages=3)


def ask(text: str, model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_short_simple_prompt_is_routed_and_the_input_kept() -> None:
    request = ask("What is the capital of France?")
    before = copy.deepcopy(request)
    decision = route(request, [MINI], count_tokens)
    assert decision.routed and decision.model == "gpt-4o-mini"
    assert decision.requested_model == "gpt-4o"
    assert decision.header == "gpt-4o->gpt-4o-mini"
    assert decision.rule is MINI
    assert "simple" in decision.reason and "gpt-4o->gpt-4o-mini" in decision.reason
    assert request == before
    assert routed_request(request, decision)["model"] == "gpt-4o-mini"
    assert request["model"] == "gpt-4o"


@pytest.mark.parametrize(
    ("text", "extra", "reason"),
    [
        ("Explain step by step how TCP slow start works.", {}, "no-reasoning"),
        ("Prove that the square root of two is irrational.", {}, "no-reasoning"),
        ("Derive the formula for compound interest.", {}, "no-reasoning"),
        ("Analyze the causes of the 2008 crisis.", {}, "no-reasoning"),
        ("Compare Rust and Go for network services.", {}, "no-reasoning"),
        ("Write a short essay about autumn.", {}, "no-reasoning"),
        ("Write Python code to reverse a list.", {}, "no-reasoning"),
        ("What is 17*23?", {}, "no-math"),
        ("Solve x^2 - 4 = 0.", {}, "no-math"),
        ("What does \\frac{a}{b} mean in LaTeX?", {}, "no-math"),
        ("What does `print(x)` do?", {}, "no-code"),
        ("Why does this fail?\n```python\nx = [1, 2]\nx[5]\n```", {}, "no-code"),
        ("What is wrong here?\nimport os\ndef f():\n    return os.getcwd()", {}, "no-code"),
        (
            "What is the weather in Paris?",
            {
                "tools": [
                    {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
                ]
            },
            "no-tools",
        ),
        ("Name a colour.", {"response_format": {"type": "json_object"}}, "no-tools"),
        ("Tell me about Paris. " * 40, {}, "short"),
    ],
)
def test_classifier_refuses_each_kind_of_non_simple_request(
    text: str, extra: dict[str, Any], reason: str
) -> None:
    request = ask(text, **extra)
    verdict = classify(request, MINI, count_tokens)
    assert not verdict.simple
    assert reason in verdict.reasons
    decision = route(request, [MINI], count_tokens)
    assert not decision.routed and decision.model == "gpt-4o"
    assert decision.header == "none"
    assert reason in decision.reason


def test_prompt_token_limit_counts_every_message_with_chat_framing() -> None:
    request = ask("What is the capital of France?")
    tokens = count_prompt_tokens(request["messages"], count_tokens)
    assert classify(request, MINI, count_tokens).prompt_tokens == tokens
    at_limit = RoutingRule("gpt-4o", "gpt-4o-mini", max_prompt_tokens=tokens)
    below = RoutingRule("gpt-4o", "gpt-4o-mini", max_prompt_tokens=tokens - 1)
    assert route(request, [at_limit], count_tokens).routed
    assert not route(request, [below], count_tokens).routed
    # A long system prompt counts too.
    with_system = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be kind. " * 60}, *request["messages"]],
    }
    assert "short" in classify(with_system, at_limit, count_tokens).reasons


def test_many_turns_are_not_simple_but_system_messages_do_not_count_as_turns() -> None:
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is the capital of Peru?"},
    ]
    assert route({"model": "gpt-4o", "messages": turns}, [MINI], count_tokens).routed
    more = turns + [{"role": "assistant", "content": "Lima."}, {"role": "user", "content": "And Chile?"}]
    decision = route({"model": "gpt-4o", "messages": more}, [MINI], count_tokens)
    assert not decision.routed and "few-turns" in decision.reason


def test_images_are_not_simple() -> None:
    request = ask("x")
    request["messages"][0]["content"] = [
        {"type": "text", "text": "What colour is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    assert "text-only" in classify(request, MINI, count_tokens).reasons


def test_only_rules_for_the_requested_model_apply() -> None:
    decision = route(ask("What is the capital of France?", model="gpt-4.1"), [MINI], count_tokens)
    assert not decision.routed and decision.model == "gpt-4.1"
    assert decision.reason == "no rule for model gpt-4.1"
    assert route(ask("Hi there, who are you?"), [], count_tokens).reason == "no routing rules"
    # A rule never routes a model to itself, even through a pattern.
    pattern = RoutingRule("gpt-4o*", "gpt-4o-mini")
    assert not route(ask("Who are you?", model="gpt-4o-mini"), [pattern], count_tokens).routed
    assert (
        route(ask("Who are you?", model="gpt-4o-2024-08-06"), [pattern], count_tokens).model == "gpt-4o-mini"
    )


def test_first_matching_simple_rule_wins_and_looser_rules_catch_the_rest() -> None:
    strict = RoutingRule("gpt-4o", "gpt-4o-mini", max_prompt_tokens=20, name="tiny")
    loose = RoutingRule("gpt-4o", "gpt-4.1-mini", max_prompt_tokens=400, allow_code=True, name="mid")
    assert route(ask("Who wrote Hamlet?"), [strict, loose], count_tokens).model == "gpt-4o-mini"
    decision = route(
        ask("What does `len(x)` return for an empty list in Python?"), [strict, loose], count_tokens
    )
    assert decision.model == "gpt-4.1-mini" and decision.rule is loose
    decision = route(ask("Explain in detail how RAFT works. " * 30), [strict, loose], count_tokens)
    assert not decision.routed
    assert "rule tiny: not simple" in decision.reason and "rule mid: not simple" in decision.reason


def test_classifier_options_relax_or_tighten_a_rule() -> None:
    text = "Compare 3*4 and 2+2, what does `x` mean?"
    assert not route(ask(text), [MINI], count_tokens).routed
    relaxed = RoutingRule("gpt-4o", "gpt-4o-mini", allow_code=True, allow_math=True, allow_reasoning=True)
    assert route(ask(text), [relaxed], count_tokens).routed
    cued = RoutingRule("gpt-4o", "gpt-4o-mini", extra_cues=("legal advice",))
    assert (
        "no-reasoning" in classify(ask("Can you give me legal advice on leases?"), cued, count_tokens).reasons
    )
    capped = RoutingRule("gpt-4o", "gpt-4o-mini", max_completion_tokens=100)
    assert "short-answer" in classify(ask("Who wrote Hamlet?"), capped, count_tokens).reasons
    assert "short-answer" in classify(ask("Who wrote Hamlet?", max_tokens=500), capped, count_tokens).reasons
    assert classify(ask("Who wrote Hamlet?", max_completion_tokens=80), capped, count_tokens).simple


def test_dates_and_plain_numbers_are_not_math() -> None:
    assert route(ask("What happened in Paris in 1789?"), [MINI], count_tokens).routed
    assert route(ask("Who won the 2014-2015 league?"), [MINI], count_tokens).routed


def test_bad_rules_are_rejected() -> None:
    with pytest.raises(ValueError):
        RoutingRule("", "gpt-4o-mini")
    with pytest.raises(ValueError):
        RoutingRule("gpt-4o", "gpt-4o-mini", max_prompt_tokens=0)


def test_decision_is_a_plain_value() -> None:
    a = RouteDecision("gpt-4o", False, "no routing rules", "gpt-4o")
    assert a == RouteDecision("gpt-4o", False, "no routing rules", "gpt-4o")
    assert a.header == "none"
