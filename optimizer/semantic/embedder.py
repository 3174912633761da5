"""Sentence embeddings for the semantic cache (all-MiniLM-L6-v2 in onnxruntime, local, CPU), and
the definition of the text a conversation is embedded as.

One ``Embedder`` per process (``get_embedder()``), loaded lazily on first use or eagerly at worker
start by ``get_embedder().warm_up()``. Where the model's files come from and how they are built:
``model_files``; how concurrent lookups are gathered into one call: ``batcher``.

What a web worker loads: onnxruntime, the ``tokenizers`` package (Rust; it reads the model's
``tokenizer.json``) and numpy. Not torch, sentence-transformers or transformers: together they
held about 500 MB of each worker's resident memory for a model that onnxruntime runs alone.

A text's vector is a function of the text alone: the cache compares a lookup's vector (computed
in whatever micro-batch it landed in) with stored ones (computed in others). ``int8-static``
(fixed activation scales) and ``fp32`` run a micro-batch in as few calls as its lengths allow;
the default ``int8-dynamic`` (scales computed per call) runs one text per call.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from .batcher import MicroBatcher
from .model_files import (
    BATCH_INDEPENDENT,
    DIM,
    MAX_SEQ_LENGTH,
    PRECISIONS,
    default_precision,
    ensure_built,
    load_tokenizer,
    main,
    model_dir,
    model_inputs,
    onnx_path,
    open_session,
)

__all__ = [
    "DIM",
    "MAX_SEQ_LENGTH",
    "PRECISIONS",
    "PRIOR_TURN_CHARS",
    "PRIOR_USER_TURNS",
    "Embedder",
    "conversation_text",
    "get_embedder",
    "main",
    "model_dir",
    "onnx_path",
]

# How many earlier user turns join the last one in ``conversation_text``, and how many characters
# of them: enough to tell "and in Python?" after two different questions apart, bounded so a long
# chat does not drown the question being asked now.
PRIOR_USER_TURNS = 2
PRIOR_TURN_CHARS = 300


def _content_text(content: Any) -> str:
    """The text of an OpenAI message ``content``: a string, or a list of parts (text parts kept)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def conversation_text(messages: Sequence[dict[str, Any]]) -> str:
    """The text embedded for a chat conversation. This is the definition the cache relies on.

    - The last user message is the question; it always comes last, whole.
    - Up to ``PRIOR_USER_TURNS`` earlier user messages (each cut to ``PRIOR_TURN_CHARS``) come
      before it, oldest first, one per line, so a follow-up ("and in Python?") is embedded with
      the question it follows.
    - System and developer messages are excluded: they are part of the exact cache scope (a
      different system prompt is a different partition), not of the similarity.
    - Assistant and tool messages are excluded: they are answers, derived from the user turns;
      a conversation whose assistant turns differ has different user turns or a different scope.
    - Whitespace is collapsed; case and punctuation are kept (the verifier reads them).

    A conversation with no user message yields ``""``; callers must treat that as "no semantic
    lookup" rather than embed an empty string.
    """
    user_turns = [
        " ".join(_content_text(m.get("content")).split())
        for m in messages
        if m.get("role") == "user"
    ]
    user_turns = [t for t in user_turns if t]
    if not user_turns:
        return ""
    prior = [t[:PRIOR_TURN_CHARS] for t in user_turns[:-1][-PRIOR_USER_TURNS:]]
    return "\n".join([*prior, user_turns[-1]])


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return max(0, int(raw)) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None


# A call's texts may be padded by up to this share of the longest one's tokens (plus a few tokens,
# for short texts): beyond it, a call of its own is cheaper than the padding.
PAD_SHARE = 0.25


def _length_groups(lengths: np.ndarray, max_batch: int) -> list[np.ndarray]:
    """Indices of texts to embed together: by increasing length, a new group once the group is full
    or the next text is longer than its shortest by more than ``PAD_SHARE``."""
    groups: list[list[int]] = []
    for i in np.argsort(lengths, kind="stable").tolist():
        if not groups or len(groups[-1]) >= max_batch or lengths[i] > lengths[groups[-1][0]] * (1 + PAD_SHARE) + 4:
            groups.append([])
        groups[-1].append(i)
    return [np.array(g) for g in groups]


class Embedder:
    """all-MiniLM-L6-v2 behind a small API: normalized float32 vectors, an LRU of recent texts."""

    def __init__(
        self,
        model_path: str | None = None,
        *,
        threads: int | None = None,
        cache_size: int = 4096,
        precision: str | None = None,
        max_batch: int | None = None,
        batch_wait_ms: float | None = None,
    ) -> None:
        self._model_path = model_path
        self.precision = precision or default_precision()
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        # One intra-op thread: the web worker's event loop and the other worker need the other
        # core, and at these sizes a second thread mostly waits.
        self._threads = threads if threads is not None else max(1, _env_int("LEO_EMBED_THREADS", 1))
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        wait_ms = batch_wait_ms if batch_wait_ms is not None else float(_env_int("LEO_EMBED_BATCH_WAIT_MS", 0))
        self.max_batch = max(1, max_batch if max_batch is not None else _env_int("LEO_EMBED_MAX_BATCH", 32))
        self._batcher = MicroBatcher(self._infer_and_remember, self.max_batch, wait_ms / 1000)
        self.model_calls = 0
        """Texts that went through the model (LRU hits excluded), for tests and benchmarks."""

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Tokenizer]:
        if self._session is None:
            with self._load_lock:
                if self._session is None:
                    path = self._model_path or model_dir()
                    tokenizer = load_tokenizer(path)
                    self._tokenizer = tokenizer
                    self._session = open_session(ensure_built(path, self.precision), self._threads)
        assert self._tokenizer is not None
        return self._session, self._tokenizer

    def warm_up(self) -> None:
        """Load the model and run one encoding, so the first request pays neither."""
        self._infer(["warm up"])

    @property
    def batch_stats(self) -> dict[str, int]:
        """Micro-batches run, texts they held, the largest one (for benchmarks)."""
        return {"batches": self._batcher.batches, "texts": self._batcher.texts, "largest": self._batcher.largest}

    # -- encoding ------------------------------------------------------------------------------

    @property
    def runs_one_per_call(self) -> bool:
        """Whether this precision's vectors depend on the call's other texts, so each text gets a
        call of its own."""
        return self.precision not in BATCH_INDEPENDENT

    def _infer(self, texts: list[str]) -> np.ndarray:
        """Run the model (no LRU): tokenize, transformer, mean pooling, L2 normalisation, all in
        the ONNX graph. A text's vector never depends on the other texts of the call."""
        self.model_calls += len(texts)
        if self.runs_one_per_call:
            out = np.empty((len(texts), DIM), dtype=np.float32)
            for i, text in enumerate(texts):
                out[i] = self._infer_batched([text])[0]
            return out
        return self._infer_batched(texts)

    def _infer_batched(self, texts: list[str]) -> np.ndarray:
        """Several texts per model call, whatever the precision (``_infer`` decides whether that
        is allowed): sorted by token count and cut into calls of at most ``max_batch`` texts of
        similar length, since a call pads every text to its longest and padding costs as much as
        text. Right padding, so a call's inputs are the first columns of the tokenized batch."""
        session, tokenizer = self._load()
        feeds = model_inputs(tokenizer, texts)
        lengths = feeds["attention_mask"].sum(axis=1)
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for idx in _length_groups(lengths, self.max_batch):
            width = int(lengths[idx].max())
            out[idx] = session.run(None, {k: v[idx, :width] for k, v in feeds.items()})[0]
        return out

    def _remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        if self._cache_size <= 0:
            return
        with self._cache_lock:
            for t, v in zip(texts, vectors, strict=True):
                self._cache[t] = v
                self._cache.move_to_end(t)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _infer_and_remember(self, texts: list[str]) -> np.ndarray:
        vectors = self._infer(texts)
        self._remember(texts, vectors)
        return vectors

    def _cached(self, text: str) -> np.ndarray | None:
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
            return hit

    def encode(self, texts: Iterable[str]) -> np.ndarray:
        """Embed ``texts`` on the calling thread (bulk jobs, benchmarks): an ``(n, 384)`` float32
        array of unit vectors, in input order. Recently seen texts come from the LRU."""
        items = list(texts)
        out = np.empty((len(items), DIM), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for i, t in enumerate(items):
            hit = self._cached(t)
            if hit is not None:
                out[i] = hit
            else:
                missing.setdefault(t, []).append(i)
        if missing:
            todo = list(missing)
            for t, v in zip(todo, self._infer_and_remember(todo), strict=True):
                out[missing[t]] = v
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one text: a ``(384,)`` float32 unit vector."""
        return self.encode([text])[0]

    async def aencode_one(self, text: str) -> np.ndarray:
        """Embed one text off the event loop, micro-batched with concurrent lookups (an LRU hit
        returns at once, without a thread hop)."""
        hit = self._cached(text)
        if hit is not None:
            return hit
        return await self._batcher.submit(text)

    async def aencode(self, texts: Iterable[str]) -> np.ndarray:
        """``aencode_one`` for several texts, queued together."""
        items = list(texts)
        if not items:
            return np.empty((0, DIM), dtype=np.float32)
        return np.stack(await asyncio.gather(*[self.aencode_one(t) for t in items]))


_embedder: Embedder | None = None
_embedder_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide ``Embedder`` (created on first call; the model loads on first encode)."""
    global _embedder
    if _embedder is None:
        with _embedder_lock:
            if _embedder is None:
                _embedder = Embedder()
    return _embedder
