"""Query decomposition (optimizer.pipeline.decompose): what splits, what must not, and how the
parts' answers are put back together. Pure Python, no database; one test drives the parts
through the fake upstream over loopback HTTP with the official openai SDK.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import re
import warnings
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_upstream import run_in_thread
from optimizer.pipeline.decompose import (
    MAX_PART_CHARS,
    Decomposition,
    chunk_text,
    compose,
    compose_usage,
    question_count,
    split,
)
from optimizer.pipeline.prompt_opt import count_prompt_tokens

with warnings.catch_warnings():
    # bpe_openai loads its bundled tables at import with a deprecated importlib.resources call.
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

    _ENC = bpe_openai.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """cl100k_base, the tokenizer of gpt-4-class models."""
    return len(_ENC.encode(text))


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": text},
        ],
        **extra,
    }


def texts(text: str) -> list[str] | None:
    d = split(ask(text))
    return None if d is None else [p.text for p in d.parts]


# --- every recognised form -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "form", "expected"),
    [
        (
            "1. What is a list?\n2. What is a dict?",
            "numbered",
            ["What is a list?", "What is a dict?"],
        ),
        (
            "1) What is DNS?\n2) What is TCP?\n3) What is UDP?",
            "numbered",
            ["What is DNS?", "What is TCP?", "What is UDP?"],
        ),
        (
            "(1) Who wrote Hamlet?\n(2) Who painted the Mona Lisa?",
            "numbered",
            ["Who wrote Hamlet?", "Who painted the Mona Lisa?"],
        ),
        ("- What is Kafka?\n- What is RabbitMQ?", "bulleted", ["What is Kafka?", "What is RabbitMQ?"]),
        (
            "* Define entropy in physics\n* Define enthalpy in chemistry",
            "bulleted",
            ["Define entropy in physics", "Define enthalpy in chemistry"],
        ),
        ("• Where is Lima?\n\n• Where is Quito?", "bulleted", ["Where is Lima?", "Where is Quito?"]),
        (
            "About Python: 1. what is a list? 2. what is a dict?",
            "inline_numbered",
            ["About Python: What is a list?", "About Python: What is a dict?"],
        ),
        (
            "What is a mutex? How does a semaphore work?",
            "questions",
            ["What is a mutex?", "How does a semaphore work?"],
        ),
        (
            "What is the capital of Peru? Also, what is the capital of Chile?",
            "questions",
            ["What is the capital of Peru?", "What is the capital of Chile?"],
        ),
        (
            "What is a B-tree, and also how does a hash index work?",
            "questions",
            ["What is a B-tree?", "How does a hash index work?"],
        ),
        (
            "Who was Ada Lovelace?\nWhat is the Eiffel Tower made of?\nWhy is the sky blue?",
            "questions",
            ["Who was Ada Lovelace?", "What is the Eiffel Tower made of?", "Why is the sky blue?"],
        ),
    ],
)
def test_splits_every_recognised_form(text: str, form: str, expected: list[str]) -> None:
    d = split(ask(text))
    assert d is not None, text
    assert d.form == form
    assert [p.text for p in d.parts] == expected
    assert [p.index for p in d.parts] == list(range(len(expected)))


POOL = [
    "What is the capital of Peru?",
    "How does a hash index work?",
    "Who painted the Mona Lisa?",
    "Why is the sky blue?",
    "When did the Berlin Wall fall?",
    "Which planet has the most moons?",
    "How do I create a Python virtual environment?",
    "What does HTTP status 418 mean?",
]
LAYOUTS = {
    "numbered": lambda qs: "\n".join(f"{i}. {q}" for i, q in enumerate(qs, 1)),
    "paren": lambda qs: "\n".join(f"{i}) {q}" for i, q in enumerate(qs, 1)),
    "bullets": lambda qs: "\n".join(f"- {q}" for q in qs),
    "inline": lambda qs: "Quick questions: " + " ".join(f"{i}. {q}" for i, q in enumerate(qs, 1)),
    "sentences": lambda qs: " ".join(qs),
    "lines": lambda qs: "\n".join(qs),
    "also": lambda qs: " Also, ".join([qs[0], *(q[0].lower() + q[1:] for q in qs[1:])]),
}


@given(
    st.lists(st.sampled_from(POOL), min_size=2, max_size=5, unique=True),
    st.sampled_from(sorted(LAYOUTS)),
)
@settings(max_examples=200, deadline=None)
def test_independent_questions_split_back_into_themselves_in_every_layout(
    questions: list[str], layout: str
) -> None:
    d = split(ask(LAYOUTS[layout](questions)))
    assert d is not None
    assert [p.question for p in d.parts] == questions
    assert [p.text for p in d.parts] == questions  # "Quick questions:" is a lead-in, dropped
    assert question_count(LAYOUTS[layout](questions)) == len(questions)


CUES = [
    "How is it spelled?",
    "Why is that so?",
    "Is this still true?",
    "Where are they now?",
    "Who said the above?",
    "What was the previous one called?",
    "Then what comes next?",
    "Based on that, who won?",
    "After that, what happened?",
    "What is the answer using the result?",
    "Is the first one older?",
]


@given(
    st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True),
    st.sampled_from(CUES),
    st.sampled_from(sorted(LAYOUTS)),
    st.data(),
)
@settings(max_examples=200, deadline=None)
def test_any_back_reference_in_a_later_part_refuses_the_split(
    questions: list[str], cue: str, layout: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(min_value=1, max_value=len(questions)))
    text = LAYOUTS[layout]([*questions[:at], cue, *questions[at:]])
    assert split(ask(text)) is None


def test_shared_context_and_trailing_instruction_are_kept_on_every_part() -> None:
    d = split(
        ask(
            "I run Django 5.2 on PostgreSQL 16.\n- How do I add an index?\n- How do I vacuum?\n\nAnswer in French."
        )
    )
    assert d is not None
    assert d.preamble == "I run Django 5.2 on PostgreSQL 16."
    assert d.postamble == "Answer in French."
    assert [p.text for p in d.parts] == [
        "I run Django 5.2 on PostgreSQL 16. How do I add an index? Answer in French.",
        "I run Django 5.2 on PostgreSQL 16. How do I vacuum? Answer in French.",
    ]
    # The headings are the questions alone.
    assert [p.question for p in d.parts] == ["How do I add an index?", "How do I vacuum?"]


def test_generic_lead_ins_and_pleasantries_are_dropped_but_the_subject_is_kept() -> None:
    got = texts(
        "Hi! I have a few questions about Rust:\n1. What is ownership?\n2. How do lifetimes work?\nThanks!"
    )
    assert got == ["About Rust: What is ownership?", "About Rust: How do lifetimes work?"]
    got = texts("Please answer the following questions.\n1. What is DNS?\n2. What is BGP?")
    assert got == ["What is DNS?", "What is BGP?"]


def test_context_sentence_before_question_sentences_is_shared() -> None:
    assert texts("I'm learning Go. What is a goroutine? What is a channel?") == [
        "I'm learning Go. What is a goroutine?",
        "I'm learning Go. What is a channel?",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An opening phrase of the first question is context for all of them.
        (
            "In Rust, what is ownership? How do lifetimes work?",
            ["In Rust: What is ownership?", "In Rust: How do lifetimes work?"],
        ),
        # A bare topic line introduces the questions.
        ("Python\nWhat is a list?\nWhat is a dict?", ["Python: What is a list?", "Python: What is a dict?"]),
        # A lead-in before the first question is dropped; "And" before a question word is a connector.
        ("Hey, quick question: what is DNS? And what is TCP?", ["What is DNS?", "What is TCP?"]),
    ],
)
def test_context_in_front_of_the_first_question_is_shared(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


def test_relative_that_is_not_a_back_reference() -> None:
    assert texts("What is a function that returns a function? What is a closure in JS?") == [
        "What is a function that returns a function?",
        "What is a closure in JS?",
    ]


def test_part_request_keeps_model_system_params_and_history_without_mutating() -> None:
    request = {
        "model": "gpt-4o",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 300,
        "user": "u-1",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "Be precise."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi, how can I help?"},
            {"role": "user", "content": [{"type": "text", "text": "What is HTTP/2?\nWhat is QUIC?"}]},
        ],
    }
    before = copy.deepcopy(request)
    d = split(request)
    assert d is not None
    assert request == before  # the input is never mutated
    for part in d.parts:
        r = part.request
        assert r["model"] == "gpt-4o"
        assert (r["temperature"], r["top_p"], r["max_tokens"], r["user"]) == (0.2, 0.9, 300, "u-1")
        assert "stream" not in r and "stream_options" not in r
        assert r["messages"][:3] == before["messages"][:3]
        assert r["messages"][-1] == {"role": "user", "content": part.text}
    assert [p.text for p in d.parts] == ["What is HTTP/2?", "What is QUIC?"]
    # Changing a part's request does not reach the original or the other part.
    d.parts[0].request["messages"][0]["content"] = "changed"
    assert request["messages"][0]["content"] == "Be precise."
    assert d.parts[1].request["messages"][0]["content"] == "Be precise."


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "What is a list? How do I sort it?",  # it
        "What is a closure in JS? Is that related to scope?",  # demonstrative that
        "How do I do X in Go? Why is that faster?",  # that
        "What is Rust? Is this language fast?",  # this
        "What are tuples and lists? When should I use them?",  # them
        "What is a monad? Can you explain the above with an example?",  # the above
        "What is REST? How does the previous answer apply to gRPC?",  # the previous
        "What is a JWT? Then how do I verify a signature?",  # then
        "What is the GDP of France? Based on that, what is its growth rate?",  # based on that
        "How do I create a venv? After that, how do I install Django?",  # after that
        "What is 17 times 23? What is the square root using the result?",  # using the result
        "1. What is Flask?\n2. What is FastAPI?\n3. Is the first one older?",  # the first one
        "Who is Ada Lovelace? What did she invent?",  # she
        "Is Postgres fast? What about MySQL?",  # elliptical
        "What is Kotlin? Why?",  # too short to stand alone
        "What is Go? Which one is better for CLIs?",  # which one
    ],
)
def test_refuses_parts_that_depend_on_each_other(text: str) -> None:
    assert split(ask(text)) is None


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
        {"functions": [{"name": "f", "parameters": {"type": "object"}}]},
        {"tool_choice": "auto"},
        {"response_format": {"type": "json_object"}},
        {"n": 2},
        {"logprobs": True},
    ],
)
def test_refuses_requests_with_tools_formats_or_several_choices(extra: dict[str, Any]) -> None:
    assert split(ask("What is DNS? What is TCP?")) is not None  # the same text splits without them
    assert split(ask("What is DNS? What is TCP?", **extra)) is None


@pytest.mark.parametrize(
    "text",
    [
        "What are the pros and cons of Rust?",
        "How do I read a file and parse it as JSON in Python?",
        "What is the difference between TCP and UDP, and when is each used?",
        "Explain how DNS and HTTP work together.",
        "What is a list?",
    ],
)
def test_single_question_is_not_split(text: str) -> None:
    assert split(ask(text)) is None
    assert question_count(text) == 1


@pytest.mark.parametrize(
    "text",
    [
        "Compare these: 1. What is Go? 2. What is Rust?",  # treated together
        "- What is Go?\n- What is Rust?\n\nAnswer both in a single table.",
        "Write a poem with:\n- rhymes\n- four lines",  # constraints, not questions
        "What does this do?\n```python\nprint(1)\n```\nWhat is Python?",  # code block
        "- What is Go?\n  - What is a goroutine?\n- What is Rust?",  # nested list
        "1. What is Go?\n3. What is Rust?",  # numbering out of order
        "What is a list? I mean in Python. What is a dict?",  # statement between questions
        "What is X? " + "What is " + "very " * (MAX_PART_CHARS // 5) + "long?",  # part too long
    ],
)
def test_refuses_unclear_or_holistic_structures(text: str) -> None:
    assert split(ask(text)) is None


def test_refuses_when_the_last_message_is_not_a_text_user_message() -> None:
    image = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this? What is that?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ],
    }
    assert split(image) is None
    assistant_last = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "What is DNS? What is TCP?"},
        ],
    }
    assert split(assistant_last) is None
    assert split({"model": "gpt-4o", "messages": []}) is None


def test_question_count_sees_dependent_compounds_that_split_refuses() -> None:
    text = "What is a list? How do I sort it?"
    assert split(ask(text)) is None
    assert question_count(text) == 2
    assert question_count("1. What is Go?\n2. What is Rust?\n3. What is Zig?") == 3


# --- composition ---------------------------------------------------------------------------------


def _decomposition() -> Decomposition:
    d = split(ask("About Python: 1. what is a list? 2. what is a dict?"))
    assert d is not None
    return d


def test_compose_puts_each_answer_under_its_numbered_question() -> None:
    d = _decomposition()
    out = compose(d, ["  A list is an ordered, mutable sequence.\n", "A dict maps keys to values."])
    assert out == (
        "**1. What is a list?**\n\nA list is an ordered, mutable sequence.\n\n"
        "**2. What is a dict?**\n\nA dict maps keys to values."
    )
    assert compose(d, ["a", "b"]) == compose(_decomposition(), ["a", "b"])  # deterministic


def test_compose_needs_one_answer_per_part() -> None:
    with pytest.raises(ValueError):
        compose(_decomposition(), ["only one"])


def test_compose_usage_counts_the_composed_text_and_the_original_prompt() -> None:
    d = _decomposition()
    out = compose(d, ["A list is an ordered sequence.", "A dict maps keys to values."])
    usage = compose_usage(d, out, count_tokens)
    assert usage["completion_tokens"] == count_tokens(out)
    assert usage["prompt_tokens"] == count_prompt_tokens(d.original["messages"], count_tokens)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # Headings are part of what the client receives, so they are billed as completion.
    assert usage["completion_tokens"] > count_tokens("A list is an ordered sequence.") + count_tokens(
        "A dict maps keys to values."
    )
    assert compose_usage(d, out, count_tokens, prompt_tokens=77)["prompt_tokens"] == 77


@given(st.text(max_size=400), st.integers(min_value=1, max_value=50))
@settings(max_examples=200, deadline=None)
def test_chunk_text_round_trips_and_respects_the_size(text: str, size: int) -> None:
    chunks = chunk_text(text, size)
    assert "".join(chunks) == text
    assert all(0 < len(c) <= size for c in chunks)


def test_chunk_text_cuts_after_whitespace() -> None:
    assert chunk_text("alpha beta gamma delta", 11) == ["alpha beta ", "gamma delta"]
    with pytest.raises(ValueError):
        chunk_text("x", 0)


# --- the parts through a real upstream -----------------------------------------------------------


def _tag(text: str) -> str:
    return "ANSWER[" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12] + "]"


def test_parts_answered_in_parallel_upstream_compose_into_standalone_sections() -> None:
    """Each part request is a valid chat request on its own; a cached part is not asked again."""
    d = split(
        ask("I use Postgres.\n1. How do I list tables?\n2. How do I show indexes?\n3. How do I see locks?")
    )
    assert d is not None and len(d.parts) == 3
    store: dict[str, str] = {}  # part text -> answer, as the cache keeps one entry per part

    async def ask_parts(up_url: str, parts: list[Any]) -> list[str]:
        async with openai.AsyncOpenAI(base_url=up_url, api_key="sk-test", max_retries=0) as sdk:
            replies = await asyncio.gather(*(sdk.chat.completions.create(**p.request) for p in parts))
        return [r.choices[0].message.content or "" for r in replies]

    with run_in_thread() as up:
        # First request: nothing cached, one upstream call per part.
        answers = asyncio.run(ask_parts(up.url, list(d.parts)))
        store.update({p.text: a for p, a in zip(d.parts, answers, strict=False)})
        assert up.stats()["chat"] == 3
        # A later request shares two parts: only the missing one goes upstream.
        d2 = split(
            ask("I use Postgres.\n- How do I see locks?\n- How do I vacuum a table?\n- How do I list tables?")
        )
        assert d2 is not None
        missing = [p for p in d2.parts if p.text not in store]
        assert [p.question for p in missing] == ["How do I vacuum a table?"]
        store.update(
            {p.text: a for p, a in zip(missing, asyncio.run(ask_parts(up.url, missing)), strict=False)}
        )
        assert up.stats()["chat"] == 4
    out = compose(d2, [store[p.text] for p in d2.parts])
    sections = re.split(r"\*\*\d\. ", out)[1:]
    assert len(sections) == 3
    for part, section in zip(d2.parts, sections, strict=False):
        heading, body = section.split("**\n\n", 1)
        assert heading == part.question
        # The answer under each heading is the one the upstream gave for that part alone.
        assert body.startswith(_tag(part.text))
