"""Can one text's embedding get faster here? The semantic cache's cost at one connection (#14).

Run from the repository root (a few minutes on 2 cores; ``--no-fused`` skips the torch export)::

    python -m tests.bench.embed_latency [--texts 300] [--no-fused]

At one connection every unique prompt waits for one embedding, one text per call, so its latency
is the semantic cache's floor. The ways to run that call are compared in one process, in turns of
25 texts (so the machine's load weighs on every row alike), on the texts of
``embed_batching.eval_texts`` plus the wrk script's unique prompts:

- ``current``: the int8-dynamic session as a web worker runs it (one intra-op thread), called
  directly;
- ``2 threads`` / ``2 threads, no spin``: the same file with two intra-op threads (the other core
  is idle at one connection), with and without onnxruntime's spin-waiting;
- ``fused``: the model exported with eager attention, so onnxruntime's BERT fusions apply
  (Attention, EmbedLayerNormalization, BiasGelu, SkipLayerNormalization: far fewer nodes), then
  quantized as ``current`` is (dynamic, per-channel int8); built with torch in a temporary
  directory;
- ``batcher``: ``current`` reached from an event loop through ``Embedder.aencode_one`` (the
  micro-batcher's thread hop and the loop's wake-up included), against the direct call.

Printed: median ms per text for each row, and each row's agreement with ``current`` (min and
median cosine: anything below 1.0 would change the cache's decisions and need the quality
benchmarks re-run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from optimizer.semantic import Embedder
from optimizer.semantic.model_files import _export_onnx, build, load_tokenizer, model_dir, model_inputs
from tests.bench.embed_batching import eval_texts

Run = Callable[[str], np.ndarray]
BLOCK = 25


def session(path: str, threads: int, spin: bool = True) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def fused_model(model_path: str, work: str) -> str:
    """Export with eager attention, fuse with onnxruntime's BERT optimizer, quantize as `current`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    exported, fused, quantized = (os.path.join(work, name) for name in ("eager.onnx", "fused.onnx", "fused-int8.onnx"))
    _export_onnx(model_path, exported, attn_implementation="eager")
    optimized = optimize_model(exported, model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
    print("fused operators:", {k: v for k, v in optimized.get_fused_operator_statistics().items() if v})
    optimized.save_model_to_file(fused)
    quantize_dynamic(fused, quantized, weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return quantized


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--no-fused", action="store_true", help="skip the fused export (needs torch, about a minute)")
    args = ap.parse_args()

    path = model_dir()
    tokenizer = load_tokenizer(path)
    current = build(path, "int8-dynamic")
    texts = eval_texts(args.texts // 2)
    texts += [f"Say hello in one word. [{1765000000 + i}-1-{i}]" for i in range(args.texts - len(texts))]

    def runner(s: ort.InferenceSession) -> Run:
        return lambda text: s.run(None, model_inputs(tokenizer, [text]))[0][0]

    rows: dict[str, Run] = {
        "current": runner(session(current, 1)),
        "2 threads": runner(session(current, 2)),
        "2 threads, no spin": runner(session(current, 2, spin=False)),
    }
    with tempfile.TemporaryDirectory() as work:
        if not args.no_fused:
            rows["fused"] = runner(session(fused_model(path, work), 1))
        times: dict[str, list[float]] = {name: [] for name in rows}
        vectors: dict[str, list[np.ndarray]] = {name: [] for name in rows}
        for name, run in rows.items():  # warm up
            run("warm up")
        # Blocks of texts, each row in turn: interleaving text by text would have every call
        # find the other rows' weights in the CPU caches instead of its own (the files are
        # 23-90 MB), which is not how a worker runs.
        for start in range(0, len(texts), BLOCK):
            for name, run in rows.items():
                for text in texts[start:start + BLOCK]:
                    started = time.perf_counter()
                    vectors[name].append(run(text))
                    times[name].append((time.perf_counter() - started) * 1000)

    direct, hopped = asyncio.run(_through_batcher(texts))

    reference = np.array(vectors["current"])
    print(f"\nOne text per call, {len(texts)} texts, rows in turns; load average {os.getloadavg()[0]:.2f}\n")
    print(f"{'row':22} {'ms/text':>8} {'cos min':>8} {'cos median':>10}")
    for name in rows:
        cosines = (np.array(vectors[name]) * reference).sum(axis=1)
        print(f"{name:22} {statistics.median(times[name]):8.3f} {cosines.min():8.4f} {np.median(cosines):10.4f}")
    print(f"\n{'from an event loop':22} {'ms/text':>8}")
    print(f"{'direct call':22} {direct:8.3f}\n{'through the batcher':22} {hopped:8.3f}")


async def _through_batcher(texts: list[str]) -> tuple[float, float]:
    """Median ms of `current` called directly on the loop thread and through `aencode_one`."""
    emb = Embedder(cache_size=0)
    emb.warm_up()
    direct: list[float] = []
    hopped: list[float] = []
    for text in texts:
        started = time.perf_counter()
        emb._infer([text])
        direct.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await emb.aencode_one(text + " ")  # another text: no LRU hit
        hopped.append((time.perf_counter() - started) * 1000)
    return statistics.median(direct), statistics.median(hopped)


if __name__ == "__main__":
    main()
