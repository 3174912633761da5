"""The cache scope covers everything that decides the answer (issue 12, item 1).

Two requests may share a stored answer only when every input the answer depends on is the same:
every message (tool calls, tool results, a trailing assistant prefill, earlier turns), the
answer-shaping parameters, and the model that actually answers after routing rules. Semantic
matching compares the last user message's wording only; everything around it must be identical.

First `canonicalize` itself (field by field), then a live server (the openai SDK, the fake
upstream): each changed field is a miss, exact and semantic, and the issue's three wrong answers
(a different tool result, an assistant prefill, another key's routed answer) do not happen.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import openai
import pytest

from fake_upstream import answer_tag as _hex_tag
from optimizer.models import OptimizerSettings, RequestLog
from optimizer.pipeline.canonical import canonicalize
from tenants.models import ApiKey
from tests.conftest import TenantKit, wait_for_rows
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

MODEL = "gpt-4o-mini"
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Current weather in a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
OTHER_TOOLS = [{"type": "function", "function": {"name": "forecast", "description": "Tomorrow's weather",
                                                 "parameters": {"type": "object",
                                                                "properties": {"city": {"type": "string"}}}}}]

# field: (value in the first request, value in the second); None = absent
FIELDS: dict[str, tuple[Any, Any]] = {
    "tools": (TOOLS, OTHER_TOOLS),
    "tool_choice": ("none", "auto"),
    "response_format": (None, {"type": "json_object"}),
    "seed": (1, 2),
    "n": (2, 3),
    "logprobs": (None, True),
    "stop": (["\n\n"], ["END"]),
}


def tag(text: str) -> str:
    return f"ANSWER[{_hex_tag(text)}]"


def weather_chat(question: str, temp_c: int) -> list[dict[str, Any]]:
    """The issue's conversation: a question, the assistant's tool call, the tool's result."""
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"temp_c": temp_c})},
    ]


# --- canonicalize ---------------------------------------------------------------------------------

def body(**fields: Any) -> dict[str, Any]:
    messages = fields.pop("messages", None) or [{"role": "user", "content": "What should I wear today?"}]
    return {"model": MODEL, "messages": messages, **{k: v for k, v in fields.items() if v is not None}}


@pytest.mark.parametrize("field", list(FIELDS))
def test_each_answer_shaping_field_changes_key_and_partition(field: str) -> None:
    first, second = FIELDS[field]
    a = canonicalize(1, "chat", body(**{field: first}))
    b = canonicalize(1, "chat", body(**{field: second}))
    assert a.key != b.key and a.partition != b.partition and a.scope != b.scope


def _with(change: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]]:
    messages = weather_chat("What should I wear in Oslo today?", 12)
    change(messages)
    return messages


MESSAGE_CHANGES: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "tool result": lambda m: m[2].update(content=json.dumps({"temp_c": 35})),
    "tool call arguments": lambda m: m[1]["tool_calls"][0]["function"].update(arguments='{"city": "Rome"}'),
    "assistant prefill": lambda m: m.append({"role": "assistant", "content": "In one word:"}),
    "no tool turns": lambda m: m.__delitem__(slice(1, None)),
    "an earlier turn": lambda m: m.__setitem__(slice(0, 0), [{"role": "user", "content": "I am in Bergen."},
                                                              {"role": "assistant", "content": "Noted."}]),
    "the question's name": lambda m: m[0].update(name="alice"),
}


@pytest.mark.parametrize("name", list(MESSAGE_CHANGES))
def test_every_message_is_in_key_and_partition(name: str) -> None:
    """The question's wording is the only part compared by similarity: any other message that
    differs puts the request in another partition, so it can never be a semantic hit."""
    a = canonicalize(1, "chat", body(messages=_with(lambda m: None)))
    b = canonicalize(1, "chat", body(messages=_with(MESSAGE_CHANGES[name])))
    assert a.last_user == b.last_user == "What should I wear in Oslo today?"
    assert a.key != b.key and a.partition != b.partition


def test_the_routed_model_is_in_the_scope() -> None:
    plain = canonicalize(1, "chat", body(model="gpt-4o"))
    routed = canonicalize(1, "chat", body(model="gpt-4o"), routed_to="gpt-4o-mini")
    asked_for_mini = canonicalize(1, "chat", body(model="gpt-4o-mini"))
    assert len({plain.scope, routed.scope, asked_for_mini.scope}) == 3
    assert len({plain.key, routed.key, asked_for_mini.key}) == 3
    assert len({plain.partition, routed.partition, asked_for_mini.partition}) == 3


def test_hashes_of_plain_conversations_are_unchanged() -> None:
    """Adding parts to the scope only when they are present keeps the hashes of everything stored
    before (values computed by the code before issue 12), so no entry becomes unreachable."""
    c = canonicalize(42, "chat", {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q one?"},
        {"role": "assistant", "content": "A."}, {"role": "user", "content": "Q two?"}]}, "ns")
    assert c.scope == "09d070c6934c720a99c24a85fd246533ab84b8c6074c8d7fc20c3fb862d99724"
    # The partition of a follow-up no longer holds its earlier user turns' text (the verifier
    # compares them: optimizer/semantic/scope.py), so it changed once; single-turn partitions keep
    # theirs (tests/test_semantic_scope.py).
    assert c.partition == "853113bf4c38d1414bddff32f0cc23ad815e08012b5402d499e354c933d8b5d9"
    assert c.key == "7c9d94d2af261d401cd197ba12490ffdc8c431e9a00329ca9c6fed86bbee8ca5"


# --- through a live server ------------------------------------------------------------------------

def chats(fake_upstream: Any) -> int:
    return int(fake_upstream.stats()["chat"])


def create(kit: TenantKit, messages: list[dict[str, Any]], *, client: openai.OpenAI | None = None,
           headers: dict[str, str] | None = None, **params: Any) -> tuple[Any, dict[str, str]]:
    params.setdefault("model", MODEL)
    raw = (client or kit.client()).chat.completions.with_raw_response.create(
        messages=copy.deepcopy(messages), extra_headers=headers or {},
        **{k: v for k, v in params.items() if v is not None})
    return raw.parse(), dict(raw.headers)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def question() -> str:
    return f"What should I pack for a trip to the village of {uuid.uuid4().hex[:8]}?"


@pytest.mark.parametrize("field", list(FIELDS))
def test_a_changed_field_is_a_miss(field: str, kit: TenantKit, fake_upstream: Any) -> None:
    first, second = FIELDS[field]
    extra = {"tool_choice": "none"} if field == "tools" else {"tools": TOOLS} if field == "tool_choice" else {}
    q = question()
    before = chats(fake_upstream)
    _, h1 = create(kit, user(q), **extra, **{field: first})
    _, h2 = create(kit, user(q), **extra, **{field: first})
    assert (h1["x-leo-cache"], h2["x-leo-cache"]) == ("miss", "exact"), "the first answer is stored"
    # The same question with only this field changed: neither the exact entry nor (the question
    # being word for word the same, similarity 1.0) the semantic one may answer it.
    resp, h3 = create(kit, user(q), **extra, **{field: second})
    assert h3["x-leo-cache"] == "miss", (field, h3["x-leo-cache"])
    assert chats(fake_upstream) == before + 2
    if field == "tool_choice":
        assert resp.choices[0].message.tool_calls, "the upstream's own answer (a tool call), not the stored text"


def wait_in_replica(kit: TenantKit, messages: list[dict[str, Any]], timeout: float = 10.0) -> dict[str, str]:
    """Ask the stored conversation with one more space in the question (another exact key, the
    same embedded text) until it is a semantic hit: the server's replica holds the entry."""
    spaced = copy.deepcopy(messages)
    last = max(i for i, m in enumerate(spaced) if m["role"] == "user")
    spaced[last]["content"] += " "
    deadline = time.monotonic() + timeout
    while True:
        _, h = create(kit, spaced, headers={"Cache-Control": "no-store"})
        if h["x-leo-cache"] == "semantic" or time.monotonic() > deadline:
            return h
        time.sleep(0.1)


def test_a_different_tool_result_is_a_miss(kit: TenantKit, fake_upstream: Any) -> None:
    """The issue: {"temp_c": 12} then {"temp_c": 35} got the first answer at similarity 1.0."""
    q = "What should I wear in Oslo today?"
    _, h = create(kit, weather_chat(q, 12))
    assert h["x-leo-cache"] == "miss"
    assert wait_in_replica(kit, weather_chat(q, 12))["x-leo-cache"] == "semantic"
    before = chats(fake_upstream)
    _, h = create(kit, weather_chat(q, 35))
    assert h["x-leo-cache"] == "miss" and chats(fake_upstream) == before + 1
    _, h = create(kit, weather_chat(q, 35))
    assert h["x-leo-cache"] == "exact"  # and it is cached on its own


def test_an_assistant_prefill_is_a_miss(kit: TenantKit, fake_upstream: Any) -> None:
    q = "Describe the weather in Oslo in winter."
    _, h = create(kit, user(q))
    assert wait_in_replica(kit, user(q))["x-leo-cache"] == "semantic"
    before = chats(fake_upstream)
    for prefill in ("In one word:", "In French:"):
        _, h = create(kit, [*user(q), {"role": "assistant", "content": prefill}])
        assert h["x-leo-cache"] == "miss", prefill
    assert chats(fake_upstream) == before + 2


def test_other_earlier_turns_are_a_miss_the_same_ones_a_semantic_hit(kit: TenantKit, fake_upstream: Any) -> None:
    history = [{"role": "user", "content": "I am planning a trip to Norway."},
               {"role": "assistant", "content": "Lovely, how can I help?"}]
    other = [{"role": "user", "content": "I am planning a trip to Egypt."},
             {"role": "assistant", "content": "Lovely, how can I help?"}]
    create(kit, [*history, *user("What is the capital city of Australia?")])
    # Same earlier turns, a paraphrase: served from the entry (the replica has it at once).
    answer, h = create(kit, [*history, *user("Which city is the capital of Australia?")])
    assert h["x-leo-cache"] == "semantic", h["x-leo-cache"]
    assert answer.choices[0].message.content.startswith(tag("What is the capital city of Australia?"))
    before = chats(fake_upstream)
    _, h = create(kit, [*other, *user("Which city is the capital of Australia?")])
    assert h["x-leo-cache"] == "miss" and chats(fake_upstream) == before + 1


RULE = {"from_model": "gpt-4o", "to_model": "gpt-4o-mini", "max_prompt_tokens": 200}


def test_a_per_key_route_never_shares_answers_with_another_key(make_tenant: Callable[..., TenantKit],
                                                               fake_upstream: Any) -> None:
    """The issue: with gpt-4o -> gpt-4o-mini for key G2 only, key G got G2's downgraded answer."""
    kit = make_tenant("Routed")
    g2, g2_plain = ApiKey.issue(kit.tenant, name="G2")
    OptimizerSettings.objects.create(tenant=kit.tenant, routing=True, routing_rules=[{**RULE, "api_keys": [g2.prefix]}])
    g2_client = openai.OpenAI(base_url=kit.base_url, api_key=g2_plain, max_retries=0, timeout=30)
    # (a rewording that the verifier passes: tests/test_semantic_pipeline.py GREEN_TEA_FAR)
    q, q2, q2_paraphrase = ("What is the capital city of Australia?",
                            "What are the health benefits of drinking green tea?",
                            "What health benefits does drinking green tea have?")
    for text in (q, q2):
        routed, h = create(kit, user(text), client=g2_client, model="gpt-4o")
        assert h["x-leo-route"] == "gpt-4o->gpt-4o-mini" and routed.model == "gpt-4o-mini"
    deadline = time.monotonic() + 10
    while True:  # until G2's own paraphrase is served: the replica holds G2's entry
        _, h = create(kit, user(q2_paraphrase), client=g2_client, model="gpt-4o",
                      headers={"Cache-Control": "no-store"})
        if h["x-leo-cache"] == "semantic" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert h["x-leo-cache"] == "semantic"

    before = chats(fake_upstream)
    for text in (q, q2_paraphrase):  # G2's question word for word, then a paraphrase of another
        plain, h = create(kit, user(text), model="gpt-4o")
        assert h["x-leo-cache"] == "miss" and "x-leo-route" not in h, text
        assert plain.model == "gpt-4o" and plain.choices[0].message.content.startswith(tag(text))
    assert chats(fake_upstream) == before + 2
    # Each key has its own entry.
    mine, h = create(kit, user(q), model="gpt-4o")
    assert h["x-leo-cache"] == "exact" and mine.model == "gpt-4o"
    theirs, h = create(kit, user(q), client=g2_client, model="gpt-4o")
    assert h["x-leo-cache"] == "exact" and theirs.model == "gpt-4o-mini"
    [row] = wait_for_rows(RequestLog, 1, request_id=h["x-leo-request-id"])
    assert [s["stage"] for s in row.trail["stages"]][:2] == ["routing", "exact"]
