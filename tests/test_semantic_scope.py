"""Which conversations meet in the semantic cache (optimizer/semantic/scope.py, issue #12).

Follow-ups: earlier user turns reworded only in form ("I'm building a small Flask app." /
"building a small flask app") share a partition and pass the verifier turn by turn; an earlier
turn that names another thing (Norway / Egypt) shares the partition but is refused.

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
from optimizer.semantic.verifier import verify
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


def follow_up(earlier: str, question: str, reply: str = "Sure. What do you need help with?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": earlier}, {"role": "assistant", "content": reply},
            {"role": "user", "content": question}]


def test_earlier_user_turns_leave_the_partition_everything_else_stays() -> None:
    first = canonicalize(1, "chat", {"model": MODEL, "messages": follow_up("I'm building a small Flask app.", "Q?")})
    reworded = canonicalize(1, "chat", {"model": MODEL, "messages": follow_up("building a small flask app", "Q?")})
    other_reply = canonicalize(1, "chat", {"model": MODEL, "messages": follow_up(
        "building a small flask app", "Q?", reply="Okay. What is your question?")})
    one_more_turn = canonicalize(1, "chat", {"model": MODEL, "messages": [
        *follow_up("I'm building a small Flask app.", "Q?")[:2], *follow_up("It uses SQLite.", "Q?")]})
    assert first.partition == reworded.partition and first.key != reworded.key
    assert other_reply.partition != first.partition  # assistant turns stay verbatim
    assert one_more_turn.partition != first.partition  # so do the number and places of the turns


def test_a_long_or_third_earlier_turn_stays_verbatim() -> None:
    """The verifier sees only what the embedded text holds: 2 earlier turns of 300 characters."""
    def partition(*earlier: str) -> str:
        messages: list[dict[str, Any]] = []
        for text in earlier:
            messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "Ok."}]
        return canonicalize(1, "chat", {"model": MODEL, "messages": [*messages, {"role": "user", "content": "Q?"}]}
                            ).partition
    long = "I'm building a small Flask app. " * 10
    assert partition(long) != partition(long.lower())
    assert partition("A.", "B.", "C.") != partition("a", "B.", "C.")
    assert partition("A.", "B.") == partition("a", "b")


def test_the_verifier_compares_earlier_turns_one_by_one() -> None:
    asked = "building a small flask app\nhow do i add user login"
    assert verify(asked, "I'm building a small Flask app.\nHow do I add user login?").ok
    other_place = verify("I am planning a trip to Egypt.\nWhat should I pack?",
                         "I am planning a trip to Norway.\nWhat should I pack?", cosine=0.99)
    assert (other_place.ok, other_place.reason) == (False, "context")
    # The questions are still compared: the same earlier turn, another question.
    assert not verify("building a small flask app\nhow do i add user logout",
                      "I'm building a small Flask app.\nHow do I add user login?", cosine=0.95).ok
    assert verify("I have a Flask app.\nIt uses SQLite.\nHow do I add login?",
                  "It uses SQLite.\nHow do I add login?").reason == "context"


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


def ask(kit: TenantKit, messages: list[dict[str, Any]], headers: dict[str, str] | None = None
        ) -> tuple[str, dict[str, str]]:
    raw = kit.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=copy.deepcopy(messages), extra_headers=headers or {})
    return raw.parse().choices[0].message.content or "", dict(raw.headers)


def test_a_follow_up_reworded_throughout_is_served_another_earlier_turn_is_not(kit: TenantKit,
                                                                             fake_upstream: Any) -> None:
    question = "How do I add user login?"
    answer, h = ask(kit, follow_up("I'm building a small Flask app.", question))
    assert h["x-leo-cache"] == "miss"
    deadline = time.monotonic() + 10
    while True:
        answer, h = ask(kit, follow_up("building a small flask app", "how do i add user login"),
                        headers={"Cache-Control": "no-store"})
        if h["x-leo-cache"] == "semantic" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert h["x-leo-cache"] == "semantic" and answer.startswith(tag(question))
    before = int(fake_upstream.stats()["chat"])
    answer, h = ask(kit, follow_up("I'm building a small Django app.", question))
    assert h["x-leo-cache"] == "miss" and int(fake_upstream.stats()["chat"]) == before + 1
