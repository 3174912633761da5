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

Token counting
--------------
``count_prompt_tokens`` estimates what a chat model bills for a message list with the rule
OpenAI documents for its chat models: 3 framing tokens per message, plus the role and the
content, plus 1 when a ``name`` is set, plus 3 that prime the reply. ``count_tokens`` is the
caller's counter (``text -> int``); the pipeline passes ``pricing.count_tokens``, the cheap
four-characters-a-token estimate, not a model's tokenizer: it counts both sides of the
before/after comparison alike, and the ledger's billed figures come from the upstream's usage.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["off", "lossless", "aggressive"]
CountTokens = Callable[[str], int]

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
# Message helpers shared by the other stages
# ---------------------------------------------------------------------------------------------


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


def _request_tokens(request: Mapping[str, Any], count_tokens: CountTokens) -> int:
    messages = request.get("messages")
    if isinstance(messages, list):
        return count_prompt_tokens(messages, count_tokens)
    prompt = request.get("prompt")  # legacy /v1/completions
    if isinstance(prompt, str):
        return count_tokens(prompt)
    return 0


# ---------------------------------------------------------------------------------------------
# Text structure: blocks (paragraphs, fences, JSON) and protected spans inside a line
# ---------------------------------------------------------------------------------------------

_FENCE_RUN = re.compile(r"`{3,}|~{3,}")
_WS_RUN = re.compile(r"[ \t]{2,}")
# Spans inside a prose line that are never rewritten: inline code, URLs, double-quoted strings.
_PROTECTED = re.compile(
    r"(?P<code>(?<!`)(`+)(?!`).+?(?<!`)\2(?!`))"
    r"|(?P<url>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'`]+)"
    r"|(?P<quote>\"(?:[^\"\\\n]|\\.)*\")"
    # A single quote that does not sit inside a word opens a string (`len('a     b')`); one
    # inside a word ("don't") is an apostrophe.
    r"|(?P<squote>(?<![^\W_])'(?:[^'\\\n]|\\.)*'(?![^\W_]))"
    r"|(?P<curly>“[^”\n]*”|‘[^’\n]*’(?![^\W_]))"
)
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'`]+")
# What makes a line not plain prose for lossless mode (see the module docstring): quotes that are
# not apostrophes inside a word, code punctuation, tabs and control characters (a CR only at the
# line's end, as in CRLF), and diff markers.
_NOT_PLAIN = re.compile(
    r"[`\"“”„‟«»;{}=<>\\|\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
    r"|(?<![^\W_])['‘’‛]|['‘’‛](?![^\W_])"
    # diff lines: "@@", "+++"/"---" headers, and "+"/"-" lines that are no "- list item"
    r"|\r(?!$)|@@|^(?:\+\+\+|---|diff )|^[+-](?! \S)"
)
_JSON = json.JSONDecoder()
_MAX_JSON_ATTEMPTS = 16


@dataclass
class _Block:
    """A paragraph of prose lines, or an atomic fenced-code / JSON block."""

    kind: Literal["prose", "fence", "json"]
    lines: list[str]
    sep: str  # what precedes the block: "" (first), "\n" (adjacent) or "\n\n" (blank line)
    start: int = 0  # index of its first line in the text

    def text(self) -> str:
        return "\n".join(self.lines)


def _fence_end(lines: list[str], start: int) -> int | None:
    """Index of the last line of a fenced block opening at ``lines[start]``, or None.

    A line opens a fence when it holds an odd number of ``` / ~~~ runs (an even number is inline
    code such as ```x```). The block runs to the next line holding a run of the same character
    at least as long; an unclosed fence runs to the end of the text.
    """
    runs = _FENCE_RUN.findall(lines[start])
    if len(runs) % 2 == 0:
        return None
    opener = runs[-1]
    closer = re.compile(re.escape(opener[0]) + "{" + str(len(opener)) + ",}")
    for end in range(start + 1, len(lines)):
        if closer.search(lines[end]):
            return end
    return len(lines) - 1


def _json_end(text: str, line_starts: list[int], lines: list[str], start: int) -> int | None:
    """Index of the last line of a JSON value that begins ``lines[start]``, or None.

    Only values that start a line and end a line are taken, so the decoder is tried once per
    candidate line and prose like "[see below]" costs one failed parse.
    """
    stripped = lines[start].lstrip()
    if not stripped or stripped[0] not in "{[":
        return None
    begin = line_starts[start] + len(lines[start]) - len(stripped)
    try:
        _, end = _JSON.raw_decode(text, begin)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
        return None
    last = text.count("\n", begin, end) + start
    rest_of_line = text[end : line_starts[last] + len(lines[last])]
    if rest_of_line.strip(" \t,;"):
        return None
    return last


def _blocks(text: str) -> list[_Block]:
    """Split a message's text into blocks; blank lines between blocks collapse to one."""
    lines = text.split("\n")
    line_starts: list[int] = []
    offset = 0
    for line in lines:
        line_starts.append(offset)
        offset += len(line) + 1
    blocks: list[_Block] = []
    blank_before = False
    current: _Block | None = None
    # Each failed JSON parse can read to the end of the text: cap them so a text of many "["
    # lines stays linear. Past the cap, JSON is treated as prose (its strings stay protected).
    json_budget = _MAX_JSON_ATTEMPTS
    i = 0

    def sep() -> str:
        if not blocks:
            return ""
        return "\n\n" if blank_before else "\n"

    while i < len(lines):
        line = lines[i]
        end = _fence_end(lines, i)
        kind: Literal["fence", "json"] = "fence"
        if end is None and json_budget > 0 and line.lstrip()[:1] in ("{", "["):
            end = _json_end(text, line_starts, lines, i)
            kind = "json"
            if end is None:
                json_budget -= 1
        if end is not None:
            blocks.append(_Block(kind, lines[i : end + 1], sep(), i))
            current, blank_before = None, False
            i = end + 1
            continue
        if not line.strip():
            current, blank_before = None, blank_before or bool(blocks)
            i += 1
            continue
        if current is None:
            current = _Block("prose", [], sep(), i)
            blocks.append(current)
            blank_before = False
        current.lines.append(line)
        i += 1
    return blocks


def _render(blocks: list[_Block]) -> str:
    out = "".join(b.sep + b.text() for b in blocks)
    return out


def _map_gaps(body: str, fn: Callable[[str], str]) -> str:
    """Apply ``fn`` to the parts of ``body`` outside protected spans."""
    out: list[str] = []
    pos = 0
    for m in _PROTECTED.finditer(body):
        out.append(fn(body[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(fn(body[pos:]))
    return "".join(out)


def _is_plain(text: str, blocks: list[_Block]) -> bool:
    """Whether every line outside the fenced code and JSON blocks is plain prose (see above)."""
    protected: set[int] = set()
    for block in blocks:
        if block.kind != "prose":
            protected.update(range(block.start, block.start + len(block.lines)))
    return not any(
        _NOT_PLAIN.search(_URL.sub("", line))
        for i, line in enumerate(text.split("\n"))
        if i not in protected
    )


def _tidy_line(line: str) -> str:
    """Aggressive whitespace tidy of one prose line: keep indentation, collapse interior runs."""
    stripped = line.rstrip(" \t\r\f\v")
    body = stripped.lstrip(" \t")
    indent = stripped[: len(stripped) - len(body)]
    if "\t" in body:
        # Interior tabs are usually columns (TSV, aligned tables): leave them exactly.
        return indent + body
    return indent + _map_gaps(body, lambda gap: _WS_RUN.sub(" ", gap))


def _norm(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------
# Aggressive-mode rewrites
# ---------------------------------------------------------------------------------------------

# Bounded by non-word and non-URL-ish characters so "please@example.com" or "/please" survive.
_B = r"(?<![\w@/.:-])"
_E = r"(?![\w@/:-])"
_FILLERS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        _B + r"(?:hi|hello|hey|greetings|good (?:morning|afternoon|evening))(?: there| all| everyone)?"
        r"\s*[,!.]+\s*(?=\S)",
        _B + r"I hope (?:you(?:'re| are) (?:doing )?well|this (?:message )?finds you well)[.!]?\s*",
        _B + r"(?:I was wondering|I'?m wondering|I'?d like to know|I would like to know)"
        r" (?:if|whether) you (?:could|can|would)" + _E + r"\s*",
        _B + r"I (?:would|'d) (?:really |greatly )?(?:appreciate (?:it )?|be (?:very )?grateful )"
        r"if you (?:could|can|would)" + _E + r"\s*",
        _B + r"if you (?:don't|do not) mind" + _E + r",?\s*",
        _B + r"(?:please|kindly)" + _E + r",?\s*",
        _B + r"(?:thanks|thank you)(?: (?:so|very) much)?(?: in advance)?(?: for (?:your|the) help)?"
        r"(?:\s*[.!]+(?=\s|$)|\s*$)\s*",
    )
)
_SEAM = re.compile(r" +([,.;:!?])")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=\S)")
_SENTENCE_LIKE = re.compile(r"^[A-Za-z][^|]*[.!?]$")


def _drop_fillers(line: str) -> str:
    stripped = line.rstrip()
    body = stripped.lstrip(" \t")
    indent = stripped[: len(stripped) - len(body)]
    if "\t" in body:
        return line  # a tab-separated row is data, like in _tidy_line

    def fix(gap: str) -> str:
        original = gap
        for pattern in _FILLERS:
            gap = pattern.sub("", gap)
        if gap == original:
            return gap
        # A removal can leave "  " or " ," behind: tidy only the gaps that were cut.
        return _SEAM.sub(r"\1", _WS_RUN.sub(" ", gap))

    body = _map_gaps(body, fix)
    return indent + body.strip(" ")


def _sentence_key(sentence: str) -> str | None:
    """A comparison key for an instruction-like sentence, or None when it is not one."""
    s = _norm(sentence)
    if not _SENTENCE_LIKE.match(s) or len(s.split()) < 2:
        return None
    return s.lower()


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
        blocks = _blocks(text)
        if not self.aggressive and not _is_plain(text, blocks):
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
        kept: list[_Block] = []
        local_sentences: set[str] = set()
        removed_dups = removed_fillers = removed_sentences = 0
        for block in blocks:
            if block.kind != "prose":
                kept.append(block)
                continue
            if self.aggressive:
                block.lines = [_tidy_line(line) for line in block.lines]
            else:
                block.lines = [line.rstrip(" \r") for line in block.lines]
            if filler:
                new_lines = [_drop_fillers(line) for line in block.lines]
                if new_lines != block.lines:
                    removed_fillers += 1
                block.lines = [line for line in new_lines if line.strip()]
                if not block.lines:
                    continue
            key = _norm(block.text())
            if dedupe and len(key) >= self.min_dup and key in self.seen_blocks:
                removed_dups += 1
                if kept and kept[-1].kind == "prose" and kept[-1].lines[-1].rstrip().endswith(":"):
                    # The previous sentence introduces this block: point at the earlier copy.
                    words = " ".join(key.split()[:6])
                    pointer = f'[same text as earlier, beginning "{words}..."]'
                    kept.append(_Block("prose", [pointer], block.sep))
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
        result = _render(kept)
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
            sentences = [stripped] if protected else _SENTENCE_SPLIT.split(stripped)
            kept: list[str] = []
            for sentence in sentences:
                key = _sentence_key(sentence)
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
    before = _request_tokens(request, count_tokens)
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
    after = _request_tokens(new, count_tokens)
    if after > before:
        # A pointer or a re-tokenised seam cost more than it saved: send the original.
        return OptimizeResult(copy.deepcopy(dict(request)), before, before, [])
    return OptimizeResult(new, before, after, opt.changes)
