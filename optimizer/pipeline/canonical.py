"""The canonical form of a request: what decides whether two requests may share an answer.

scope  = tenant + namespace + endpoint + model + every parameter that can change the answer
         (temperature, top_p, max_tokens, seed, n, stop, tools, tool_choice, response_format,
         logprobs, ... : everything in the body except the messages and the few fields listed in
         IGNORED, which only change delivery) + the system prompt(s) + the model a routing rule
         sent the request to, when one did (the same body routed for one key and not for another
         is answered by two different models).
context = the rest of the conversation around its last user message, without system messages:
         every turn before it and every message after it (tool results, an assistant prefill).
         The semantic cache only matches within the same context, so only the last user
         message's wording is ever compared by similarity; everything else must be identical.
key    = scope + the whole message list: the exact cache's key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..semantic.scope import partition_context

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
    # The context the semantic partition holds when it is looser than `context` (tool-call ids
    # renumbered: optimizer/semantic/scope.py); "" when it is `context` itself.
    partition_context: str = ""

    @property
    def partition(self) -> str:
        """The semantic index partition: same scope and the same conversation around the last user
        message (only that message's text is compared by similarity)."""
        return _sha(self.scope.encode(), (self.partition_context or self.context).encode())


def canonicalize(tenant_id: int, endpoint: str, body: dict[str, Any], namespace: str = "",
                 routed_to: str = "") -> Canonical:
    """`routed_to`: the model a routing rule chose instead of `body["model"]` ("" when not routed)."""
    params = {k: v for k, v in body.items() if k not in IGNORED}
    messages = body.get("messages") or []
    system = [m.get("content") for m in messages if m.get("role") in ("system", "developer")]
    scope_parts = [str(tenant_id).encode(), namespace.encode(), endpoint.encode(), _dump(params), _dump(system)]
    if routed_to:
        # An extra part, not a field in `params`: no body a client sends can produce this scope.
        scope_parts.append(b"routed-to:" + routed_to.encode())
    scope = _sha(*scope_parts)
    idx = last_user_index(messages)
    prior = [m for m in messages[: max(idx, 0)] if m.get("role") not in ("system", "developer")]
    # Tool results or an assistant prefill after the question, and the question's own fields
    # besides its text (`name`), change the answer as much as its wording does. Hashed as extra
    # parts only when present, so the partitions of conversations that end with a plain question
    # keep their hash (and their stored entries).
    after = [m for m in messages[idx + 1:] if m.get("role") not in ("system", "developer")]
    own = {k: v for k, v in messages[idx].items() if k not in ("role", "content")} if idx >= 0 else {}
    context = _sha(_dump(prior), _dump(after), _dump(own)) if after or own else _sha(_dump(prior))
    conversation = messages if endpoint == "chat" else body.get("prompt", body.get("input"))
    key = _sha(scope.encode(), _dump(conversation))
    last_user = text_of(messages[idx].get("content")) if idx >= 0 else ""
    return Canonical(scope=scope, context=context, key=key, last_user=last_user,
                     partition_context=partition_context(prior, after, own) or "")


def is_nondeterministic(body: dict[str, Any]) -> bool:
    temperature = body.get("temperature")
    n = body.get("n") or 1
    return (isinstance(temperature, int | float) and temperature > 0) or (isinstance(n, int) and n > 1)
