"""Prompt token estimates: what a chat model bills for a message list, and a message's text.

Shared by the stages that weigh prompts (prompt optimization, decomposition, routing).
``count_prompt_tokens`` applies the rule OpenAI documents for its chat models: 3 framing tokens per
message, plus the role and the content, plus 1 and the name when a ``name`` is set, plus 3 that
prime the reply (tool calls are counted as their compact JSON). ``count_tokens`` is the caller's
counter (``text -> int``); the pipeline passes ``pricing.count_tokens``, the cheap
four-characters-a-token estimate, not a model's tokenizer: it counts both sides of a comparison
alike, and the ledger's billed figures come from the upstream's usage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

CountTokens = Callable[[str], int]

__all__ = ["CountTokens", "count_prompt_tokens", "message_text", "request_tokens"]


def message_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list joined by
    newlines (image/audio parts contribute nothing), or ``""`` for ``None``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        ]
        return "\n".join(texts)
    return str(content)


def count_prompt_tokens(messages: Iterable[Mapping[str, Any]], count_tokens: CountTokens) -> int:
    """Estimated prompt tokens of a chat message list (OpenAI's documented chat framing)."""
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3
        total += count_tokens(str(message.get("role", "")))
        total += count_tokens(message_text(message.get("content")))
        name = message.get("name")
        if name:
            total += 1 + count_tokens(str(name))
        tool_calls = message.get("tool_calls")
        if tool_calls:
            total += count_tokens(json.dumps(tool_calls, separators=(",", ":"), sort_keys=True))
    return total


def request_tokens(request: Mapping[str, Any], count_tokens: CountTokens) -> int:
    """Estimated prompt tokens of a chat request (its messages) or a legacy completions request
    (its prompt string); 0 when it has neither."""
    messages = request.get("messages")
    if isinstance(messages, list):
        return count_prompt_tokens(messages, count_tokens)
    prompt = request.get("prompt")  # legacy /v1/completions
    if isinstance(prompt, str):
        return count_tokens(prompt)
    return 0
