"""The canonical form of a request: what decides whether two requests may share an answer.

scope  = tenant + namespace + endpoint + model + every parameter that can change the answer
         (temperature, top_p, max_tokens, seed, n, stop, tools, tool_choice, response_format,
         logprobs, ... : everything in the body except the messages and the few fields listed in
         IGNORED, which only change delivery) + the system prompt(s).
context = the conversation before its last user message (without system messages): the semantic
         cache only matches within the same context, so a follow-up is never answered for a
         different conversation.
key    = scope + the whole message list: the exact cache's key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

# Fields that change how an answer is delivered or billed, never what it says.
IGNORED = frozenset({"messages", "prompt", "input", "stream", "stream_options", "user", "metadata", "store",
                     "service_tier"})


def _dump(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
        h.update(b"\x00")
    return h.hexdigest()


def text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def has_non_text(messages: list[dict[str, Any]]) -> bool:
    """Images, audio or files: semantic matching on the text alone would ignore them."""
    for m in messages:
        c = m.get("content")
        if isinstance(c, list) and any(isinstance(p, dict) and p.get("type") != "text" for p in c):
            return True
    return False


def last_user_index(messages: list[dict[str, Any]]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return -1


@dataclass(frozen=True)
class Canonical:
    scope: str
    context: str
    key: str
    last_user: str

    @property
    def partition(self) -> str:
        """The semantic index partition: same scope and same prior conversation."""
        return _sha(self.scope.encode(), self.context.encode())


def canonicalize(tenant_id: int, endpoint: str, body: dict[str, Any], namespace: str = "") -> Canonical:
    params = {k: v for k, v in body.items() if k not in IGNORED}
    messages = body.get("messages") or []
    system = [m.get("content") for m in messages if m.get("role") in ("system", "developer")]
    scope = _sha(str(tenant_id).encode(), namespace.encode(), endpoint.encode(), _dump(params), _dump(system))
    idx = last_user_index(messages)
    prior = [m for m in messages[: max(idx, 0)] if m.get("role") not in ("system", "developer")]
    context = _sha(_dump(prior))
    conversation = messages if endpoint == "chat" else body.get("prompt", body.get("input"))
    key = _sha(scope.encode(), _dump(conversation))
    last_user = text_of(messages[idx].get("content")) if idx >= 0 else ""
    return Canonical(scope=scope, context=context, key=key, last_user=last_user)


def is_nondeterministic(body: dict[str, Any]) -> bool:
    temperature = body.get("temperature")
    n = body.get("n") or 1
    return (isinstance(temperature, int | float) and temperature > 0) or (isinstance(n, int) and n > 1)
