"""The text rewrites of prompt optimization (``prompt_opt``), one message text at a time.

A text is read as blocks: paragraphs of prose lines, and fenced code or JSON values, which are
atomic and never rewritten. Inside a prose line, inline code, URLs and quoted strings are
protected spans. On top of that: whether a text is *plain* (lossless mode touches whitespace only
in plain text; the rules are in ``prompt_opt``'s docstring), and the per-line rewrites of
aggressive mode: collapsing runs of spaces, dropping filler phrases, and the key under which a
repeated instruction sentence is recognised. Which rewrite applies to which message is
``prompt_opt``'s decision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# ---------------------------------------------------------------------------------------------
# Text structure: blocks (paragraphs, fences, JSON) and protected spans inside a line
# ---------------------------------------------------------------------------------------------

_FENCE_RUN = re.compile(r"`{3,}|~{3,}")
_WS_RUN = re.compile(r"[ \t]{2,}")
# Spans inside a prose line that are never rewritten: inline code, URLs, and single-, double- or
# curly-quoted strings.
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
# What makes a line not plain prose for lossless mode (see prompt_opt's docstring): quotes that are
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
class Block:
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


def split_blocks(text: str) -> list[Block]:
    """Split a message's text into blocks; blank lines between blocks collapse to one."""
    lines = text.split("\n")
    line_starts: list[int] = []
    offset = 0
    for line in lines:
        line_starts.append(offset)
        offset += len(line) + 1
    blocks: list[Block] = []
    blank_before = False
    current: Block | None = None
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
            blocks.append(Block(kind, lines[i : end + 1], sep(), i))
            current, blank_before = None, False
            i = end + 1
            continue
        if not line.strip():
            current, blank_before = None, blank_before or bool(blocks)
            i += 1
            continue
        if current is None:
            current = Block("prose", [], sep(), i)
            blocks.append(current)
            blank_before = False
        current.lines.append(line)
        i += 1
    return blocks


def render(blocks: list[Block]) -> str:
    """The text of ``blocks`` joined back, each after its separator."""
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


def is_plain(text: str, blocks: list[Block]) -> bool:
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


def tidy_line(line: str) -> str:
    """Aggressive whitespace tidy of one prose line: keep indentation, collapse interior runs."""
    stripped = line.rstrip(" \t\r\f\v")
    body = stripped.lstrip(" \t")
    indent = stripped[: len(stripped) - len(body)]
    if "\t" in body:
        # Interior tabs are usually columns (TSV, aligned tables): leave them exactly.
        return indent + body
    return indent + _map_gaps(body, lambda gap: _WS_RUN.sub(" ", gap))


def norm(text: str) -> str:
    """``text`` with every run of whitespace as one space: the key repeats are compared by."""
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
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=\S)")
_SENTENCE_LIKE = re.compile(r"^[A-Za-z][^|]*[.!?]$")


def drop_fillers(line: str) -> str:
    stripped = line.rstrip()
    body = stripped.lstrip(" \t")
    indent = stripped[: len(stripped) - len(body)]
    if "\t" in body:
        return line  # a tab-separated row is data, like in tidy_line

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


def sentence_key(sentence: str) -> str | None:
    """A comparison key for an instruction-like sentence, or None when it is not one."""
    s = norm(sentence)
    if not _SENTENCE_LIKE.match(s) or len(s.split()) < 2:
        return None
    return s.lower()

