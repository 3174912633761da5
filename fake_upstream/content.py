"""Deterministic content: the token rule, the ANSWER tag and its filler, embedding vectors.

The ANSWER tag: a chat answer's content starts with ``ANSWER[`` + the first 12 hex digits of
SHA-256(the last user message's text, UTF-8) + ``]``, then 20-40 filler words derived from that
hash, then a full stop. The text of a message is its ``content`` when that is a string; when it
is a list of content parts, it is the ``text`` of its text parts joined with ``"\\n"``. A legacy
completion's tag is the hash of its prompt (each prompt of a list gets its own). Choice ``i`` of
``n`` keeps the tag and varies the filler deterministically with ``i``.

The token rule (the fake's own, documented so a ledger can be reconciled exactly)::

    tokens(text)      = len(re.findall(r"\\w+|[^\\w\\s]", text))
    chat prompt       = 3 + sum over messages of (4 + tokens(message text))
                        + tokens(compact JSON of tools, keys sorted) when tools are given
                        (an assistant message's tool calls add "\\n" + name + "\\n" + arguments
                        to its text)
    completion        = sum over choices of tokens(answer content), or for a tool call
                        tokens(function name) + tokens(arguments)
    legacy prompt     = sum over prompts of tokens(prompt); token arrays count their length
    embeddings        = sum over inputs of tokens(input); completion_tokens is 0

Pure functions of their arguments, no I/O: ``answers`` builds responses from them.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from functools import lru_cache
from typing import Any

DEFAULT_EMBEDDING_DIMENSIONS = 256
WORDS_PER_CHUNK = 4

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_WORD_PIECE_RE = re.compile(r"\S+\s*")

_FILLER_WORDS: tuple[str, ...] = (
    "alpha", "beta", "gamma", "delta", "signal", "vector", "cache", "answer",
    "model", "token", "prompt", "result", "context", "detail", "summary", "value",
    "system", "request", "reply", "method", "source", "record", "ledger", "gateway",
    "stream", "chunk", "index", "budget", "policy", "tenant", "router", "query",
    "fact", "figure", "sample", "measure", "factor", "option", "branch", "layer",
    "review", "report", "outline", "example", "pattern", "signal", "window", "buffer",
    "clear", "brief", "exact", "plain", "steady", "simple", "direct", "careful",
    "first", "second", "third", "final", "next", "other", "whole", "early",
)  # fmt: skip


def count_tokens(text: str) -> int:
    """The fake's token count: words (``\\w+``) and single punctuation marks."""
    return len(_TOKEN_RE.findall(text))


def content_text(content: Any) -> str:
    """The text of a message ``content``: the string, or the text parts joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        ]
        return "\n".join(parts)
    return str(content)


def message_text(message: dict[str, Any]) -> str:
    """A chat message's text for token counting: content, then each tool call's name and args."""
    text = content_text(message.get("content"))
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                text += "\n" + str(function.get("name", "")) + "\n" + str(function.get("arguments", ""))
    return text


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last message whose role is ``user`` ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def answer_tag(text: str) -> str:
    """The 12 hex digits that name a question: the start of SHA-256(text, UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@lru_cache(maxsize=8192)
def answer_text(text: str, index: int = 0) -> str:
    """The deterministic answer to ``text``: ``ANSWER[<tag>]`` and 20-40 filler words.

    Choice ``index`` > 0 keeps the tag and draws other filler, so ``n`` choices differ.
    """
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    seed = digest if index == 0 else hashlib.sha256(digest + index.to_bytes(4, "big")).digest()
    stream = hashlib.shake_256(seed).digest(41)
    count = 20 + stream[0] % 21
    words = [_FILLER_WORDS[b % len(_FILLER_WORDS)] for b in stream[1 : 1 + count]]
    return f"ANSWER[{digest.hex()[:12]}] " + " ".join(words) + "."


def truncate_to_tokens(text: str, limit: int | None) -> tuple[str, bool]:
    """Cut ``text`` after its ``limit``-th token; returns (text, truncated)."""
    if limit is None:
        return text, False
    for position, match in enumerate(_TOKEN_RE.finditer(text), start=1):
        if position == limit:
            end = match.end()
            # Cut only when a token follows; trailing whitespace alone is not a truncation.
            return (text[:end], True) if _TOKEN_RE.search(text, end) else (text, False)
    return text, False


@lru_cache(maxsize=4096)
def embedding_vector(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> tuple[float, ...]:
    """A deterministic unit vector for ``text``, drawn from SHAKE-256 of its hash."""
    seed = hashlib.sha256(b"embedding:" + text.encode("utf-8")).digest()
    raw = hashlib.shake_256(seed).digest(2 * dimensions)
    values = struct.unpack(f"<{dimensions}h", raw)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)


def stream_pieces(text: str) -> list[str]:
    """Split ``text`` into stream pieces of a few words each; they concatenate back to ``text``."""
    words = _WORD_PIECE_RE.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    if lead and words:
        words[0] = lead + words[0]
    elif lead:
        words = [lead]
    return ["".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]
