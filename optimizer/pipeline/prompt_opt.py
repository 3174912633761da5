"""Prompt optimization: send fewer prompt tokens upstream without changing what is asked.

Stage 6 of the pipeline. ``optimize(request, mode, count_tokens)`` returns a *new* request (the
input is never mutated) with the prompt tokens counted before and after, and a list of the
changes made, for the ledger and for debugging.

Modes
-----
``off``
    The request is copied unchanged.
``lossless`` (the default a tenant gets)
    Only changes that cannot change what is asked. Whitespace can carry meaning (the spaces
    inside ``len('a     b')``, space-aligned columns, a diff's blank context line, a YAML block,
    a backslash before a newline, a completions prompt's final space), so lossless touches it
    only in *plain* text, and never inside a line:

    * a text is plain when, outside its fenced code blocks and JSON values, no line holds a
      quote (an apostrophe inside a word is not one), a backtick, one of ``; { } = < > \\ |``,
      a tab or another control character, or a diff marker (``@@``, ``+++``, ``---``, a line
      starting with ``+`` or ``-`` that is not a ``- list item``);
      a text that is not plain is sent byte for byte;
    * in a plain text: trailing spaces at line ends go, leading/trailing blank lines of a
      chat message go (a completions prompt keeps its ends), and two or more blank lines
      become one. Runs of spaces inside a line and indentation are never touched;
    * a repeated context block of a plain text (a paragraph of at least
      ``LOSSLESS_MIN_DUP_CHARS`` characters pasted again, later in the same message or in a
      later system/user message) is dropped; when the paragraph before it introduces it (ends
      with ``:``) a short pointer to the earlier copy is left instead, so the sentence still reads.

    Never touched: fenced code blocks (```` ``` ```` / ``~~~``, including ones opened mid-line),
    JSON values that start a line, tool and function messages, non-text content parts, and
    every character that is not whitespace.
``aggressive`` (a tenant must opt in)
    Everything above on any text (plain or not), plus: runs of spaces inside a prose line
    collapse to one (never inside inline code, URLs, or single-, double- or curly-quoted
    strings; lines with tabs are left alone), filler phrases are dropped ("please", "kindly", "I was wondering
    if you could", greetings, "thanks in advance"), an instruction sentence repeated within a
    message or already present in the system prompt is dropped, repeated paragraphs are dropped
    from a lower size (``AGGRESSIVE_MIN_DUP_CHARS``), and, only when
    ``AggressiveOptions.max_history_turns`` is set, conversation history older than that many
    messages is trimmed (system/developer messages are always kept). Every number, entity, code
    block and instruction still survives in the kept messages.

If an optimization would not lower the token count (a pointer costs tokens too) the original
request is returned unchanged, so ``tokens_after <= tokens_before`` always holds.

Where things are
----------------
This module decides which rewrite applies to which message (modes, roles, repeats across
messages, history). The text rewrites themselves are ``prompt_text``'s; the before/after token
counts are ``prompt_tokens``' (OpenAI's chat framing over the caller's ``count_tokens``; the
pipeline passes ``pricing.count_tokens``, which counts both sides of the comparison alike).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .prompt_text import (
    SENTENCE_SPLIT,
    Block,
    drop_fillers,
    is_plain,
    norm,
    render,
    sentence_key,
    split_blocks,
    tidy_line,
)
from .prompt_tokens import CountTokens, count_prompt_tokens, message_text, request_tokens

Mode = Literal["off", "lossless", "aggressive"]

#: A paragraph must be at least this long to be dropped as a repeat in lossless mode. Short
#: repeats ("Yes.", a list item) are usually intended; long ones are pasted documents.
LOSSLESS_MIN_DUP_CHARS = 100
#: The same threshold in aggressive mode.
AGGRESSIVE_MIN_DUP_CHARS = 40

# Roles whose text may be tidied; tool/function outputs are data and are left byte-for-byte.
_TIDY_ROLES = frozenset({"system", "developer", "user", "assistant"})
# Roles from which a repeated block may be removed (and which count as "seen" text). An
# assistant's earlier answer is not a source: a user quoting it back means something by it.
_DEDUPE_ROLES = frozenset({"system", "developer", "user"})
_INSTRUCTION_ROLES = frozenset({"system", "developer"})

# CountTokens, count_prompt_tokens and message_text live in prompt_tokens; they stay importable
# from here, where other stages and tests have long imported them.
__all__ = [
    "AGGRESSIVE_MIN_DUP_CHARS",
    "LOSSLESS_MIN_DUP_CHARS",
    "AggressiveOptions",
    "CountTokens",
    "Mode",
    "OptimizeResult",
    "count_prompt_tokens",
    "message_text",
    "optimize",
]


@dataclass(frozen=True)
class AggressiveOptions:
    """Knobs for aggressive mode; the defaults keep every message."""

    #: Keep only the last N non-system messages (the kept window starts at a user message so
    #: tool-call sequences are never cut in half). ``None`` keeps the whole history.
    max_history_turns: int | None = None
    min_dup_chars: int = AGGRESSIVE_MIN_DUP_CHARS


@dataclass(frozen=True)
class OptimizeResult:
    """The optimized request (a new dict) and what it cost before and after."""

    request: dict[str, Any]
    tokens_before: int
    tokens_after: int
    changes: list[str] = field(default_factory=list)

    @property
    def tokens_saved(self) -> int:
        """Prompt tokens the optimization removed (never negative)."""
        return self.tokens_before - self.tokens_after


# ---------------------------------------------------------------------------------------------
# The optimizer
# ---------------------------------------------------------------------------------------------


class _Optimizer:
    """Holds what earlier messages said, so later repeats can be recognised."""

    def __init__(self, mode: Mode, options: AggressiveOptions) -> None:
        self.aggressive = mode == "aggressive"
        self.min_dup = options.min_dup_chars if self.aggressive else LOSSLESS_MIN_DUP_CHARS
        self.seen_blocks: dict[str, int] = {}
        self.instruction_sentences: set[str] = set()
        self.changes: list[str] = []

    def text(self, text: str, where: str, role: str, keep_ends: bool = False) -> str:
        blocks = split_blocks(text)
        if not self.aggressive and not is_plain(text, blocks):
            return text  # lossless: whitespace may mean something here, so none of it moves
        if keep_ends:
            # A completions prompt is continued from its last character: its ends stay as sent.
            body = text.strip()
            if not body:
                return text
            head = text[: len(text) - len(text.lstrip())]
            tail = text[len(text.rstrip()) :]
            return head + self.text(body, where, role) + tail
        dedupe = role in _DEDUPE_ROLES
        filler = self.aggressive and role in _DEDUPE_ROLES
        kept: list[Block] = []
        local_sentences: set[str] = set()
        removed_dups = removed_fillers = removed_sentences = 0
        for block in blocks:
            if block.kind != "prose":
                kept.append(block)
                continue
            if self.aggressive:
                block.lines = [tidy_line(line) for line in block.lines]
            else:
                block.lines = [line.rstrip(" \r") for line in block.lines]
            if filler:
                new_lines = [drop_fillers(line) for line in block.lines]
                if new_lines != block.lines:
                    removed_fillers += 1
                block.lines = [line for line in new_lines if line.strip()]
                if not block.lines:
                    continue
            key = norm(block.text())
            if dedupe and len(key) >= self.min_dup and key in self.seen_blocks:
                removed_dups += 1
                if kept and kept[-1].kind == "prose" and kept[-1].lines[-1].rstrip().endswith(":"):
                    # The previous sentence introduces this block: point at the earlier copy.
                    words = " ".join(key.split()[:6])
                    pointer = f'[same text as earlier, beginning "{words}..."]'
                    kept.append(Block("prose", [pointer], block.sep))
                continue
            if dedupe and len(key) >= self.min_dup:
                self.seen_blocks.setdefault(key, len(self.seen_blocks))
            if self.aggressive and dedupe:
                # Whole repeated blocks are handled above (with a pointer where one is needed);
                # here single sentences repeated inside otherwise new text.
                block.lines, n = self._drop_repeated_sentences(block.lines, role, local_sentences)
                removed_sentences += n
                if not block.lines:
                    continue
            kept.append(block)
        if kept and kept[0].sep:
            kept[0].sep = ""
        if removed_dups:
            self.changes.append(f"{where}: dropped {removed_dups} repeated block(s)")
        if removed_fillers:
            self.changes.append(f"{where}: dropped filler phrases")
        if removed_sentences:
            self.changes.append(f"{where}: dropped {removed_sentences} repeated instruction(s)")
        result = render(kept)
        if not result.strip():
            return text  # never empty a message: keep what the user sent
        if result != text and not (removed_dups or removed_fillers or removed_sentences):
            self.changes.append(f"{where}: tidied whitespace")
        return result

    def _drop_repeated_sentences(self, lines: list[str], role: str, local: set[str]) -> tuple[list[str], int]:
        removed = 0
        out: list[str] = []
        for line in lines:
            stripped = line.strip()
            indent = line[: len(line) - len(line.lstrip())]
            if "\t" in stripped:
                out.append(line)  # a tab-separated row is data
                continue
            # Sentences around code or quotes are not split: a split could cut a span.
            protected = "`" in stripped or '"' in stripped
            sentences = [stripped] if protected else SENTENCE_SPLIT.split(stripped)
            kept: list[str] = []
            for sentence in sentences:
                key = sentence_key(sentence)
                in_system = role not in _INSTRUCTION_ROLES and key in self.instruction_sentences
                if key is not None and (key in local or in_system):
                    removed += 1
                    continue
                if key is not None:
                    local.add(key)
                    if role in _INSTRUCTION_ROLES:
                        self.instruction_sentences.add(key)
                kept.append(sentence)
            if len(kept) == len(sentences):
                out.append(line)
            elif kept:
                out.append(indent + " ".join(kept))
        return out, removed


def _trim_history(messages: list[dict[str, Any]], keep: int, changes: list[str]) -> list[dict[str, Any]]:
    """Keep system/developer messages and the last ``keep`` others, starting at a user turn."""
    others = [i for i, m in enumerate(messages) if m.get("role") not in _INSTRUCTION_ROLES]
    if len(others) <= keep:
        return messages
    window = others[-keep:] if keep > 0 else others[-1:]
    # Start the window at a user message so an assistant tool call is never split from its
    # tool results (a provider rejects a tool message without the call before it).
    while len(window) > 1 and messages[window[0]].get("role") != "user":
        window = window[1:]
    kept_idx = set(window) | {i for i, m in enumerate(messages) if m.get("role") in _INSTRUCTION_ROLES}
    dropped = len(messages) - len(kept_idx)
    changes.append(f"messages: trimmed {dropped} old message(s) of history")
    return [m for i, m in enumerate(messages) if i in kept_idx]


def optimize(
    request: Mapping[str, Any],
    mode: Mode,
    count_tokens: CountTokens,
    *,
    options: AggressiveOptions | None = None,
) -> OptimizeResult:
    """Optimize a chat (or legacy completions) request; see the module docstring.

    ``request`` is never mutated; ``OptimizeResult.request`` is always a new dict.
    """
    if mode not in ("off", "lossless", "aggressive"):
        raise ValueError(f"unknown prompt optimization mode: {mode!r}")
    options = options or AggressiveOptions()
    before = request_tokens(request, count_tokens)
    new = copy.deepcopy(dict(request))
    if mode == "off":
        return OptimizeResult(new, before, before, [])

    opt = _Optimizer(mode, options)
    messages = new.get("messages")
    if isinstance(messages, list):
        if mode == "aggressive" and options.max_history_turns is not None:
            messages = _trim_history(messages, options.max_history_turns, opt.changes)
            new["messages"] = messages
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            role = str(message.get("role", ""))
            if role not in _TIDY_ROLES:
                continue
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = opt.text(content, f"messages[{i}]", role)
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and part.get("type") == "text":
                        part["text"] = opt.text(
                            str(part.get("text", "")), f"messages[{i}].content[{j}]", role
                        )
    elif isinstance(new.get("prompt"), str):
        new["prompt"] = opt.text(new["prompt"], "prompt", "user", keep_ends=True)

    changed = new != dict(request)
    if not changed:
        return OptimizeResult(new, before, before, [])
    after = request_tokens(new, count_tokens)
    if after > before:
        # A pointer or a re-tokenised seam cost more than it saved: send the original.
        return OptimizeResult(copy.deepcopy(dict(request)), before, before, [])
    return OptimizeResult(new, before, after, opt.changes)
