"""Query decomposition: split a request made of independent questions into standalone parts.

Stage 5 of the pipeline. ``split(request)`` looks at the last user message and returns a
``Decomposition`` when it is a set of independent questions, else ``None``; ``compose(decomposition,
answers)`` puts the parts' answers back together. What is done with the parts is
``decomposition_stage``'s: it looks each ``Part.request`` up in the exact and semantic caches, asks
the upstream only for the missing parts (one call per part, in parallel, so each answer stands
alone) when some part hit and the missing parts cost less than the whole, stores each part's
answer as its own cache entry, and serves the composed answer with ``X-LEO-Cache: decomposed``;
otherwise the request goes on whole. The served ``usage`` is built there too, from each part's
upstream count; ``compose_usage`` below is the whole-text estimate, which the pipeline does not
use. How the text is read (its layout, the context around the questions) is ``decompose_parse``.

What is recognised
------------------
* numbered lists, one item a line: ``1. ...``, ``1) ...``, ``(1) ...`` (numbers 1, 2, 3 ... in
  order, one style);
* bulleted lists: ``- ...``, ``* ...``, ``• ...`` (one marker, one indentation level);
* inline numbered lists: ``About Python: 1. what is a list? 2. what is a dict?``;
* several question sentences, on one line or one a line: ``What is X? How does Y work?``;
* ``X? Also, Y?`` and ``What is X, and also how does Y work?`` (the connector is dropped).

List items must read as questions or requests (end in ``?`` or start with a question or request
word such as "what", "how", "explain", "define"); "Write a poem with: - rhymes - 4 lines" is a
list of constraints and is not split. A single question that merely contains "and" ("What are
the pros and cons of X?") has one question mark and is not split.

Shared context is kept: text before the questions ("About Python:", "I use Django 5.") is put in
front of every part, text after them ("Answer in French.") is put after every part. Generic
lead-ins ("I have a few questions:", "Answer these questions about Python:" -> "About Python:")
and pleasantries ("Thanks!") are dropped from the parts so they match later standalone asks.

When it refuses (returns ``None``)
----------------------------------
* the request has ``tools``, ``functions``, ``tool_choice``, ``function_call``,
  ``response_format``, ``logprobs``, ``audio``/non-text ``modalities``, ``prediction``, or ``n > 1``;
* the last message is not a text-only user message, or holds a code block (```` ``` ````/``~~~``);
* fewer than 2 or more than ``MAX_PARTS`` parts, a part longer than ``MAX_PART_CHARS``, a text
  longer than ``MAX_TEXT_CHARS``, or a part shorter than ``MIN_PART_WORDS`` words ("Why?");
* a statement between two questions (the structure is unclear);
* a later part depends on an earlier one: pronouns and demonstratives ("it", "its", "they",
  "them", "their", "this", "these", "those", "he", "she", demonstrative "that" as in "is that
  true?"), back-references ("the above", "the previous", "the former", "the latter", "the same",
  "the result", "the first one", "which one", "option 2", "both", "either"), sequence and
  consequence words ("then", "after that", "based on that", "using the result", "if so",
  "otherwise", "instead", "therefore"), or an elliptical opener ("What about Y?", "And Y?");
* the text around the questions treats them together ("compare", "difference", "rank",
  "summarize", "in one sentence", "as a table", "both", "together", "which is better").

Erring toward refusal is the point: a wrong split answers a question the user did not ask.

Streaming
---------
``chunk_text(text, size)`` cuts a text into SSE-sized pieces at whitespace, so
``"".join(chunk_text(t, n)) == t``. The pipeline does not use it: a composed answer is streamed
like any answer LEO already holds, by ``responses.replay_as_stream``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .decompose_parse import Form, clean_item, is_question, may_be_compound, parse, shared_context, shared_tail
from .prompt_tokens import CountTokens, count_prompt_tokens

MAX_PARTS = 8
MAX_PART_CHARS = 400
MAX_TEXT_CHARS = 3000
MIN_PART_WORDS = 3
#: Separator between composed parts.
SEPARATOR = "\n\n"

__all__ = [
    "MAX_PARTS",
    "MAX_PART_CHARS",
    "MAX_TEXT_CHARS",
    "Decomposition",
    "Part",
    "chunk_text",
    "compose",
    "compose_usage",
    "question_count",
    "split",
]


@dataclass(frozen=True)
class Part:
    """One standalone question of a compound request."""

    index: int
    #: The question as the user wrote it (connector like "Also," dropped): the compose heading.
    question: str
    #: The standalone text sent upstream and used as the cache key: context + question + tail.
    text: str
    #: A full chat request for this part alone: same model, system prompt, sampling params and
    #: earlier turns; the last user message replaced by ``text``; ``stream`` and
    #: ``stream_options`` removed.
    request: dict[str, Any]


@dataclass(frozen=True)
class Decomposition:
    """How a compound request splits, and what is needed to put the answers back together."""

    parts: tuple[Part, ...]
    form: Form
    #: Shared context put in front of every part ("About Python:"), "" when none.
    preamble: str
    #: Shared trailing instruction put after every part ("Answer in French."), "" when none.
    postamble: str
    #: The original request (a deep copy), for ``compose_usage``.
    original: dict[str, Any]
    separator: str = SEPARATOR


# ---------------------------------------------------------------------------------------------
# Refusal rules
# ---------------------------------------------------------------------------------------------

_REFUSE_FIELDS = (
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "response_format",
    "logprobs",
    "top_logprobs",
    "audio",
    "prediction",
)

_PRONOUNS = r"it|its|itself|they|them|their|theirs|themselves|this|these|those|he|him|his|she|her|hers"
_BACKREF = re.compile(
    r"\b(?:" + _PRONOUNS + r")\b"
    r"|\bthe (?:above|previous|former|latter|same|result|results|answer|output|one)\b"
    r"|\b(?:above|previous(?:ly)?|aforementioned|earlier|prior one)\b"
    r"|\b(?:first|second|third|fourth|fifth|last|other|former|latter) ones?\b"
    r"|\bwhich one\b|\bboth\b|\beither\b|\bneither\b|\beach other\b|\bthe two\b|\ball of them\b"
    r"|\b(?:option|item|question|step|part|point|number) (?:\d+|one|two|three|four|five|[a-e])\b"
    r"|\bthen\b|\bafter that\b|\bafterwards?\b|\bbased on\b|\busing (?:the|that|this) result"
    r"|\bwith that\b|\bfrom that\b|\bgiven that\b|\bin that case\b|\bif so\b|\bif not\b"
    r"|\botherwise\b|\binstead\b|\btherefore\b|\bhence\b|\bthus\b|\bnext\b|\blikewise\b"
    r"|\bsimilarly\b|\baccordingly\b",
    re.IGNORECASE,
)
# "that" is a back-reference when it stands alone ("do that", "is that true?") but not as a
# relative pronoun ("a function that returns"). These words before it mark the first kind.
_DEMONSTRATIVE_THAT = re.compile(
    r"(?:^|\b(?:is|was|are|were|does|do|did|about|of|with|for|from|on|in|to|than|like|use|"
    r"using|explain|mean|means|fix|change|make|why|how|what|and|but|or|because|after|before)\s+)"
    r"that\b|\bthat\s*(?:[?.!,;:]|$)",
    re.IGNORECASE,
)
_ELLIPTICAL = re.compile(
    r"^(?:and|or|but|so|because|what about|how about|what of|what else|why not|same for|" r"and for)\b",
    re.IGNORECASE,
)
_AGGREGATE = re.compile(
    r"\b(?:compare|comparison|comparing|contrast|versus|vs\.?|differences?|differ|rank|ranking|"
    r"relationship|relate|combine|combined|together|summari[sz]e|summary|overall|both|"
    r"in common|similarit(?:y|ies)|choose|pick|which is better|which one|best|total|sum|"
    r"table|json|csv|yaml|essay|story|poem|single|one (?:sentence|paragraph|line|word|answer)|"
    r"each other|all of them|them|they|then|after that|based on)\b",
    re.IGNORECASE,
)
# Harmless uses of "it"/"them" in a trailing instruction.
_POSTAMBLE_OK = re.compile(
    r"\b(?:keep|make) (?:it|them|each|answers?|the answers?) (?:short|brief|concise|simple)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"```|~~~")


def _depends(item: str) -> bool:
    """Whether a later part leans on an earlier one (a pronoun, a back-reference, "then", ...)."""
    return bool(_BACKREF.search(item) or _DEMONSTRATIVE_THAT.search(item))


def _text_content(content: Any) -> str | None:
    """The text of a user message, or None when it holds anything but text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for p in content:
            if not isinstance(p, Mapping) or p.get("type") != "text":
                return None
            texts.append(str(p.get("text", "")))
        return "\n".join(texts)
    return None


def _request_refused(request: Mapping[str, Any]) -> bool:
    if any(request.get(k) not in (None, False, [], {}) for k in _REFUSE_FIELDS):
        return True
    n = request.get("n")
    if n not in (None, 1):
        return True
    modalities = request.get("modalities")
    if modalities not in (None, ["text"]):
        return True
    messages = request.get("messages")
    return not isinstance(messages, list) or not messages


# ---------------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------------


def _part_text(context: str, question: str, tail: str) -> str:
    if context and context[-1] not in ".:!?;,)":
        context += ":"  # a bare topic line ("Python") introduces the question
    return " ".join(p for p in (context, question, tail) if p)


def _part_request(request: Mapping[str, Any], text: str) -> dict[str, Any]:
    dropped = ("stream", "stream_options", "messages")
    part = {k: copy.deepcopy(v) for k, v in request.items() if k not in dropped}
    messages = copy.deepcopy(list(request["messages"]))
    messages[-1] = {**messages[-1], "content": text}
    part["messages"] = messages
    return part


def split(request: Mapping[str, Any]) -> Decomposition | None:
    """Split a compound request into standalone parts, or None; see the module docstring."""
    if _request_refused(request):
        return None
    last = request["messages"][-1]
    if not isinstance(last, Mapping) or last.get("role") != "user":
        return None
    text = _text_content(last.get("content"))
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > MAX_TEXT_CHARS or not may_be_compound(text) or _CODE.search(text):
        return None
    parsed = parse(text)
    if parsed is None or not 2 <= len(parsed.items) <= MAX_PARTS:
        return None
    questions = [clean_item(i) for i in parsed.items]
    if not all(is_question(q) for q in questions):
        return None
    if any(
        len(q) > MAX_PART_CHARS or len(q.split()) < MIN_PART_WORDS or _ELLIPTICAL.match(q) for q in questions
    ):
        return None
    if any(_depends(q) for q in questions[1:]):
        return None
    context, tail = shared_context(parsed.preamble), shared_tail(parsed.postamble)
    around = f"{context} {_POSTAMBLE_OK.sub('', tail)}"
    if _AGGREGATE.search(around) or _depends(_POSTAMBLE_OK.sub("", tail)):
        return None
    parts: list[Part] = []
    for i, question in enumerate(questions):
        part_text = _part_text(context, question, tail)
        parts.append(Part(i, question, part_text, _part_request(request, part_text)))
    return Decomposition(
        parts=tuple(parts),
        form=parsed.form,
        preamble=context,
        postamble=tail,
        original=copy.deepcopy(dict(request)),
    )


def question_count(text: str) -> int:
    """How many questions ``text`` asks, counting dependent ones too (1 when not compound).

    What ``split`` reads as compound, with the dependent compounds it refuses counted too. The
    pipeline does not call it: the semantic cache's verifier counts a query's parts with its own
    rule (``compound`` in ``optimizer/semantic/verifier.py``).
    """
    text = text.strip()
    if not text:
        return 0
    parsed = parse(text)
    if (
        parsed is not None
        and len(parsed.items) >= 2
        and all(is_question(clean_item(item)) for item in parsed.items)
    ):
        return len(parsed.items)
    return 1


# ---------------------------------------------------------------------------------------------
# Composition and streaming
# ---------------------------------------------------------------------------------------------


def compose(decomposition: Decomposition, answers: list[str]) -> str:
    """The composed answer: each part's answer under its numbered, bold question.

    ::

        **1. What is a list?**

        A list is ...

        **2. What is a dict?**

        A dict is ...

    Deterministic: the same decomposition and answers give the same text.
    """
    if len(answers) != len(decomposition.parts):
        raise ValueError(f"compose needs {len(decomposition.parts)} answers, got {len(answers)}")
    blocks = [
        f"**{n}. {part.question}**\n\n{answer.strip()}"
        for n, (part, answer) in enumerate(zip(decomposition.parts, answers, strict=False), start=1)
    ]
    return decomposition.separator.join(blocks)


def compose_usage(
    decomposition: Decomposition,
    composed: str,
    count_tokens: CountTokens,
    *,
    prompt_tokens: int | None = None,
) -> dict[str, int]:
    """A whole-text estimate of OpenAI ``usage`` for the composed answer.

    ``completion_tokens`` is ``count_tokens(composed)``: the text the client receives, headings
    included. ``prompt_tokens`` is the original request's prompt, passed in when already counted,
    else counted with ``prompt_tokens.count_prompt_tokens`` (OpenAI's chat framing).

    Not what the pipeline serves or bills: ``decomposition_stage`` keeps each part's answer at its
    upstream's own count and estimates only the original prompt and the headings, since
    estimating the whole composed text overstated the counterfactual. This is for callers that
    have no per-part counts.
    """
    if prompt_tokens is None:
        prompt_tokens = count_prompt_tokens(decomposition.original["messages"], count_tokens)
    completion = count_tokens(composed)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


def chunk_text(text: str, size: int = 64) -> list[str]:
    """Cut ``text`` into pieces of at most ``size`` characters for SSE ``delta.content``.

    Cuts fall after whitespace where possible so words are not split across chunks; a word
    longer than ``size`` is cut hard. ``"".join(chunk_text(text, size)) == text`` always.
    """
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    chunks: list[str] = []
    pos = 0
    while pos < len(text):
        end = min(pos + size, len(text))
        if end < len(text):
            window = text[pos:end]
            cut = max(window.rfind(" "), window.rfind("\n"))
            if cut > 0:
                end = pos + cut + 1
        chunks.append(text[pos:end])
        pos = end
    return chunks
