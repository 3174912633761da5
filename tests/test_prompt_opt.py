"""Prompt optimization (optimizer.pipeline.prompt_opt): fewer tokens, same meaning.

Property tests generate messy prompts out of numbers, entities, URLs, code blocks, inline code,
JSON and instructions, and check that every one of them survives both modes. Tokens are counted
with cl100k_base (bpe_openai ships the table, so no download is needed).
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.pipeline.prompt_opt import (
    AggressiveOptions,
    count_prompt_tokens,
    message_text,
    optimize,
)

with warnings.catch_warnings():
    # bpe_openai loads its bundled tables at import with a deprecated importlib.resources call.
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

    _ENC = bpe_openai.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    return len(_ENC.encode(text))


def chat(*contents: tuple[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [{"role": role, "content": content} for role, content in contents],
        **extra,
    }


def user_text(result_request: dict[str, Any], index: int = -1) -> str:
    return message_text(result_request["messages"][index]["content"])


DOC = (
    "The Zanzibar project started on 2019-03-14 with a budget of $4.5M, led by Ada Lovelace "
    "and Grace Hopper at https://example.com/zanzibar?id=42. It covers 3 regions and 17 sites."
)

# --- generated prompts ---------------------------------------------------------------------------

ENTITIES = [
    "Ada Lovelace",
    "Zanzibar",
    "Kubernetes",
    "OpenAI",
    "São Paulo",
    "McDonald's",
    "GPT-4o",
    "PostgreSQL 16",
]
INSTRUCTIONS = [
    "Answer in French.",
    "Use at most 3 bullet points.",
    "Return valid JSON only.",
    "Do not mention competitors.",
    "Cite the section numbers you rely on.",
]
FILLERS = ["Please", "please", "Could you kindly", "I was wondering if you could", "Kindly"]
SEPARATORS = [" ", "  ", "\t ", " \t\t ", "\n", "\n\n", "\n\n\n\n", "   \n", " \n \n\n"]

numbers = st.one_of(
    st.integers(min_value=0, max_value=10**9).map(str),
    st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False).map(str),
    st.integers(min_value=1, max_value=999).map(lambda n: f"${n},000"),
)
urls = st.integers(min_value=1, max_value=10**6).map(
    lambda n: f"https://example.com/please/{n}?q=a%20b&n={n}"
)
code_body = st.lists(
    st.sampled_from(
        ["x  =  1", "    return   please", "", "", "\tif a:  ", "print('hi   there')   ", "# 1  2  3"]
    ),
    min_size=1,
    max_size=6,
).map("\n".join)
code_blocks = code_body.map(lambda body: f"```python\n{body}\n```")
inline_code = st.sampled_from(["`a  b`", "`please   keep`", "``x ` y``"])
json_blobs = st.dictionaries(
    st.sampled_from(["name", "city", "note"]),
    st.sampled_from(["Ada  Lovelace", "São   Paulo", "a\tb", "please"]),
    min_size=1,
).map(lambda d: json.dumps(d, indent=2))
instructions = st.tuples(st.sampled_from(FILLERS + [""]), st.sampled_from(INSTRUCTIONS))


@st.composite
def messy_prompts(draw: st.DrawFn) -> tuple[str, dict[str, list[str]]]:
    """A prompt made of must-survive pieces separated by whitespace noise, some repeated."""
    pieces: list[str] = []
    keep: dict[str, list[str]] = {
        "numbers": [],
        "entities": [],
        "urls": [],
        "verbatim": [],
        "instructions": [],
    }
    for _ in range(draw(st.integers(min_value=3, max_value=12))):
        kind = draw(
            st.sampled_from(["number", "entity", "url", "code", "inline", "json", "instruction", "words"])
        )
        if kind == "number":
            n = draw(numbers)
            pieces.append(f"The value is {n} units.")
            keep["numbers"].append(n)
        elif kind == "entity":
            e = draw(st.sampled_from(ENTITIES))
            pieces.append(f"We met {e} there.")
            keep["entities"].append(e)
        elif kind == "url":
            u = draw(urls)
            pieces.append(f"See {u} for details.")
            keep["urls"].append(u)
        elif kind == "code":
            c = draw(code_blocks)
            pieces.append("\n" + c + "\n")
            keep["verbatim"].append(c)
        elif kind == "inline":
            c = draw(inline_code)
            pieces.append(f"Use {c} here.")
            keep["verbatim"].append(c)
        elif kind == "json":
            j = draw(json_blobs)
            pieces.append("\n" + j + "\n")
            keep["verbatim"].append(j)
        elif kind == "instruction":
            filler, instruction = draw(instructions)
            text = f"{filler} {instruction[0].lower()}{instruction[1:]}" if filler else instruction
            pieces.append(text)
            keep["instructions"].append(instruction)
        else:
            pieces.append(draw(st.sampled_from(["Hello there.", "thanks in advance!", "It  is   late."])))
        if draw(st.booleans()) and len(pieces[-1]) > 10:
            pieces.append(pieces[-1])  # a repeat
    text = ""
    for piece in pieces:
        text += piece + draw(st.sampled_from(SEPARATORS))
    return text, keep


def _numbers_in(text: str) -> set[str]:
    return set(re.findall(r"\d+", text))


def _assert_survives(original: str, out: str, keep: dict[str, list[str]], *, aggressive: bool) -> None:
    assert _numbers_in(original) <= _numbers_in(out)
    for n in keep["numbers"]:
        assert n in out
    for e in keep["entities"]:
        assert e in out
    for u in keep["urls"]:
        assert u in out
    for v in keep["verbatim"]:
        assert v in out, v
    flat = " ".join(out.split()).lower()
    for instruction in keep["instructions"]:
        core = instruction.lower()
        assert core in flat, instruction


@given(messy_prompts(), st.sampled_from(["lossless", "aggressive"]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_number_entity_code_block_and_instruction_survives(
    prompt: tuple[str, dict[str, list[str]]], mode: str
) -> None:
    text, keep = prompt
    request = chat(("system", "You are terse.  "), ("user", text))
    before = copy.deepcopy(request)
    result = optimize(request, mode, count_tokens)  # type: ignore[arg-type]
    assert request == before  # never mutated
    out = user_text(result.request)
    _assert_survives(text, out, keep, aggressive=mode == "aggressive")
    assert result.tokens_before == count_prompt_tokens(request["messages"], count_tokens)
    assert result.tokens_after == count_prompt_tokens(result.request["messages"], count_tokens)
    assert result.tokens_after <= result.tokens_before
    # Optimizing twice changes nothing more.
    again = optimize(result.request, mode, count_tokens)  # type: ignore[arg-type]
    assert again.request == result.request
    assert again.tokens_after == result.tokens_after


# --- already-tight input is left alone -----------------------------------------------------------

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789.,?!'-:", min_size=1, max_size=8)
lines = st.lists(words, min_size=1, max_size=8).map(" ".join)
paragraphs = st.lists(lines, min_size=1, max_size=3).map("\n".join)


@st.composite
def tight_texts(draw: st.DrawFn) -> str:
    paras = draw(st.lists(paragraphs, min_size=1, max_size=5, unique=True))
    if draw(st.booleans()):
        # A code block may hold any whitespace: it is not ours to tidy.
        paras.insert(draw(st.integers(0, len(paras))), "```\n  a   b  \n\n\n\tc\n```")
    if draw(st.booleans()):
        paras.append("  - an indented item\n    - a nested item")
    return "\n\n".join(paras)


@given(tight_texts(), st.sampled_from(["lossless", "off"]))
@settings(max_examples=150, deadline=None)
def test_identity_on_already_tight_input(text: str, mode: str) -> None:
    request = chat(("system", "Be brief."), ("user", text), temperature=0.3)
    result = optimize(request, mode, count_tokens)  # type: ignore[arg-type]
    assert result.request == request
    assert result.request is not request
    assert result.tokens_after == result.tokens_before
    assert result.changes == []


# --- lossless examples ---------------------------------------------------------------------------


def test_trailing_spaces_and_blank_lines_go_but_runs_inside_a_line_stay() -> None:
    text = "Summarise   this  text: \n\n\n\n\nIt has  17 items.   \n  - keep   indent\n\n\n"
    result = optimize(chat(("user", text)), "lossless", count_tokens)
    # Spaces inside a line can carry meaning (aligned columns, a literal), so lossless leaves them.
    assert user_text(result.request) == "Summarise   this  text:\n\nIt has  17 items.\n  - keep   indent"
    assert result.tokens_after < result.tokens_before
    assert result.changes == ["messages[0]: tidied whitespace"]
    # Aggressive collapses them too.
    result = optimize(chat(("user", text)), "aggressive", count_tokens)
    assert user_text(result.request) == "Summarise this text:\n\nIt has 17 items.\n  - keep indent"


def test_the_spaces_inside_a_quoted_string_survive_every_mode() -> None:
    """Issue #13, item 11: lossless collapsed the spaces in `len('a     b')` and changed the answer."""
    text = "What does len('a     b') return?   \n\n\n\nAnswer with a number."
    for mode in ("lossless", "aggressive"):
        out = user_text(optimize(chat(("user", text)), mode, count_tokens).request)  # type: ignore[arg-type]
        assert "len('a     b')" in out, mode
    # Not plain (a quote): lossless sends it byte for byte, trailing spaces and blank lines included.
    assert user_text(optimize(chat(("user", text)), "lossless", count_tokens).request) == text


def test_space_aligned_columns_survive_lossless() -> None:
    table = "Name      Age   City\nAda       36    London\nGrace           Arlington   \n\n\n\nWho has no age?"
    out = user_text(optimize(chat(("user", table)), "lossless", count_tokens).request)
    assert out == table.replace("Arlington   ", "Arlington").replace("\n\n\n\n", "\n\n")


def test_code_inline_code_quotes_urls_json_and_tab_columns_are_untouched() -> None:
    text = (
        "Fix   this:\n```python\ndef f(x):   \n\n\n\n    return  x  \n```\n"
        'Call `f(  1 )` with "two   spaces" from https://a.example/x%20%20y.\n'
        '{\n  "name":   "Ada   Lovelace",\n  "n": 1\n}\n'
        "id\tname\t\tcity\n1\tAda\t\tLondon"
    )
    out = user_text(optimize(chat(("user", text)), "lossless", count_tokens).request)
    assert out == text  # code, quotes and tabs outside the fence: nothing moves
    out = user_text(optimize(chat(("user", text)), "aggressive", count_tokens).request)
    assert out.startswith("Fix this:\n```python\ndef f(x):   \n\n\n\n    return  x  \n```\n")
    assert "`f(  1 )`" in out and '"two   spaces"' in out and "https://a.example/x%20%20y." in out
    assert '{\n  "name":   "Ada   Lovelace",\n  "n": 1\n}' in out
    assert "id\tname\t\tcity\n1\tAda\t\tLondon" in out


def test_fence_opened_mid_line_is_protected() -> None:
    text = "Here is my code: ```js\nconst  a  =  1;   \n\n\n\n```\nWhy   does it fail?  "
    out = user_text(optimize(chat(("user", text)), "lossless", count_tokens).request)
    assert out == "Here is my code: ```js\nconst  a  =  1;   \n\n\n\n```\nWhy   does it fail?"
    out = user_text(optimize(chat(("user", text)), "aggressive", count_tokens).request)
    assert out == "Here is my code: ```js\nconst  a  =  1;   \n\n\n\n```\nWhy does it fail?"


def test_document_pasted_twice_in_one_message_is_kept_once() -> None:
    text = f"Read this.\n\n{DOC}\n\nI paste it again below.\n\n{DOC}\n\nHow many sites are there?"
    result = optimize(chat(("user", text)), "lossless", count_tokens)
    out = user_text(result.request)
    assert out.count("Zanzibar project") == 1
    assert out == f"Read this.\n\n{DOC}\n\nI paste it again below.\n\nHow many sites are there?"
    assert result.tokens_before - result.tokens_after >= count_tokens(DOC) - 2
    assert any("repeated block" in c for c in result.changes)


def test_block_repeated_from_the_system_prompt_is_dropped_from_the_user_message() -> None:
    request = chat(("system", f"Background:\n\n{DOC}"), ("user", f"{DOC}\n\nWho leads it?"))
    result = optimize(request, "lossless", count_tokens)
    assert user_text(result.request) == "Who leads it?"
    assert user_text(result.request, 0) == f"Background:\n\n{DOC}"
    assert result.tokens_after < result.tokens_before


def test_introduced_repeat_leaves_a_pointer_so_the_sentence_still_reads() -> None:
    long_doc = " ".join([DOC] * 3)
    request = chat(("system", long_doc), ("user", f"Translate the following:\n\n{long_doc}"))
    result = optimize(request, "lossless", count_tokens)
    out = user_text(result.request)
    assert out.startswith(
        'Translate the following:\n\n[same text as earlier, beginning "The Zanzibar project'
    )
    assert result.tokens_after < result.tokens_before


def test_short_repeats_and_assistant_text_are_not_deduplicated_in_lossless_mode() -> None:
    request = chat(
        ("assistant", DOC),
        ("user", f"You said:\n\n{DOC}\n\nYes.\n\nYes.\n\nIs that right?"),
    )
    result = optimize(request, "lossless", count_tokens)
    assert user_text(result.request) == request["messages"][1]["content"]


def test_tool_messages_and_image_parts_are_left_alone_and_text_parts_tidied() -> None:
    request = chat(
        (
            "user",
            [
                {"type": "text", "text": "Look   at  this:  "},
                {"type": "image_url", "image_url": {"url": "data:x  y"}},
            ],
        ),
        ("tool", '{"a":   1}   \n\n\n\n'),
    )
    result = optimize(request, "lossless", count_tokens)
    parts = result.request["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "Look   at  this:"}
    assert parts[1] == request["messages"][0]["content"][1]
    assert result.request["messages"][1] == request["messages"][1]


def test_legacy_completions_prompt_is_optimized() -> None:
    result = optimize(
        {"model": "gpt-3.5-turbo-instruct", "prompt": "Say   hi  \n\n\n\nnow"}, "lossless", count_tokens
    )
    assert result.request["prompt"] == "Say   hi\n\nnow"
    # A completions prompt is continued from its last character: its ends stay as sent.
    ends = optimize({"model": "gpt-3.5-turbo-instruct", "prompt": "\n\nQ: why  \n\n\n\nA: "}, "lossless",
                    count_tokens)
    assert ends.request["prompt"] == "\n\nQ: why\n\nA: "
    assert result.tokens_after < result.tokens_before


def test_off_returns_an_equal_copy_and_unknown_modes_fail() -> None:
    request = chat(("user", "Hello   there   \n\n\n\n"))
    result = optimize(request, "off", count_tokens)
    assert result.request == request and result.request is not request
    assert result.tokens_before == result.tokens_after
    with pytest.raises(ValueError):
        optimize(request, "turbo", count_tokens)  # type: ignore[arg-type]


# --- aggressive examples -------------------------------------------------------------------------


def test_aggressive_drops_fillers_but_keeps_the_request() -> None:
    text = (
        "Hi there! I hope you are doing well. I was wondering if you could explain how "
        "PostgreSQL 16 handles 3 replicas? Please, could you kindly keep it under 200 words. "
        "Thanks in advance!"
    )
    result = optimize(chat(("user", text)), "aggressive", count_tokens)
    out = user_text(result.request)
    assert out == "explain how PostgreSQL 16 handles 3 replicas? could you keep it under 200 words."
    assert result.tokens_after < result.tokens_before
    # Lossless leaves these words alone.
    assert user_text(optimize(chat(("user", text)), "lossless", count_tokens).request) == text


def test_aggressive_collapses_repeated_instructions() -> None:
    request = chat(
        ("system", "Always answer in French. Use at most 3 bullet points."),
        (
            "user",
            "Always answer in French. What is Kubernetes? Use at most 3 bullet points. Use at most 3 bullet points.",
        ),
    )
    result = optimize(request, "aggressive", count_tokens)
    assert user_text(result.request) == "What is Kubernetes?"
    assert user_text(result.request, 0) == "Always answer in French. Use at most 3 bullet points."


def test_aggressive_history_trim_only_when_asked_and_starts_at_a_user_turn() -> None:
    request = chat(
        ("system", "Be brief."),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
    )
    untouched = optimize(request, "aggressive", count_tokens)
    assert len(untouched.request["messages"]) == 6
    trimmed = optimize(request, "aggressive", count_tokens, options=AggressiveOptions(max_history_turns=2))
    assert [m["content"] for m in trimmed.request["messages"]] == ["Be brief.", "q3"]
    trimmed = optimize(request, "aggressive", count_tokens, options=AggressiveOptions(max_history_turns=3))
    assert [m["content"] for m in trimmed.request["messages"]] == ["Be brief.", "q2", "a2", "q3"]
    assert any("trimmed" in c for c in trimmed.changes)


def test_deeply_nested_or_unclosed_json_neither_crashes_nor_goes_quadratic() -> None:
    text = "[\n" * 20000 + "What   now?"
    result = optimize(chat(("user", text)), "lossless", count_tokens)
    assert user_text(result.request).endswith("What   now?")
    closed = "[" * 5000 + "]" * 5000
    result = optimize(chat(("user", closed + "\nOk   then  ")), "lossless", count_tokens)
    assert user_text(result.request) == closed + "\nOk   then"
    result = optimize(chat(("user", "[\n" * 20000 + "What   now?")), "aggressive", count_tokens)
    assert user_text(result.request).endswith("What now?")


# --- lossless never moves whitespace that can mean something (issue #13, item 11) ----------------

# Lines whose whitespace can carry meaning; each holds a quote, a code sign, a tab or a diff marker.
CODE_LINES = [
    "print(len('a     b'))",
    'x  =  "a   b"   ',
    '    s = """hello   ',
    '"""',
    "echo 'one   ",
    "two'  ",
    "@@ -1,3 +1,3 @@",
    "-    return  1",
    "+    return  2",
    "key: |",
    "cc  -o x \\   ",
    "\tcc  -o x",
    "a\tb\t",
    "Use `a   b` here.",
    "He said \u201ca   b\u201d.",
    "the students'   work  ",
    "a\rb  ",
    "if a  <  b:",
    "--- a/f.py",
]
# Plain lines, some with whitespace a tidy may touch (trailing) and some it must not (interior).
PROSE_LINES = ["The value is 42.", "Ada   Lovelace wrote it.", "Name      Age", "Ada       36   ",
               "don't   stop  ", "", "", "   ", " ", "- a list item", "  - nested   item  ", "Why?"]
# Whitespace-only or plain-looking lines that are data inside code (a string's line, a diff's
# blank context line): lossless must keep them when the text holds code.
CODE_CONTEXT = ["world   ", " ", "", "  kept   trailing   "]


@st.composite
def code_bearing_texts(draw: st.DrawFn) -> tuple[str, bool]:
    """A text of prose and code lines (some inside a fence); returns (text, holds code outside fences)."""
    lines: list[str] = []
    code_outside = False
    for _ in range(draw(st.integers(min_value=1, max_value=14))):
        kind = draw(st.sampled_from(["prose", "prose", "code", "context", "fence"]))
        if kind == "prose":
            lines.append(draw(st.sampled_from(PROSE_LINES)))
        elif kind == "context":
            lines.append(draw(st.sampled_from(CODE_CONTEXT)))
        elif kind == "code":
            lines.append(draw(st.sampled_from(CODE_LINES)))
            code_outside = True
        else:
            body = draw(st.lists(st.sampled_from(CODE_LINES + CODE_CONTEXT), min_size=1, max_size=4))
            lines.append("```\n" + "\n".join(body) + "\n```")
    return "\n".join(lines), code_outside


def _content_lines(text: str) -> list[str]:
    """The non-blank lines, each without trailing spaces: what lossless may never change."""
    return [line.rstrip(" \r") for line in text.split("\n") if line.strip()]


@given(code_bearing_texts())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_lossless_keeps_every_character_but_trailing_spaces_and_blank_lines(sample: tuple[str, bool]) -> None:
    text, code_outside = sample
    for request, read in (
        (chat(("user", text)), lambda r: user_text(r)),
        ({"model": "gpt-3.5-turbo-instruct", "prompt": text}, lambda r: r["prompt"]),
    ):
        result = optimize(request, "lossless", count_tokens)
        out = read(result.request)
        if code_outside:
            assert out == text  # a text holding code or quotes is sent byte for byte
            continue
        if not any("repeated" in c for c in result.changes):
            # Only trailing spaces and blank lines may differ: interior runs, indentation, every
            # other character and the order of the lines stay.
            assert _content_lines(out) == _content_lines(text)
        for fence in re.findall(r"```\n.*?\n```", text, flags=re.S):
            assert fence in out  # a fenced block, whatever its whitespace, byte for byte


@given(code_bearing_texts(), st.sampled_from(["lossless", "aggressive"]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_quoted_strings_and_inline_code_survive_both_modes(sample: tuple[str, bool], mode: str) -> None:
    text, _ = sample
    out = user_text(optimize(chat(("user", text)), mode, count_tokens).request)  # type: ignore[arg-type]
    for span in ("'a     b'", '"a   b"', "`a   b`", "\u201ca   b\u201d"):
        if span in text:
            assert span in out, (mode, span)


def test_a_default_tenant_sends_the_quoted_spaces_upstream(kit: Any) -> None:
    """Through a live server (lossless is the default): the upstream gets the question as written.
    The fake upstream tags its answer with the hash of the text it received."""
    import uuid

    from fake_upstream import answer_tag

    content = f"What does len('a     b') return? ({uuid.uuid4().hex[:8]})   \n\n\n\nJust the number."
    resp = kit.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])
    assert f"ANSWER[{answer_tag(content)}]" in resp.choices[0].message.content
