"""The embedder: the conversation-text definition, normalized vectors, off-loop encoding."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from optimizer.semantic import DIM, conversation_text, get_embedder
from optimizer.semantic.embedder import PRIOR_TURN_CHARS, PRIOR_USER_TURNS


def test_single_question_is_its_own_text() -> None:
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "  What is   DNS? "}]
    assert conversation_text(msgs) == "What is DNS?"


def test_system_and_assistant_turns_are_excluded() -> None:
    a = [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Explain TCP."},
        {"role": "assistant", "content": "TCP is a transport protocol..."},
        {"role": "user", "content": "And UDP?"},
    ]
    b = [
        {"role": "system", "content": "Totally different system prompt."},
        {"role": "user", "content": "Explain TCP."},
        {"role": "assistant", "content": "Some other answer."},
        {"role": "user", "content": "And UDP?"},
    ]
    assert conversation_text(a) == conversation_text(b) == "Explain TCP.\nAnd UDP?"


def test_follow_ups_keep_their_context() -> None:
    python = [{"role": "user", "content": "How do I read a file in Python?"}, {"role": "user", "content": "and in Go?"}]
    rust = [{"role": "user", "content": "How do I read a file in Rust?"}, {"role": "user", "content": "and in Go?"}]
    assert conversation_text(python) != conversation_text(rust)
    assert conversation_text(python).endswith("and in Go?")


def test_only_recent_user_turns_count_and_are_cut() -> None:
    turns = [{"role": "user", "content": f"question {i} " + "x" * 1000} for i in range(6)]
    text = conversation_text(turns)
    lines = text.split("\n")
    assert len(lines) == PRIOR_USER_TURNS + 1
    assert lines[0].startswith("question 3") and len(lines[0]) == PRIOR_TURN_CHARS
    assert lines[-1] == turns[-1]["content"]  # the current question is never cut


def test_content_parts_and_empty_conversations() -> None:
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "this chart"}]}
    ]
    assert conversation_text(msgs) == "Describe this chart"
    assert conversation_text([{"role": "system", "content": "hi"}]) == ""
    assert conversation_text([]) == ""


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    e = get_embedder()
    e.warm_up()
    return e


def test_vectors_are_unit_float32_and_meaningful(embedder) -> None:  # type: ignore[no-untyped-def]
    v = embedder.encode(["How do I reverse a string in Python?", "What's the way to reverse a Python string?", "Best pizza in Naples"])
    assert v.shape == (3, DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > 0.8 > v[0] @ v[2]


def test_lru_returns_the_same_vector(embedder) -> None:  # type: ignore[no-untyped-def]
    a = embedder.encode_one("cache me please")
    b = embedder.encode(["something else", "cache me please"])[1]
    assert np.array_equal(a, b)


def test_singleton(embedder) -> None:  # type: ignore[no-untyped-def]
    assert get_embedder() is embedder


def test_aencode_runs_off_the_event_loop(embedder) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    original = embedder._encode_uncached

    def spy(texts: list[str]) -> np.ndarray:
        seen.append(threading.current_thread().name)
        return original(texts)

    embedder._encode_uncached = spy
    try:

        async def main() -> tuple[np.ndarray, int]:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            task = asyncio.create_task(ticker())
            vecs = await embedder.aencode([f"an uncached sentence number {i}" for i in range(64)])
            task.cancel()
            return vecs, ticks

        vecs, ticks = asyncio.run(main())
    finally:
        embedder._encode_uncached = original
    assert vecs.shape == (64, DIM)
    assert seen and all(name.startswith("leo-embed") for name in seen)
    assert ticks > 1  # the loop kept running while the model worked


def test_onnx_and_torch_backends_agree_on_padded_batches(embedder) -> None:  # type: ignore[no-untyped-def]
    """The fp32 ONNX export computes the same embeddings as torch, for texts of different lengths
    batched together (padding exercised); the int8 model (the default) stays within rounding."""
    from optimizer.semantic import Embedder

    texts = [
        "Hi",
        "How do I reverse a string in Python?",
        "The Inference API provides a platform with the capacity to access over 50k models "
        "through a public API, and scalability is already incorporated. " * 3,
    ]
    fp32 = Embedder(backend="onnx", precision="fp32", cache_size=0)
    torch_vecs = Embedder(backend="torch", cache_size=0).encode(texts)
    int8 = Embedder(backend="onnx", precision="int8", cache_size=0)
    fp32_vecs = fp32.encode(texts)
    int8_vecs = int8.encode(texts)
    assert (fp32.backend, int8.backend) == ("onnx", "onnx")
    assert np.min(np.sum(fp32_vecs * torch_vecs, axis=1)) > 0.9999
    # Dynamic int8 quantization moves vectors by about 0.006 of cosine (measured on 300 GPTCache
    # questions: median 0.994, worst 0.989); the cache's quality benchmark runs on int8.
    assert np.min(np.sum(int8_vecs * fp32_vecs, axis=1)) > 0.98
    assert np.max(np.sum(int8_vecs * fp32_vecs, axis=1)) < 0.99999  # it really is another model
