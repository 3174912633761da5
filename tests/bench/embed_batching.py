"""Which embedding model can run a micro-batch as one call: speed, agreement, batch independence.

Run from the repository root (about a minute on 2 cores)::

    python -m tests.bench.embed_batching
    python -m tests.bench.embed_batching --texts 150 --rounds 3     # shorter

One process, one onnxruntime thread per session (as a web worker runs it), the three ONNX files
of ``optimizer.semantic.model_files`` (built first if missing):

- ``int8-dynamic``: activation scales computed per call, so it runs one text per call (what the
  micro-batcher had to do with it); its "batch 16" row is 16 such calls in a row.
- ``fp32``: the exact export, one call per batch.
- ``int8-static``: fixed activation scales calibrated on ``optimizer/semantic/data/calibration.txt``
  (sentences written for this, in no evaluation set), one call per batch.

Texts: GPTCache paraphrase queries (``../shared/data``, when present), then the repository's
``tests/bench/data/paraphrases.jsonl`` and ``hard_negatives.jsonl`` queries. Printed per model:

- ms per text at batch 1, 4 and 16 (median over batches; a batch's texts in arrival order, sorted
  by length as ``Embedder`` does), and texts per second at batch 16;
- agreement with the fp32 sentence-transformers reference (``SentenceTransformer.encode``,
  normalised): min and median cosine over the texts;
- batch independence: the largest absolute difference, over every coordinate of every text,
  between its vector alone and in a batch of 16 with other texts, and in a batch that one
  256-token text pads to the model's limit. Fixed-scale models must stay within 1e-6.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from optimizer.semantic import Embedder
from optimizer.semantic.model_files import PRECISIONS, build, model_dir, model_inputs

HERE = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
LONG = "The lighthouse keeper wrote down every ship that passed, with its flag and its hour. " * 30
BATCH_SIZES = (1, 4, 16)


def eval_texts(n: int) -> list[str]:
    texts: list[str] = []
    gptcache = SHARED / "paraphrase_pairs_gptcache.json"
    if gptcache.exists():
        texts += [p["similar"] for p in json.loads(gptcache.read_text())]
    for name in ("paraphrases.jsonl", "hard_negatives.jsonl"):
        texts += [json.loads(x)["query"] for x in (HERE / name).read_text().splitlines() if x]
    # Spread the pick over the whole list, so every source is in it.
    step = max(1, len(texts) // n)
    return list(dict.fromkeys(texts[::step]))[:n]


def reference(texts: Sequence[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 as sentence-transformers computes it (torch, fp32)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir(), device="cpu")
    model.max_seq_length = 256
    return np.asarray(model.encode(list(texts), normalize_embeddings=True, batch_size=32))


def run_batch(emb: Embedder, texts: list[str]) -> np.ndarray:
    """A micro-batch as the embedder runs it: calls of similar lengths (one per text for
    int8-dynamic)."""
    return emb._infer(texts)


def one_call(emb: Embedder, texts: list[str]) -> np.ndarray:
    """The texts in a single model call, all padded to the longest."""
    session, tokenizer = emb._load()
    return session.run(None, model_inputs(tokenizer, texts))[0]


def per_text_ms(emb: Embedder, texts: list[str], size: int, rounds: int) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds per text, batches of ``size`` in arrival order. The
    session runs on the calling thread (one intra-op thread), so the thread's CPU time is the
    model's, and stays meaningful when other processes share the cores."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        for start in range(0, len(texts) - size + 1, size):
            batch = texts[start : start + size]
            c0, t0 = time.thread_time(), time.perf_counter()
            run_batch(emb, batch)
            wall.append((time.perf_counter() - t0) / size)
            cpu.append((time.thread_time() - c0) / size)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def batch_dependence(emb: Embedder, texts: list[str], alone: np.ndarray) -> tuple[float, float]:
    """Largest |vector in a batch - vector alone|: neighbours only, then padded to 256 tokens."""
    mixed = padded = 0.0
    for start in range(0, len(texts) - 15, 16):
        batch = texts[start : start + 16]
        in_batch = one_call(emb, batch)
        mixed = max(mixed, float(np.abs(in_batch - alone[start : start + 16]).max()))
        with_long = one_call(emb, [*batch[:15], LONG])[:15]
        padded = max(padded, float(np.abs(with_long - alone[start : start + 15]).max()))
    return mixed, padded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=320, help="evaluation texts (speed uses the first 160)")
    ap.add_argument("--rounds", type=int, default=5, help="passes over the speed texts per batch size")
    args = ap.parse_args()

    for precision in PRECISIONS:
        build(precision=precision)
    texts = eval_texts(args.texts)
    ref = reference(texts)
    speed_texts = texts[:160]
    print(f"{len(texts)} texts (speed: {len(speed_texts)}, {args.rounds} rounds), 1 onnxruntime thread per session")
    header = (f"{'model':<13} {'runs':<13} " + " ".join(f"{f'ms/text @{b}':>14}" for b in BATCH_SIZES)
              + f" {'texts/s @16':>11} | {'cos min':>7} {'cos med':>7} | {'batch dep':>9} {'padded':>9}")
    print(header)
    print("-" * len(header))
    for precision in PRECISIONS:
        emb = Embedder(precision=precision, cache_size=0, max_batch=32)
        emb.warm_up()
        alone = np.concatenate([one_call(emb, [t]) for t in texts])
        vectors = emb._infer(texts)
        cos = np.sum(vectors * ref, axis=1)
        mixed, padded = batch_dependence(emb, texts, alone)
        served_same = float(np.abs(vectors - alone).max())  # what the embedder serves vs alone
        ms = [per_text_ms(emb, speed_texts, b, args.rounds) for b in BATCH_SIZES]
        runs = "1 text/call" if emb.runs_one_per_call else "batched"
        print(f"{precision:<13} {runs:<13} " + " ".join(f"{w:>6.2f} ({c:>5.2f})" for w, c in ms)
              + f" {1000 / ms[-1][0]:>11.0f} | {cos.min():>7.4f} {np.median(cos):>7.4f} |"
              f" {mixed:>9.1e} {padded:>9.1e}   (as served: {served_same:.1e})")
    print("ms/text: wall-clock (CPU of the embedding thread). texts/s: wall-clock, one thread.")
    print("batch dep / padded: max |difference| if the model ran a batch of 16 as one call, then with one "
          "text padding it to 256 tokens;\n'as served': what Embedder returns for a text inside a batch "
          "against the text alone.")


if __name__ == "__main__":
    main()
