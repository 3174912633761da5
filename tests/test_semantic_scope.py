"""Which conversations meet in the semantic cache (optimizer/semantic/scope.py, issue #12).

Tool-using requests: with function tools the caller runs, the same tool calls and results (whatever
ids the model minted for the calls) and a paraphrased question are served the stored answer; a
different tool result is another partition, and built-in tools keep a request out.

First the partition itself (``canonicalize``), then a live server through the openai SDK.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import openai

from fake_upstream import answer_tag as _hex_tag
from optimizer.pipeline.canonical import canonicalize
from optimizer.semantic.scope import tools_allow_semantic
from tests.conftest import TenantKit
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

MODEL = "gpt-4o-mini"
TOOLS = [{"type": "function", "function": {"name": "get_order_status", "description": "Status of an order.",
                                           "parameters": {"type": "object",
                                                          "properties": {"order_id": {"type": "string"}}}}}]


def tag(text: str) -> str:
    return f"ANSWER[{_hex_tag(text)}]"


def order_chat(question: str, eta: str, call_id: str = "call_abc") -> list[dict[str, Any]]:
    """A question, the model's tool call (its id minted by the model), the caller's tool result."""
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": "get_order_status", "arguments": '{"order_id": "B7781"}'}}]},
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps({"status": "shipped", "eta": eta})},
    ]


def body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": messages, "tools": TOOLS, **extra}


# --- the partition ---------------------------------------------------------------------------------

def test_tool_call_ids_do_not_split_the_partition_but_results_do() -> None:
    q = "When will order B7781 arrive?"
    first = canonicalize(1, "chat", body(order_chat(q, "today", "call_abc")))
    again = canonicalize(1, "chat", body(order_chat("When is order B7781 arriving?", "today", "call_XYZ")))
    other_result = canonicalize(1, "chat", body(order_chat(q, "next week", "call_abc")))
    assert first.partition == again.partition
    assert first.key != again.key  # the exact cache still holds every message verbatim
    assert other_result.partition != first.partition


def test_plain_conversations_keep_their_partition_hash() -> None:
    """Single-turn conversations without tool calls are partitioned as before (their stored
    entries stay reachable); value computed by the code before this change."""
    c = canonicalize(42, "chat", {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q one?"}]}, "ns")
    assert c.partition == "e1873b69fed407a783d460286bf1b3677de556b0fa9f24e40297813c3f4e33e4"


def test_only_function_tools_allow_the_semantic_cache() -> None:
    assert tools_allow_semantic({"messages": []})
    assert tools_allow_semantic({"tools": TOOLS})
    assert not tools_allow_semantic({"tools": [*TOOLS, {"type": "web_search"}]})
    assert not tools_allow_semantic({"tools": "get_order_status"})


# --- through a live server -------------------------------------------------------------------------

def create(kit: TenantKit, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
           headers: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    raw = kit.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=copy.deepcopy(messages), tools=tools or TOOLS, tool_choice="none",
        extra_headers=headers or {})
    return raw.parse().choices[0].message.content or "", dict(raw.headers)


def until_semantic(kit: TenantKit, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                   timeout: float = 10.0) -> tuple[str, dict[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        answer, h = create(kit, messages, tools, headers={"Cache-Control": "no-store"})
        if h["x-leo-cache"] == "semantic" or time.monotonic() > deadline:
            return answer, h
        time.sleep(0.1)


def test_a_tool_conversation_paraphrased_is_served_a_different_result_is_not(kit: TenantKit,
                                                                            fake_upstream: Any) -> None:
    original = "When will order B7781 arrive?"
    answer, h = create(kit, order_chat(original, "today by 6 pm", "call_first"))
    assert h["x-leo-cache"] == "miss" and answer.startswith(tag(original))
    # Asked again in other words; the model minted another id for the same call.
    answer, h = until_semantic(kit, order_chat("When is order B7781 arriving?", "today by 6 pm", "call_second"))
    assert h["x-leo-cache"] == "semantic" and answer.startswith(tag(original))
    # The same question word for word after another tool result: never the stored answer.
    before = int(fake_upstream.stats()["chat"])
    answer, h = create(kit, order_chat(original, "delayed to Friday", "call_third"))
    assert h["x-leo-cache"] == "miss" and int(fake_upstream.stats()["chat"]) == before + 1


def test_built_in_tools_keep_the_request_out_of_the_semantic_cache(kit: TenantKit) -> None:
    """A search tool answers from outside the conversation: the paraphrase is never served."""
    with_search = [*TOOLS, {"type": "web_search"}]
    original = "When will order B7781 arrive?"
    create(kit, order_chat(original, "today", "call_1"), with_search)
    answer, h = until_semantic(kit, order_chat("When is order B7781 arriving?", "today", "call_1"), with_search,
                               timeout=1.5)
    assert h["x-leo-cache"] == "miss" and not answer.startswith(tag(original))
