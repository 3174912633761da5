"""The fake OpenAI-compatible upstream, driven over loopback HTTP by the official openai SDK.

These tests need no database. The token rule is re-derived here from its documentation
(docs/fake_upstream.md) rather than imported, so a change to the rule shows up as a failure.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fake_upstream import MODELS, RunningFakeUpstream, run_in_thread

REPO = Path(__file__).resolve().parent.parent
TAG_RE = re.compile(r"^ANSWER\[([0-9a-f]{12})\] ")


def tokens(text: str) -> int:
    """The documented token rule."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def sha12(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def chat_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return 3 + sum(4 + tokens(m["content"]) for m in messages)


@pytest.fixture(scope="module")
def up() -> Iterator[RunningFakeUpstream]:
    with run_in_thread() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(up: RunningFakeUpstream) -> None:
    up.reset()


@pytest.fixture
def client(up: RunningFakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=up.url, api_key="sk-test", max_retries=0, timeout=10) as sdk:
        yield sdk


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


# --- chat --------------------------------------------------------------------------------------


def test_chat_answer_names_the_last_user_message(client: openai.OpenAI) -> None:
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "What is 2 + 2, ünïcode?"},
    ]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    content = reply.choices[0].message.content or ""
    match = TAG_RE.match(content)
    assert match is not None, content
    assert match.group(1) == sha12("What is 2 + 2, ünïcode?")
    filler = content[match.end() :].rstrip(".").split()
    assert 20 <= len(filler) <= 40
    assert reply.model == "gpt-4o-mini"
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.system_fingerprint
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == chat_prompt_tokens(messages)
    assert reply.usage.completion_tokens == tokens(content)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_answers_are_deterministic_and_distinct(client: openai.OpenAI) -> None:
    def answer(text: str, model: str = "gpt-4o") -> str:
        reply = client.chat.completions.create(model=model, messages=ask(text))  # type: ignore[arg-type]
        return reply.choices[0].message.content or ""

    first = answer("How tall is Everest?")
    assert answer("How tall is Everest?") == first
    # The model does not change the answer; the question does.
    assert answer("How tall is Everest?", model="some-unknown-model") == first
    other = answer("How deep is the Mariana Trench?")
    assert other != first
    assert TAG_RE.match(other).group(1) != TAG_RE.match(first).group(1)  # type: ignore[union-attr]


def test_list_content_parts_are_joined_text(client: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": parts}],  # type: ignore[list-item]
    )
    assert (reply.choices[0].message.content or "").startswith(f"ANSWER[{sha12('part one' + chr(10) + 'part two')}]")


def test_stream_text_and_usage_equal_the_json_answer(client: openai.OpenAI) -> None:
    messages = ask("Explain streaming in one line")
    plain = client.chat.completions.create(model="gpt-4.1", messages=messages)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model="gpt-4.1",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    choice_chunks = [c for c in chunks if c.choices]
    assert choice_chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in choice_chunks if c.choices[0].delta.content]
    assert len(content_chunks) >= 3, "the answer is split into several chunks"
    assert all(c.choices[0].finish_reason is None for c in choice_chunks[:-1])
    assert choice_chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in choice_chunks)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage
    assert all(c.model == "gpt-4.1" and c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1


def test_stream_without_include_usage_sends_and_counts_no_usage(client: openai.OpenAI, up: RunningFakeUpstream) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=ask("no usage"), stream=True))  # type: ignore[arg-type]
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    stats = up.stats()
    assert stats["streams"] == 1
    assert stats["prompt_tokens"] == stats["completion_tokens"] == 0


def test_n_choices_share_the_tag_and_differ(client: openai.OpenAI) -> None:
    messages = ask("Give me two options")
    reply = client.chat.completions.create(model="gpt-4o", messages=messages, n=2)  # type: ignore[arg-type]
    assert [c.index for c in reply.choices] == [0, 1]
    first, second = (c.message.content or "" for c in reply.choices)
    assert first != second
    assert TAG_RE.match(first).group(1) == TAG_RE.match(second).group(1) == sha12("Give me two options")  # type: ignore[union-attr]
    assert reply.usage is not None and reply.usage.completion_tokens == tokens(first) + tokens(second)

    streamed: dict[int, str] = {0: "", 1: ""}
    for chunk in client.chat.completions.create(model="gpt-4o", messages=messages, n=2, stream=True):  # type: ignore[arg-type]
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert streamed == {0: first, 1: second}


def test_max_tokens_truncates_with_finish_reason_length(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="gpt-4o", messages=ask("long answer please"))  # type: ignore[arg-type]
    cut = client.chat.completions.create(model="gpt-4o", messages=ask("long answer please"), max_tokens=7)  # type: ignore[arg-type]
    text = cut.choices[0].message.content or ""
    assert cut.choices[0].finish_reason == "length"
    assert tokens(text) == 7
    assert (full.choices[0].message.content or "").startswith(text)
    assert cut.usage is not None and cut.usage.completion_tokens == 7
    roomy = client.chat.completions.create(model="gpt-4o", messages=ask("long answer please"), max_tokens=1000)  # type: ignore[arg-type]
    assert roomy.choices[0].finish_reason == "stop"


TOOLS = [
    {
        "type": "function",
        "function": {"name": "search", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
    },
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
    },
]


def test_tools_answer_with_a_tool_call(client: openai.OpenAI) -> None:
    question = "weather in Paris"
    reply = client.chat.completions.create(model="gpt-4o", messages=ask(question), tools=TOOLS)  # type: ignore[arg-type]
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].function.name == "search"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"query": question}  # type: ignore[union-attr]
    assert calls[0].id.startswith("call_")

    forced = client.chat.completions.create(
        model="gpt-4o",
        messages=ask(question),  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    assert forced.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index,union-attr]

    none = client.chat.completions.create(model="gpt-4o", messages=ask(question), tools=TOOLS, tool_choice="none")  # type: ignore[arg-type]
    assert (none.choices[0].message.content or "").startswith(f"ANSWER[{sha12(question)}]")

    # Streamed: the SDK's accumulator rebuilds the same call.
    with client.chat.completions.stream(model="gpt-4o", messages=ask(question), tools=TOOLS) as stream:  # type: ignore[arg-type]
        for _ in stream:
            pass
        final = stream.get_final_completion()
    streamed_call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert final.choices[0].finish_reason == "tool_calls"
    assert streamed_call.function.name == "search"
    assert streamed_call.function.arguments == calls[0].function.arguments  # type: ignore[union-attr]
    assert streamed_call.id == calls[0].id


# --- completions, embeddings, models ----------------------------------------------------------


def test_legacy_completions_json_and_stream(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello")
    text = reply.choices[0].text
    assert text.startswith(f"ANSWER[{sha12('Say hello')}]")
    assert reply.object == "text_completion"
    assert reply.usage is not None and reply.usage.prompt_tokens == tokens("Say hello")
    assert reply.usage.completion_tokens == tokens(text)

    chunks = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Say hello", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text
    assert chunks[-1].usage == reply.usage

    several = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=["one", "two"])
    assert [c.text[7:19] for c in several.choices] == [sha12("one"), sha12("two")]


def test_embeddings_float_base64_dimensions(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1]
    first = floats.data[0].embedding
    assert len(first) == 256
    assert math.isclose(math.fsum(x * x for x in first), 1.0, rel_tol=1e-9)
    assert floats.data[1].embedding != first
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 2

    # The SDK asks for base64 unless told otherwise, and decodes float32 itself.
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="alpha")
    assert json.loads(raw.http_request.content)["encoding_format"] == "base64"
    encoded = raw.http_response.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    assert list(struct.unpack("<256f", base64.b64decode(encoded))) == pytest.approx(first, abs=1e-6)
    assert raw.parse().data[0].embedding == pytest.approx(first, abs=1e-6)

    sized = client.embeddings.create(model="text-embedding-3-large", input="alpha", dimensions=64)
    assert len(sized.data[0].embedding) == 64
    again = client.embeddings.create(model="text-embedding-3-large", input="alpha", dimensions=64)
    assert again.data[0].embedding == sized.data[0].embedding

    tokens_in = client.embeddings.create(model="text-embedding-ada-002", input=[[1, 2, 3], [4, 5]])
    assert len(tokens_in.data) == 2 and tokens_in.usage.prompt_tokens == 5


def test_models_list(client: openai.OpenAI) -> None:
    listed = {m.id: m for m in client.models.list()}
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-3.5-turbo", "o3-mini",
                 "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"):  # fmt: skip
        assert listed[name].owned_by == "leo-fake-upstream"
    assert set(listed) == set(MODELS)
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"


def test_malformed_json_and_bad_requests_use_the_error_envelope(up: RunningFakeUpstream, client: openai.OpenAI) -> None:
    response = httpx.post(
        up.url + "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"

    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert excinfo.value.param == "messages"  # type: ignore[attr-defined]
    with pytest.raises(openai.NotFoundError):
        client.get("/no/such/endpoint", cast_to=object)
    stats = up.stats()
    assert stats["errors"] == 3 and stats["by_status"] == {"400": 2, "404": 1}


# --- stats -------------------------------------------------------------------------------------


def test_stats_count_requests_and_reconcile_tokens(up: RunningFakeUpstream) -> None:
    prompt = completion = 0
    with (
        openai.OpenAI(base_url=up.url, api_key="sk-tenant-AAAA", max_retries=0) as a,
        openai.OpenAI(base_url=up.url, api_key="sk-tenant-BBBB", max_retries=0) as b,
    ):
        for sdk, question in ((a, "one"), (a, "two"), (b, "three")):
            reply = sdk.chat.completions.create(model="gpt-4o", messages=ask(question))  # type: ignore[arg-type]
            assert reply.usage is not None
            prompt += reply.usage.prompt_tokens
            completion += reply.usage.completion_tokens
        for chunk in b.chat.completions.create(
            model="gpt-4o-mini",
            messages=ask("four"),
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        ):
            if chunk.usage:
                prompt += chunk.usage.prompt_tokens
                completion += chunk.usage.completion_tokens
        embedded = a.embeddings.create(model="text-embedding-3-small", input="five six")
        prompt += embedded.usage.prompt_tokens
        list(a.models.list())

    stats = httpx.get(up.base + "/_stats").json()
    assert stats == up.stats()
    assert stats["requests"] == 6 and stats["ok"] == 6 and stats["errors"] == 0
    assert (stats["chat"], stats["completions"], stats["embeddings"], stats["models"]) == (4, 0, 1, 1)
    assert stats["streams"] == 1
    assert stats["prompt_tokens"] == prompt
    assert stats["completion_tokens"] == completion
    assert stats["auth_suffixes"] == {"AAAA": 4, "BBBB": 2}
    assert stats["by_model"]["gpt-4o"]["requests"] == 3
    assert stats["by_model"]["gpt-4o-mini"]["requests"] == 1
    assert sum(m["prompt_tokens"] for m in stats["by_model"].values()) == prompt


def test_http_config_and_reset(up: RunningFakeUpstream, client: openai.OpenAI) -> None:
    knobs = httpx.post(up.base + "/_config", json={"fail_next": 1, "error_status": 503}).json()
    assert knobs["fail_next"] == 1 and knobs["error_status"] == 503
    with pytest.raises(openai.InternalServerError) as excinfo:
        client.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]
    assert excinfo.value.status_code == 503
    assert httpx.get(up.base + "/_config").json()["fail_next"] == 0
    bad = httpx.post(up.base + "/_config", json={"no_such_knob": 1})
    assert bad.status_code == 400 and "no_such_knob" in bad.json()["error"]["message"]
    assert httpx.post(up.base + "/_config", json={"error_rate": 2}).status_code == 400

    httpx.post(up.base + "/_config", json={"latency_ms": 50, "error_rate": 1})
    assert httpx.post(up.base + "/_reset").status_code == 200
    assert httpx.get(up.base + "/_stats").json()["requests"] == 0
    assert httpx.get(up.base + "/_config").json()["error_rate"] == 0
    client.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]


# --- knobs -------------------------------------------------------------------------------------


def test_429_sends_retry_after_and_raises_rate_limit_error(up: RunningFakeUpstream, client: openai.OpenAI) -> None:
    up.configure(fail_next=2, error_status=429, retry_after=3)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as excinfo:
            client.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]
        assert excinfo.value.response.headers["retry-after"] == "3"
        assert excinfo.value.code == "rate_limit_exceeded"  # type: ignore[attr-defined]
    client.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]
    stats = up.stats()
    assert stats["requests"] == 3 and stats["errors"] == 2 and stats["by_status"] == {"429": 2, "200": 1}


def test_sdk_retries_through_fail_next(up: RunningFakeUpstream) -> None:
    up.configure(fail_next=1, error_status=429, retry_after=0.01)
    with openai.OpenAI(base_url=up.url, api_key="sk-test", max_retries=2) as sdk:
        reply = sdk.chat.completions.create(model="gpt-4o", messages=ask("retry me"))  # type: ignore[arg-type]
    assert (reply.choices[0].message.content or "").startswith(f"ANSWER[{sha12('retry me')}]")
    assert up.stats()["chat"] == 2


def test_500_raises_internal_server_error(up: RunningFakeUpstream, client: openai.OpenAI) -> None:
    up.configure(error_rate=1.0, error_status=500)
    with pytest.raises(openai.InternalServerError) as excinfo:
        client.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]
    assert excinfo.value.status_code == 500
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_error_rate_is_deterministic_for_a_seed(up: RunningFakeUpstream) -> None:
    def outcomes() -> list[int]:
        return [
            httpx.post(up.url + "/chat/completions", json={"model": "m", "messages": ask(str(i))}).status_code
            for i in range(40)
        ]

    up.configure(error_rate=0.5, error_status=502, seed=7)
    first = outcomes()
    up.configure(seed=7)
    assert outcomes() == first
    assert 5 < first.count(502) < 35 and first.count(200) == 40 - first.count(502)


def test_drop_after_chunks_makes_the_sdk_stream_raise(up: RunningFakeUpstream, client: openai.OpenAI) -> None:
    up.configure(drop_after_chunks=3)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="gpt-4o", messages=ask("cut me"), stream=True):  # type: ignore[arg-type]
            received.append(chunk)
    assert len(received) == 3
    stats = up.stats()
    assert stats["dropped_streams"] == 1 and stats["errors"] == 1 and stats["streams"] == 1
    # The server keeps serving after a drop.
    up.configure(drop_after_chunks=None)
    assert list(client.chat.completions.create(model="gpt-4o", messages=ask("whole"), stream=True))  # type: ignore[arg-type]


def test_drop_after_more_chunks_than_the_stream_has_still_withholds_done(up: RunningFakeUpstream) -> None:
    up.configure(drop_after_chunks=10_000)
    body = {"model": "m", "messages": ask("x"), "stream": True}
    received = b""
    with (
        httpx.Client() as http,
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", up.url + "/chat/completions", json=body) as response,
    ):
        for data in response.iter_bytes():
            received += data
    assert b'"finish_reason":"stop"' in received, "every chunk was sent"
    assert b"[DONE]" not in received


def test_reset_connection_closes_without_a_response(up: RunningFakeUpstream, client: openai.OpenAI) -> None:
    up.configure(reset_connection=True)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]
    up.configure(reset_connection=False, reset_next=1)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]
    client.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]
    stats = up.stats()
    assert stats["resets"] == 2 and stats["errors"] == 2 and stats["ok"] == 1 and stats["requests"] == 3


@pytest.mark.asyncio
async def test_hang_times_out_without_blocking_other_requests(up: RunningFakeUpstream) -> None:
    up.configure(hang=True)
    async with openai.AsyncOpenAI(base_url=up.url, api_key="sk-test", max_retries=0, timeout=1.0) as sdk:
        hung = asyncio.create_task(sdk.chat.completions.create(model="gpt-4o", messages=ask("hang")))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        # Control endpoints and other clients still get answers while a request hangs.
        async with httpx.AsyncClient() as http:
            stats = (await http.get(up.base + "/_stats")).json()
        assert stats["hangs"] == 1
        up.configure(hang=False)
        reply = await sdk.chat.completions.create(model="gpt-4o", messages=ask("ok"))  # type: ignore[arg-type]
        assert (reply.choices[0].message.content or "").startswith("ANSWER[")
        with pytest.raises(openai.APITimeoutError):
            await hung


def test_latency_and_chunk_delay(up: RunningFakeUpstream, client: openai.OpenAI) -> None:
    up.configure(latency_ms=200)
    started = time.perf_counter()
    client.chat.completions.create(model="gpt-4o", messages=ask("slow"))  # type: ignore[arg-type]
    assert time.perf_counter() - started >= 0.2

    up.configure(latency_ms=0, chunk_delay_ms=20)
    started = time.perf_counter()
    stream = client.chat.completions.create(model="gpt-4o", messages=ask("slow stream"), stream=True)  # type: ignore[arg-type]
    arrivals = [time.perf_counter() for _ in stream]
    # Chunks are paced: consecutive chunks arrive at least about chunk_delay apart.
    assert arrivals[-1] - started >= 0.02 * (len(arrivals) - 1)
    assert len(arrivals) >= 4


def test_api_key_knob_requires_the_bearer_token(up: RunningFakeUpstream) -> None:
    up.configure(api_key="sk-right-key-9876")
    with (
        openai.OpenAI(base_url=up.url, api_key="sk-wrong-0000", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError) as excinfo,
    ):
        wrong.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]
    assert "sk-right" not in str(excinfo.value) and "sk-wrong" not in str(excinfo.value)
    with openai.OpenAI(base_url=up.url, api_key="sk-right-key-9876", max_retries=0) as right:
        right.chat.completions.create(model="gpt-4o", messages=ask("x"))  # type: ignore[arg-type]
    assert up.stats()["auth_suffixes"] == {"0000": 1, "9876": 1}
    assert "sk-right" not in json.dumps(httpx.get(up.base + "/_config").json())


# --- as a separate process ---------------------------------------------------------------------


def _serve_process(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DJANGO_SETTINGS_MODULE": "leo_optima.settings.test"}
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on " not in line:
        process.kill()
        raise AssertionError(f"no announce line: {line!r} {process.stderr.read() if process.stderr else ''}")
    return process, line.rsplit("listening on ", 1)[1].strip()


def _exercise_process(url: str) -> None:
    base = url.removesuffix("/v1")
    with openai.OpenAI(base_url=url, api_key="sk-proc-4242", max_retries=0) as sdk:
        started = time.perf_counter()
        reply = sdk.chat.completions.create(model="gpt-4o", messages=ask("from a process"))  # type: ignore[arg-type]
        assert time.perf_counter() - started >= 0.05  # --latency-ms 50
        assert (reply.choices[0].message.content or "").startswith(f"ANSWER[{sha12('from a process')}]")
    stats = httpx.get(base + "/_stats").json()
    assert stats["requests"] == 1 and stats["chat"] == 1 and stats["auth_suffixes"] == {"4242": 1}
    assert httpx.get(base + "/_config").json()["latency_ms"] == 50


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_runs_as_a_module_process() -> None:
    process, url = _serve_process(
        [sys.executable, "-m", "fake_upstream", "--port", "0", "--latency-ms", "50"]
    )
    try:
        _exercise_process(url)
    finally:
        _stop(process)
    assert process.returncode == 0  # SIGINT is a clean, graceful stop


@pytest.mark.skipif(not (REPO / "manage.py").exists(), reason="manage.py is not there yet")
def test_management_command_serves() -> None:
    process, url = _serve_process([sys.executable, "manage.py", "fake_upstream", "--port", "0", "--latency-ms", "50"])
    try:
        assert url.startswith("http://127.0.0.1:")
        _exercise_process(url)
    finally:
        _stop(process)


def test_stop_cuts_hanging_requests_at_once() -> None:
    errors: list[BaseException] = []
    with run_in_thread(hang=True) as running:

        def call() -> None:
            try:
                httpx.post(running.url + "/chat/completions", json={"model": "m", "messages": ask("x")}, timeout=30)
            except httpx.HTTPError as exc:
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 5
        while running.stats()["hangs"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.perf_counter()
        running.stop()
        # Well under uvicorn's 2 s graceful-shutdown timeout: the hanger was released, not waited out.
        assert time.perf_counter() - started < 1.5
    caller.join(5)
    assert len(errors) == 1 and isinstance(errors[0], httpx.TransportError)


def test_the_package_stands_alone_on_a_public_server_api() -> None:
    """fake_upstream is a dev/test package: serving it loads neither Django nor a product app, and
    no uvicorn internals (it used to subclass uvicorn's private HTTP protocol)."""
    code = (
        "import sys, httpx\n"
        "from fake_upstream import run_in_thread\n"
        "with run_in_thread() as up:\n"
        "    assert httpx.get(up.base + '/_stats').json()['requests'] == 0\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in "
        "('django', 'optimizer', 'tenants', 'billing', 'leo_optima', 'uvicorn')]\n"
        "print(sorted(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
