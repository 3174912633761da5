"""Reading a compound request's text: its layout and the shared context around its questions.

``decompose.split`` decides whether to split; this module only reads. ``parse(text)`` finds the
items of one layout (numbered lines, bulleted lines, an inline numbered list, or several question
sentences) with the text before them (``preamble``) and after them (``postamble``), or returns
``None`` when the layout is unclear. ``shared_context`` and ``shared_tail`` then drop what only
announces the questions ("I have a few questions:") or thanks for them, and ``clean_item`` drops
a connector ("Also,") from an item. The forms and the refusal rules are described in
``optimizer/pipeline/decompose.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Form = Literal["numbered", "bulleted", "inline_numbered", "questions"]

# ---------------------------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------------------------

_LEAD_WORDS = (
    "what|what's|whats|how|why|when|where|who|whom|whose|which|is|are|was|were|do|does|did|can|"
    "could|should|would|will|shall|may|might|must|has|have|had|explain|describe|define|list|"
    "name|give|tell|show|summarize|summarise|translate|recommend|suggest|outline|state"
)
_QUESTION_START = re.compile(r"^(?:" + _LEAD_WORDS + r")\b", re.IGNORECASE)
_CONNECTOR = re.compile(
    r"^(?:and also|also|additionally|in addition|plus|moreover|furthermore|another question|"
    r"one more thing|one more|second(?:ly)?|third(?:ly)?|finally|lastly|first(?:ly)?|"
    r"and(?=\s+(?:" + _LEAD_WORDS + r")\b))\b[,:]?\s*",
    re.IGNORECASE,
)
# "In Rust, what is ownership? How do lifetimes work?" or "Quick question: what is X? ...": the
# opening phrase is context (or a lead-in, dropped later) for every question, not the first's.
_CONTEXT_PREFIX = re.compile(
    r"^(?P<ctx>(?:in|about|for|regarding|concerning|on|with|using|re)\b[^?,:]{2,60}(?=[,:])"
    r"|[^?:]{2,80}(?=:))[,:]\s+"
    r"(?P<q>(?:" + _LEAD_WORDS + r")\b.*)$",
    re.IGNORECASE,
)
_AND_ALSO = re.compile(r",?\s+and also\s+", re.IGNORECASE)

# Sentences before the questions that only announce them.
_LEAD_IN = re.compile(
    r"^(?:hi|hello|hey|greetings)\b.*$"
    r"|^(?:(?:please|kindly)\s+)?(?:(?:can|could|would) you\s+(?:please\s+)?)?"
    r"(?:answer|help(?: me)? with|respond to|address|tell me)\b[^:]*?\b(?:questions?|following|these|"
    r"below)\b.*$"
    r"|^(?:i|we)(?:'ve| have| got|'ve got)\b.*\b(?:questions?|things?)\b.*$"
    r"|^(?:here are|the following are|below are|quick questions?|questions?|my questions?)\b.*$",
    re.IGNORECASE,
)
_LEAD_IN_SUBJECT = re.compile(
    r"\b(?:questions?|following|these)\s+(?P<subj>(?:about|on|regarding|concerning|for|in)\s+.+?)"
    r"\s*[:.?!]*$",
    re.IGNORECASE,
)
_PLEASANTRY = re.compile(
    r"^(?:thanks|thank you|thx|cheers|ty)\b.*$|^(?:much appreciated|appreciate it)\W*$",
    re.IGNORECASE,
)

_NUM_LINE = re.compile(
    r"^(?P<indent>\s*)(?:(?P<n1>\d{1,2})(?P<p>[.)])|\((?P<n2>\d{1,2})\))\s+(?P<body>\S.*)$"
)
_BULLET_LINE = re.compile(r"^(?P<indent>\s*)(?P<b>[-*•])\s+(?P<body>\S.*)$")
_INLINE_MARK = re.compile(r"(?:(?<=\s)|^)(?:(?P<n1>\d{1,2})(?P<p>[.)])|\((?P<n2>\d{1,2})\))\s+")
_QSPLIT = re.compile(r"(?<=\?)[\"')\]]*\s+")
_SSPLIT = re.compile(r"(?<=[.!])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+(?=[\"'(\[]?[A-Z])")



# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    """The items of one layout, in order, and the raw text before and after them."""

    form: Form
    preamble: str
    items: list[str]
    postamble: str


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for chunk in _QSPLIT.split(text.strip()):
        out.extend(s.strip() for s in _SSPLIT.split(chunk) if s.strip())
    return out


def is_question(item: str) -> bool:
    """Whether an item reads as a question or a request: ends in "?" or opens with a question
    or request word ("what", "explain", ...)."""
    item = item.strip()
    return item.endswith("?") or bool(_QUESTION_START.match(item))


def _tail_split(text: str) -> tuple[str, str]:
    """Split a last item into (question, trailing statements) at its last question mark."""
    sentences = _sentences(text)
    for i in range(len(sentences) - 1, -1, -1):
        if sentences[i].endswith("?"):
            return " ".join(sentences[: i + 1]), " ".join(sentences[i + 1 :])
    return text.strip(), ""


def _parse_lines(text: str) -> Parsed | None:
    """One item a line: numbered or bulleted."""
    lines = text.split("\n")
    kinds: list[tuple[int, re.Match[str], Form]] = []
    for i, line in enumerate(lines):
        m = _NUM_LINE.match(line)
        if m:
            kinds.append((i, m, "numbered"))
            continue
        m = _BULLET_LINE.match(line)
        if m:
            kinds.append((i, m, "bulleted"))
    if len(kinds) < 2:
        return None
    first, last = kinds[0][0], kinds[-1][0]
    item_lines = {i for i, _, _ in kinds}
    # Anything but blank lines between the first and last item makes the structure unclear
    # (continuation lines, nested text): refuse rather than guess.
    if any(lines[i].strip() and i not in item_lines for i in range(first, last + 1)):
        return None
    forms = {f for _, _, f in kinds}
    indents = {m.group("indent") for _, m, _ in kinds}
    if len(forms) != 1 or len(indents) != 1:
        return None
    form = forms.pop()
    if form == "numbered":
        styles = {m.group("p") or "()" for _, m, _ in kinds}
        numbers = [int(m.group("n1") or m.group("n2")) for _, m, _ in kinds]
        if len(styles) != 1 or numbers != list(range(1, len(numbers) + 1)):
            return None
    else:
        if len({m.group("b") for _, m, _ in kinds}) != 1:
            return None
    items = [m.group("body").strip() for _, m, _ in kinds]
    preamble = "\n".join(lines[:first]).strip()
    postamble = "\n".join(lines[last + 1 :]).strip()
    return Parsed(form, preamble, items, postamble)


def _parse_inline(text: str) -> Parsed | None:
    """``Context: 1. first? 2. second?`` on one line (or wrapped)."""
    if "\n\n" in text.strip():
        return None
    marks = list(_INLINE_MARK.finditer(text))
    chosen: list[re.Match[str]] = []
    style: str | None = None
    for m in marks:
        n = int(m.group("n1") or m.group("n2"))
        s = m.group("p") or "()"
        if n == len(chosen) + 1 and (style is None or s == style):
            chosen.append(m)
            style = s
    if len(chosen) < 2:
        return None
    preamble = text[: chosen[0].start()].strip()
    items: list[str] = []
    ends = [m.start() for m in chosen[1:]] + [len(text)]
    for mark, end in zip(chosen, ends, strict=True):
        items.append(text[mark.end() : end].strip())
    items[-1], postamble = _tail_split(items[-1])
    return Parsed("inline_numbered", preamble, items, postamble)


def _parse_questions(text: str) -> Parsed | None:
    """Several question sentences, with optional context before and statements after."""
    sentences = _sentences(text)
    expanded: list[str] = []
    for s in sentences:
        pieces = _AND_ALSO.split(s)
        if len(pieces) == 2 and s.endswith("?") and all(_QUESTION_START.match(p.strip()) for p in pieces):
            expanded.extend([pieces[0].rstrip(" ,") + "?", pieces[1]])
        else:
            expanded.append(s)
    q_idx = [i for i, s in enumerate(expanded) if s.endswith("?")]
    if len(q_idx) < 2:
        return None
    first, last = q_idx[0], q_idx[-1]
    if any(not expanded[i].endswith("?") for i in range(first, last + 1)):
        return None
    prefix = _CONTEXT_PREFIX.match(expanded[first])
    if prefix:
        expanded = list(expanded)
        expanded[first] = prefix.group("q")
        expanded.insert(first, prefix.group("ctx").strip() + ":")
        first, last = first + 1, last + 1
    preamble = " ".join(expanded[:first])
    postamble = " ".join(expanded[last + 1 :])
    return Parsed("questions", preamble, expanded[first : last + 1], postamble)


def may_be_compound(text: str) -> bool:
    """A cheap necessary condition for every layout ``parse`` reads: two lines, two question marks,
    a question joined by "and also", or an inline "1." mark. Nearly every single question fails it
    at once, so the decomposition check costs them a few microseconds instead of the full parse."""
    return ("\n" in text or text.count("?") >= 2 or ("?" in text and "and also" in text.lower())
            or _INLINE_MARK.search(text) is not None)


def parse(text: str) -> Parsed | None:
    """The items of the first layout that reads cleanly, or None when none does (or a list is
    nested, mixed or out of order, where guessing could split the wrong way)."""
    parsed = _parse_lines(text)
    if parsed is not None:
        return parsed
    lines = text.split("\n")
    if any(_BULLET_LINE.match(line) for line in lines):
        return None  # bullets we could not read as one flat list: nested or mixed
    parsed = _parse_inline(text)
    if parsed is not None:
        return parsed
    if any(_NUM_LINE.match(line) for line in lines):
        return None  # numbered lines out of order or mixed styles
    return _parse_questions(text)


# ---------------------------------------------------------------------------------------------
# Shared context
# ---------------------------------------------------------------------------------------------


def shared_context(preamble: str) -> str:
    """The preamble without sentences that only announce the questions."""
    kept: list[str] = []
    for sentence in _sentences(preamble.replace("\n", " ")):
        if _LEAD_IN.match(sentence):
            subject = _LEAD_IN_SUBJECT.search(sentence)
            if subject:
                subj = subject.group("subj")
                kept.append(subj[0].upper() + subj[1:] + ":")
            continue
        kept.append(sentence)
    return " ".join(kept).strip()


def shared_tail(postamble: str) -> str:
    """The postamble without pleasantries ("Thanks!")."""
    return " ".join(s for s in _sentences(postamble.replace("\n", " ")) if not _PLEASANTRY.match(s)).strip()


def clean_item(item: str) -> str:
    """An item without its connector ("Also,", "Secondly,") and runs of whitespace, capitalised
    when it opens with a question word."""
    item = _CONNECTOR.sub("", item.strip()).strip()
    item = " ".join(item.split())
    if item and item[0].islower() and _QUESTION_START.match(item):
        item = item[0].upper() + item[1:]
    return item
