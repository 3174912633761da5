"""The embedder: the conversation-text definition, normalized vectors, micro-batched off-loop encoding,
and a web worker that never loads torch."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from optimizer.semantic import DIM, Embedder, conversation_text, get_embedder
from optimizer.semantic.model_files import default_precision
from optimizer.semantic.embedder import PRECISIONS, PRIOR_TURN_CHARS, PRIOR_USER_TURNS, model_dir
from optimizer.semantic.model_files import X64_QUANT_PRECISION, build, model_inputs, onnx_path, open_session

ROOT = Path(__file__).resolve().parents[1]


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


TEXTS = [
    "Hi",
    "How do I reverse a string in Python?",
    "What's the capital of France?",
    "The Inference API provides a platform with the capacity to access over 50k models "
    "through a public API, and scalability is already incorporated. " * 3,
] + [f"Say hello in one word. [run-{i}]" for i in range(12)]


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


def _concurrently(emb: Embedder, texts: list[str]) -> tuple[np.ndarray, int]:
    """Embed ``texts`` as concurrent lookups; returns the vectors and how often the loop ran meanwhile."""

    async def main() -> tuple[np.ndarray, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        vecs = await emb.aencode(texts)
        task.cancel()
        return vecs, ticks

    return asyncio.run(main())


def test_lookups_run_off_the_event_loop_in_batches() -> None:
    emb = Embedder(cache_size=0)
    emb.warm_up()
    seen: list[tuple[str, int]] = []
    original = emb._infer

    def spy(texts: list[str]) -> np.ndarray:
        seen.append((threading.current_thread().name, len(texts)))
        return original(texts)

    emb._infer = spy  # type: ignore[method-assign]
    vecs, ticks = _concurrently(emb, [f"an uncached sentence number {i}" for i in range(64)])
    assert vecs.shape == (64, DIM)
    assert seen and all(name == "leo-embed" for name, _ in seen)
    assert ticks > 1  # the loop kept running while the model worked
    # Requests that queued while a batch ran were taken together: far fewer calls than texts.
    assert len(seen) < 64 and max(n for _, n in seen) > 1
    assert emb.batch_stats["texts"] == 64 and emb.batch_stats["largest"] > 1


# Past the model's 256-token limit: padded to it, every other text of a call is padded to 256.
LONG = "The lighthouse keeper wrote down every ship that passed, with its flag and its hour. " * 30


class _CountingSession:
    """Wraps the onnxruntime session to record the batch size of every model call."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.batches: list[int] = []

    def run(self, outputs: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.batches.append(len(feeds["input_ids"]))
        return self.session.run(outputs, feeds)  # type: ignore[attr-defined]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_micro_batch_reaches_the_model_together_unless_its_scales_are_per_call(precision: str) -> None:
    """With fixed activation scales (int8-static, fp32) the batcher's texts reach the model together;
    int8-dynamic computes its scales per call, so each text gets a call of its own."""
    emb = Embedder(cache_size=0, precision=precision)
    emb.warm_up()
    counting = _CountingSession(emb._session)
    emb._session = counting
    _concurrently(emb, [f"another uncached sentence, number {i}" for i in range(48)])
    assert emb.model_calls == 1 + 48  # the warm-up, then each text once
    if precision == "int8-dynamic":
        assert counting.batches == [1] * 48
    else:
        assert max(counting.batches) > 1 and len(counting.batches) < 48


def test_a_batch_is_cut_by_length_not_padded_to_its_longest() -> None:
    """A call pads every text to its longest: a short question is not run padded to a long one."""
    emb = Embedder(cache_size=0, precision="fp32")
    emb.warm_up()
    counting = _CountingSession(emb._session)
    emb._session = counting
    short = [f"Short question {i}?" for i in range(6)]
    vectors = emb._infer([LONG, *short, LONG + " again"])
    assert sorted(counting.batches) == [2, 6]
    assert np.abs(vectors[1:7] - emb._infer(short)).max() <= 1e-6


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_vector_does_not_depend_on_its_batch(precision: str) -> None:
    """The cache compares a lookup's vector (computed in whatever micro-batch it landed in) with
    stored vectors (computed in others): a text must get the same vector alone or batched, whatever
    its neighbours and however far it is padded."""
    emb = Embedder(cache_size=0, precision=precision)
    alone = np.stack([emb.encode([t])[0] for t in TEXTS])
    batched, _ = _concurrently(emb, TEXTS)
    bulk = emb.encode(TEXTS)
    if emb.runs_one_per_call:  # served one text per call: padding never happens
        padded = emb._infer([*TEXTS, LONG])[:-1]
    else:  # one call, every text padded to 256 tokens
        session, tokenizer = emb._load()
        padded = session.run(None, model_inputs(tokenizer, [*TEXTS, LONG]))[0][:-1]
    assert emb.batch_stats["largest"] > 1
    for vectors in (batched, bulk, padded):
        assert np.abs(vectors - alone).max() <= 1e-6


def test_duplicate_texts_in_a_batch_are_embedded_once() -> None:
    emb = Embedder(cache_size=0, batch_wait_ms=50)
    emb.warm_up()
    calls: list[list[str]] = []
    original = emb._infer

    def spy(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return original(texts)

    emb._infer = spy  # type: ignore[method-assign]
    vecs, _ = _concurrently(emb, ["same question"] * 8 + ["another one"])
    assert sorted(sum(calls, [])) == ["another one", "same question"]
    assert np.array_equal(vecs[0], vecs[7])


def test_a_failed_batch_fails_its_waiters_and_the_next_one_works() -> None:
    emb = Embedder(cache_size=0)
    original = emb._infer
    emb._infer = lambda texts: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"):
        _concurrently(emb, ["one", "two"])
    emb._infer = original  # type: ignore[method-assign]
    vecs, _ = _concurrently(emb, ["one", "two"])
    assert vecs.shape == (2, DIM)


def test_onnx_matches_sentence_transformers() -> None:
    """The fp32 ONNX model computes all-MiniLM-L6-v2's own vectors (texts of different lengths
    batched together, so padding is exercised, and one past 256 tokens, so truncation is); the int8
    models stay within rounding."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(model_dir(), device="cpu")
    reference.max_seq_length = 256
    texts = [*TEXTS[:4], "word " * 400]
    expected = reference.encode(texts, normalize_embeddings=True)
    fp32 = Embedder(precision="fp32", cache_size=0).encode(texts)
    assert np.min(np.sum(fp32 * expected, axis=1)) > 0.9999
    # int8 moves vectors by about 0.007 of cosine (tests.bench.embed_batching, 320 texts: dynamic
    # median 0.994, worst 0.987; static median 0.993, worst 0.985); the cache's quality benchmark
    # runs on the default, int8-dynamic.
    for precision, floor in (("int8-dynamic", 0.98), ("int8-static", 0.97)):
        int8 = Embedder(precision=precision, cache_size=0).encode(texts)
        assert np.min(np.sum(int8 * fp32, axis=1)) > floor, precision
        assert np.max(np.sum(int8 * fp32, axis=1)) < 0.99999, precision  # it really is another model


def test_serving_loads_neither_torch_nor_transformers() -> None:
    """A web worker imports the API and embeds without torch, sentence-transformers or transformers
    (about 500 MB resident per worker before)."""
    code = (
        "import sys; import leo_optima.asgi; from optimizer.semantic import get_embedder;"
        "get_embedder().warm_up();"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leo_optima.settings.test"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_missing_model_file_is_built_in_a_child_process(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEO_EMBED_CACHE_DIR", str(tmp_path))
    emb = Embedder(cache_size=0)
    v = emb.encode(["built on demand"])
    assert v.shape == (1, DIM)
    # int8-dynamic comes from an export of its own (eager attention), not from the fp32 file.
    assert [p.name for p in tmp_path.glob("*.onnx")] == [Path(onnx_path(model_dir(), emb.precision)).name]


def test_the_default_graph_is_fused_but_keeps_residual_and_layer_norm_apart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One quantized attention node per layer; residual + layer norm never fused, in the file nor
    by onnxruntime at load (its SkipLayerNormalization kernel is the slower one here)."""
    import onnx

    path = build(precision="int8-dynamic")
    ops = Counter(node.op_type for node in onnx.load(path).graph.node)
    assert ops["QAttention"] == 6 and ops["BiasGelu"] == 6 and ops["LayerNormalization"] == 13, ops
    open_session(path, 1, optimized_copy=str(tmp_path / "as-loaded.onnx"))
    loaded = Counter(node.op_type for node in onnx.load(tmp_path / "as-loaded.onnx").graph.node)
    assert loaded["QAttention"] == 6 and loaded["LayerNormalization"] == 13, loaded
    assert not {"SkipLayerNormalization", "EmbedLayerNormalization"} & set(ops | loaded)


def test_int8_products_are_exact_whatever_the_cpu() -> None:
    """Every session widens int8 products before adding them. Without it, an x86 CPU lacking
    AVX-512 VNNI saturates them and the same model gives other vectors: on an AVX2-only EPYC,
    "kids" / "children" fell from 0.908 to 0.862 and four verifier tests failed (the word-level
    rules are tuned on exact products). The verifier's tests show the effect on such a CPU; this
    one shows the setting on any CPU."""
    session = open_session(build(precision="int8-dynamic"), 1)
    assert session.get_session_options().get_session_config_entry(X64_QUANT_PRECISION) == "1"


def test_a_closed_event_loop_does_not_stop_the_batcher() -> None:
    """A lookup whose loop is gone by the time its vector is ready (a cancelled request in a
    finished ``asyncio.run``) must not kill the thread that serves everyone else."""
    emb = Embedder(cache_size=0, batch_wait_ms=100)
    _concurrently(emb, ["start the thread"])
    thread = emb._batcher._thread

    async def abandon() -> None:
        emb._batcher.submit("abandoned lookup")  # never awaited: the loop closes first

    asyncio.run(abandon())
    time.sleep(1.0)  # the batch runs and finds its loop closed
    assert thread is not None and thread.is_alive() and emb._batcher._thread is thread
    vecs, _ = _concurrently(emb, ["still served"])
    assert vecs.shape == (1, DIM) and emb._batcher._thread is thread


def test_the_precision_setting_keeps_its_old_name_and_refuses_unknown_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEO_EMBED_PRECISION", "int8")  # what it was called before int8-static existed
    assert default_precision() == "int8-dynamic"
    monkeypatch.setenv("LEO_EMBED_PRECISION", "fp16")
    with pytest.raises(ValueError, match="int8-dynamic"):
        default_precision()
