"""Which conversations may meet in the semantic cache: the partition's context, and tools.

The exact cache's key holds every message verbatim (``optimizer/pipeline/canonical.py``), and
so did the semantic partition: every message but the last user text, so only that text is ever
compared by similarity. Two kinds of request never met a paraphrase that way.

A follow-up whose earlier user turns are reworded ("I'm building a small Flask app." / "building a
small flask app", then "How do I add user login?"): ``partition_context`` leaves out the *text* of
up to ``PRIOR_USER_TURNS`` earlier user turns, each short enough to be held whole in the embedded
text (``conversation_text``, ``PRIOR_TURN_CHARS``). Their number and position stay in the
partition, and every other message (assistant turns, tool calls and results, names) verbatim;
the verifier then compares the earlier turns one by one (``verify`` on texts of several lines),
strictly: no rewording is judged by the cosine there. Longer or more earlier turns stay verbatim.

A tool-using conversation, for two reasons: requests with ``tools`` skipped the semantic cache,
and the tool-call ids in the conversation are minted by the model for each call, so the same
call with the same result never hashed alike twice.

``tools_allow_semantic`` lets a request with ``tools`` use the semantic cache when every tool is
a function the caller runs itself. The tools' definitions and ``tool_choice`` are in the scope
(hashed as canonical JSON), and every call and result in the partition, so the answer is a
function of the question the verifier compares and of things that are identical. Built-in tools
(web search, file search) answer from data outside the conversation: such requests stay out.

``partition_context`` renumbers tool-call ids by first appearance (``call_0``, ``call_1``, ...);
the calls' names, arguments and results stay verbatim, so a different tool result is still
another partition.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .embedder import PRIOR_TURN_CHARS, PRIOR_USER_TURNS

PARTITION_VERSION = b"semantic-context-v1"
"""Marks relaxed contexts, so a relaxed hash never equals an exact one."""


def _dump(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def tools_allow_semantic(body: dict[str, Any]) -> bool:
    """May a request with these ``tools`` (or legacy ``functions``) use the semantic cache?"""
    tools = body.get("tools")
    if body.get("functions"):
        return isinstance(body["functions"], list) and all(isinstance(f, dict) for f in body["functions"])
    if not tools:
        return True
    return isinstance(tools, list) and all(isinstance(t, dict) and t.get("type") == "function" for t in tools)


def _relaxable_user_turn(message: dict[str, Any]) -> bool:
    """A plain user text that ``conversation_text`` holds whole, so the verifier sees all of it."""
    content = message.get("content")
    if set(message) - {"role", "content"} or not isinstance(content, str):
        return False
    return 0 < len(" ".join(content.split())) <= PRIOR_TURN_CHARS


def _renumber_calls(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The messages with tool-call ids replaced by ``call_<n>`` in order of first appearance."""
    ids: dict[str, str] = {}

    def new_id(old: Any) -> Any:
        if not isinstance(old, str):
            return old
        return ids.setdefault(old, f"call_{len(ids)}")

    out: list[dict[str, Any]] = []
    for m in messages:
        m = dict(m)
        calls = m.get("tool_calls")
        if isinstance(calls, list):
            m["tool_calls"] = [
                {**c, "id": new_id(c.get("id"))} if isinstance(c, dict) and "id" in c else c for c in calls
            ]
        if "tool_call_id" in m:
            m["tool_call_id"] = new_id(m["tool_call_id"])
        out.append(m)
    return out, bool(ids)


def partition_context(prior: list[dict[str, Any]], after: list[dict[str, Any]], own: dict[str, Any]) -> str | None:
    """The context hash of the semantic partition, or ``None`` when it is the exact context's.

    ``prior`` and ``after`` are the non-system messages before and after the last user message,
    ``own`` that message's fields besides its role and content (as ``canonicalize`` splits them).
    """
    if own:
        return None
    user_turns = [i for i, m in enumerate(prior) if m.get("role") == "user"]
    relax = 0 < len(user_turns) <= PRIOR_USER_TURNS and all(_relaxable_user_turn(prior[i]) for i in user_turns)
    if relax:
        prior = [{"role": "user", "content": ""} if i in user_turns else m for i, m in enumerate(prior)]
    conversation, renamed = _renumber_calls([*prior, {"role": "user"}, *after])
    if not relax and not renamed:
        return None
    h = hashlib.sha256()
    for part in (PARTITION_VERSION, _dump(conversation)):
        h.update(part)
        h.update(b"\x00")
    return h.hexdigest()
