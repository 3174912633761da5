"""Query decomposition through a live server (openai SDK, fake upstream over loopback).

A multi-part question whose parts were asked before is composed from the cached parts with no
upstream call; with some parts cached, only the missing parts go upstream, each alone, and are
stored for later; the composed answer is an ordinary OpenAI response, JSON or stream, with
honest usage and `X-LEO-Cache: decomposed`. It refuses dependent parts, tools, response_format
and tenants that turned it off, and a compound question is never served one part's answer.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import pytest

from fake_upstream import answer_tag
from optimizer.models import OptimizerSettings, RequestLog
from tests.conftest import TenantKit, wait_for_rows

MODEL = "gpt-4o-mini"
TAGS = re.compile(r"ANSWER\[([0-9a-f]{12})\]")


def name() -> str:
    """A made-up proper noun, so each test's questions are its own."""
    return "Zor" + uuid.uuid4().hex[:8]


def questions() -> tuple[str, str, str]:
    n = name()
    return (f"What is the capital of {n}land?", f"Who founded the city of {n}burg?",
            f"How tall is Mount {n}?")


def chat(kit: TenantKit, content: str, **kw: Any) -> Any:
    return kit.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": content}], **kw)


def chat_calls(fake_upstream: Any) -> int:
    return int(fake_upstream.stats()["chat"])


def test_all_parts_cached_composes_without_an_upstream_call(kit: TenantKit, fake_upstream: Any) -> None:
    q1, q2, _ = questions()
    answered = 0
    for q in (q1, q2):
        alone = chat(kit, q)
        assert alone.headers["x-leo-cache"] == "miss"
        answered += alone.parse().usage.completion_tokens
    before = chat_calls(fake_upstream)
    raw = chat(kit, f"1. {q1}\n2. {q2}")
    resp = raw.parse()
    assert chat_calls(fake_upstream) == before
    assert raw.headers["x-leo-cache"] == "decomposed"
    content = resp.choices[0].message.content
    assert content.startswith(f"**1. {q1}**\n\n")
    assert f"**2. {q2}**" in content
    assert TAGS.findall(content) == [answer_tag(q1), answer_tag(q2)]
    assert resp.object == "chat.completion" and resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp.usage.prompt_tokens > 0
    # usage counts each part's answer as the upstream did, plus the headings LEO added (~4 chars a token)
    headings = len(f"**1. {q1}**\n\n\n\n**2. {q2}**\n\n")
    assert answered < resp.usage.completion_tokens <= answered + headings // 4 + 4
    [row] = wait_for_rows(RequestLog, 1, request_id=raw.headers["x-leo-request-id"])
    assert row.technique == "decomposed" and row.upstream_calls == 0
    assert row.cost_usd == 0 and row.saved_usd == row.counterfactual_usd > 0
    assert row.tokens_saved == resp.usage.total_tokens
    assert int(raw.headers["x-leo-tokens-saved"]) == row.tokens_saved


def test_only_missing_parts_go_upstream_each_alone_and_are_stored(kit: TenantKit, fake_upstream: Any) -> None:
    q1, q2, q3 = questions()
    chat(kit, q1)
    before = chat_calls(fake_upstream)
    raw = chat(kit, f"{q1} {q2} {q3}")
    content = raw.parse().choices[0].message.content
    assert raw.headers["x-leo-cache"] == "decomposed"
    # one call per missing part, each carrying that part alone
    assert chat_calls(fake_upstream) == before + 2
    assert TAGS.findall(content) == [answer_tag(q1), answer_tag(q2), answer_tag(q3)]
    [row] = wait_for_rows(RequestLog, 1, request_id=raw.headers["x-leo-request-id"])
    assert row.upstream_calls == 2 and row.cost_usd > 0
    # gpt-4o-mini list price $0.15 / $0.60 per million: the cost is the two part calls' own usage
    assert row.cost_usd == (Decimal("0.15") * row.prompt_tokens + Decimal("0.60") * row.completion_tokens) / 10**6
    assert row.saved_usd == row.counterfactual_usd - row.cost_usd > 0
    # each part's answer is its own entry now: asked alone, it is an exact hit
    before = chat_calls(fake_upstream)
    again = chat(kit, q3)
    assert again.headers["x-leo-cache"] == "exact"
    assert TAGS.findall(again.parse().choices[0].message.content) == [answer_tag(q3)]
    assert chat_calls(fake_upstream) == before


def test_composed_answer_streams_like_any_other(kit: TenantKit, fake_upstream: Any) -> None:
    q1, q2, _ = questions()
    chat(kit, q1)
    chat(kit, q2)
    text = f"I have a few questions:\n- {q1}\n- {q2}"
    plain = chat(kit, text).parse()
    before = chat_calls(fake_upstream)
    raw = chat(kit, text, stream=True, stream_options={"include_usage": True})
    chunks = list(raw.parse())
    assert raw.headers["x-leo-cache"] in ("decomposed", "exact")
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == plain.choices[0].message.content
    assert TAGS.findall(streamed) == [answer_tag(q1), answer_tag(q2)]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == plain.usage.total_tokens
    assert chat_calls(fake_upstream) == before


def test_first_composition_can_stream(kit: TenantKit, fake_upstream: Any) -> None:
    q1, q2, _ = questions()
    chat(kit, q1)
    raw = chat(kit, f"{q1} Also, {q2[0].lower() + q2[1:]}", stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert raw.headers["x-leo-cache"] == "decomposed"
    assert TAGS.findall(streamed) == [answer_tag(q1), answer_tag(q2)]


def test_dependent_parts_are_never_decomposed(kit: TenantKit, fake_upstream: Any) -> None:
    q1, _, _ = questions()
    chat(kit, q1)
    compound = f"{q1} How many people live in it?"
    before = chat_calls(fake_upstream)
    raw = chat(kit, compound)
    content = raw.parse().choices[0].message.content
    # the whole question went upstream as one; never the cached first part's answer
    assert raw.headers["x-leo-cache"] == "miss"
    assert TAGS.findall(content) == [answer_tag(compound)]
    assert chat_calls(fake_upstream) == before + 1


def test_a_compound_question_is_never_served_one_parts_answer(kit: TenantKit) -> None:
    """Even when the compound reads almost like the cached single question."""
    n = name()
    single = f"What is the capital of {n}land?"
    chat(kit, single)
    compound = f"What is the capital of {n}land? And what is its currency?"
    raw = chat(kit, compound)
    assert TAGS.findall(raw.parse().choices[0].message.content) != [answer_tag(single)]
    assert raw.headers["x-leo-cache"] == "miss"


def test_tools_and_response_format_are_never_decomposed(kit: TenantKit, fake_upstream: Any) -> None:
    q1, q2, _ = questions()
    chat(kit, q1)
    chat(kit, q2)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    raw = chat(kit, f"1. {q1}\n2. {q2}", tools=tools)
    assert raw.headers["x-leo-cache"] == "miss"
    assert raw.parse().choices[0].message.tool_calls[0].function.name == "lookup"
    compound = f"1. {q1}\n2. {q2}\nAnswer each."
    raw = chat(kit, compound, response_format={"type": "json_object"})
    assert raw.headers["x-leo-cache"] == "miss"
    assert TAGS.findall(raw.parse().choices[0].message.content) == [answer_tag(compound)]


def test_a_tenant_that_turned_it_off_gets_the_whole_question_answered(make_tenant: Any,
                                                                     fake_upstream: Any) -> None:
    kit = make_tenant("NoDecompose")
    OptimizerSettings.objects.create(tenant=kit.tenant, decomposition=False)
    q1, q2, _ = questions()
    chat(kit, q1)
    chat(kit, q2)
    compound = f"1. {q1}\n2. {q2}"
    before = chat_calls(fake_upstream)
    raw = chat(kit, compound)
    assert raw.headers["x-leo-cache"] == "miss"
    assert TAGS.findall(raw.parse().choices[0].message.content) == [answer_tag(compound)]
    assert chat_calls(fake_upstream) == before + 1


@pytest.mark.parametrize("layout", ["numbered", "bullets", "questions", "also"])
def test_every_layout_reuses_cached_parts(kit: TenantKit, fake_upstream: Any, layout: str) -> None:
    q1, q2, _ = questions()
    chat(kit, q1)
    chat(kit, q2)
    text = {"numbered": f"1) {q1}\n2) {q2}", "bullets": f"Quick questions:\n* {q1}\n* {q2}",
            "questions": f"{q1}\n{q2}", "also": f"{q1} Also, {q2[0].lower() + q2[1:]}"}[layout]
    before = chat_calls(fake_upstream)
    raw = chat(kit, text)
    assert raw.headers["x-leo-cache"] == "decomposed"
    assert TAGS.findall(raw.parse().choices[0].message.content) == [answer_tag(q1), answer_tag(q2)]
    assert chat_calls(fake_upstream) == before
