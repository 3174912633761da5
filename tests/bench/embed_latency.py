"""Can one text's embedding get faster here? The semantic cache's cost at one connection (#14).

Run from the repository root (about 3 minutes on 2 cores; it exports the model with torch into a
temporary directory)::

    python -m tests.bench.embed_latency [--texts 300] [--rounds 5] [--agreement-texts 500]

At one connection every unique prompt waits for one embedding, one text per call, so its latency
is the semantic cache's floor. The ways to run that call are compared in one process, in turns of
25 texts, the rows in a new order each turn (so the machine's load weighs on every row alike),
``--rounds`` passes over the texts of ``embed_batching.eval_texts`` (GPTCache queries when
``../shared/data`` is there, the repository's pair sets) plus the wrk script's unique prompts. Unless a row says otherwise:
one intra-op thread, ``ORT_ENABLE_ALL``, and the session options ``Embedder`` uses.

Graphs (all dynamic int8 per channel unless named fp32):

- ``int8-dynamic``: the product's default (``model_files``): exported with eager attention, the
  attention and bias + GELU fused by onnxruntime's BERT optimizer, residual + layer norm left
  unfused (``model_files.UNFUSED_AT_RUNTIME``), then quantized (Q/K/V as one QAttention, the dense
  layers and the embedding tables int8);
- ``before``: the default until this bench's commit: the plain export quantized as is, run with
  onnxruntime's SkipLayerNormFusion on (as it was), and with it off;
- ``fused, all fusions``: what this bench called "fused" before: SkipLayerNormalization and
  EmbedLayerNormalization fused as well, everything quantized (QEmbedLayerNormalization included);
- variants of the default: weights per tensor instead of per channel; the embeddings left fp32
  (``embeddings fp32``: closer to fp32 but 47 MB more resident per worker); two threads;
- session options on the default: ``ORT_ENABLE_EXTENDED``; memory pattern and arena off;
  spinning off; loaded from a file onnxruntime already optimized (``ORT_DISABLE_ALL`` on load);
- ``fp32`` (the plain export) and ``fp32 fused``: the fusion itself is exact (cosine 1.00000).

Printed: median ms per text for each row; its agreement over ``--agreement-texts`` texts of
``tests/bench/data`` (hard negatives, paraphrases and the trust dev set, both sides of each pair;
never the frozen ``trust_eval.jsonl``): min, 1st percentile and mean cosine against the fp32
export and against ``before``. Then what happens outside the graph (tokenizing and the input
arrays; ``run`` against IOBinding), residual + layer norm alone as onnxruntime's fused kernel and
as the three nodes it replaces, and, from an event loop, the default's direct call against
``Embedder.aencode_one`` (the micro-batcher's thread hop included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from optimizer.semantic import Embedder
from optimizer.semantic.model_files import (
    DYNAMIC_OPS,
    UNFUSED_AT_RUNTIME,
    X64_QUANT_PRECISION,
    _export_onnx,
    _fuse_bert,
    build,
    load_tokenizer,
    model_dir,
    model_inputs,
)
from tests.bench.embed_batching import eval_texts

Run = Callable[[str], np.ndarray]
BLOCK = 25
DATA = Path(__file__).resolve().parent / "data"
AGREEMENT_SETS = ("hard_negatives.jsonl", "paraphrases.jsonl", "trust_dev.jsonl")
Level = ort.GraphOptimizationLevel


def agreement_texts(n: int) -> list[str]:
    """``n`` distinct texts spread over the repository's pair sets (every text field of a record)."""
    texts: list[str] = []
    for name in AGREEMENT_SETS:
        for line in (DATA / name).read_text().splitlines():
            record = json.loads(line)
            texts += [record[k] for k in ("stored", "query", "a", "b") if k in record]
            texts += record.get("a_paraphrases", [])
    texts = list(dict.fromkeys(texts))
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def session(path: str | bytes, threads: int = 1, *, spin: bool = True, level: Level = Level.ORT_ENABLE_ALL,
            disabled: tuple[str, ...] = UNFUSED_AT_RUNTIME, memory: bool = True,
            save_to: str | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = level
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry(X64_QUANT_PRECISION, "1")  # as the server runs (``open_session``)
    opts.enable_mem_pattern = memory
    opts.enable_cpu_mem_arena = memory
    if save_to:
        opts.optimized_model_filepath = save_to
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled))


def quantized(src: str, dst: str, *, per_channel: bool = True, op_types: list[str] | None = None) -> str:
    """Dynamic int8 as ``model_files`` does it (``op_types`` None: onnxruntime's default list, as
    the former default was quantized)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Needed for the fused graphs' contrib operators only; with it, the plain graph's file is
    # byte-identical to the former default's.
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=per_channel, op_types_to_quantize=op_types,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return dst


def all_fused(src: str, dst: str) -> str:
    """Every BERT fusion onnxruntime has for this graph (the former "fused" row)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(src, model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
    optimized.save_model_to_file(dst)
    return dst


def graphs(model_path: str, work: str) -> dict[str, str]:
    """The ONNX files compared: the product's, and the others built in ``work``."""
    def w(name: str) -> str:
        return os.path.join(work, name)

    fp32 = build(model_path, "fp32")
    _export_onnx(model_path, w("eager.onnx"), attn_implementation="eager")
    _fuse_bert(model_path, w("eager.onnx"), w("fused.onnx"))
    all_fused(w("eager.onnx"), w("all-fused.onnx"))
    int8_ops = list(DYNAMIC_OPS)
    return {
        "int8-dynamic": build(model_path, "int8-dynamic"),
        "before": quantized(fp32, w("before.onnx")),
        "all-fused": quantized(w("all-fused.onnx"), w("all-fused-int8.onnx")),
        "per-tensor": quantized(w("fused.onnx"), w("per-tensor.onnx"), per_channel=False, op_types=int8_ops),
        "embeddings-fp32": quantized(w("fused.onnx"), w("emb-fp32.onnx"), op_types=["MatMul", "Attention"]),
        "fp32": fp32,
        "fp32-fused": w("fused.onnx"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5, help="passes over the texts")
    ap.add_argument("--agreement-texts", type=int, default=500)
    args = ap.parse_args()

    path = model_dir()
    tokenizer = load_tokenizer(path)
    texts = eval_texts(args.texts // 2)
    texts += [f"Say hello in one word. [{1765000000 + i}-1-{i}]" for i in range(args.texts - len(texts))]
    checked = agreement_texts(args.agreement_texts)

    def runner(s: ort.InferenceSession) -> Run:
        return lambda text: s.run(None, model_inputs(tokenizer, [text]))[0][0]

    with tempfile.TemporaryDirectory() as work:
        files = graphs(path, work)
        default = files["int8-dynamic"]
        # Saved after onnxruntime's optimizations, then loaded with none.
        session(default, level=Level.ORT_ENABLE_EXTENDED, save_to=os.path.join(work, "pre-optimized.onnx"))
        embedder = Embedder(cache_size=0)
        rows: dict[str, Run] = {
            "int8-dynamic (default)": runner(session(default)),
            "default, Embedder._infer": lambda text: embedder._infer([text])[0],
            "before": runner(session(files["before"], disabled=())),
            "before, no SkipLN fusion": runner(session(files["before"])),
            "fused, all fusions": runner(session(files["all-fused"], disabled=())),
            "per tensor": runner(session(files["per-tensor"])),
            "embeddings fp32": runner(session(files["embeddings-fp32"])),
            "default, EXTENDED": runner(session(default, level=Level.ORT_ENABLE_EXTENDED)),
            "default, no mem pattern": runner(session(default, memory=False)),
            "default, no spinning": runner(session(default, spin=False)),
            "default, pre-optimized": runner(session(os.path.join(work, "pre-optimized.onnx"),
                                                     level=Level.ORT_DISABLE_ALL)),
            "default, 2 threads": runner(session(default, 2)),
            "fp32": runner(session(files["fp32"])),
            "fp32 fused": runner(session(files["fp32-fused"])),
        }
        times: dict[str, list[float]] = {name: [] for name in rows}
        for run in rows.values():  # warm up
            for _ in range(10):
                run("warm up")
        # Blocks of texts, each row in turn: interleaving text by text would have every call
        # find the other rows' weights in the CPU caches instead of its own, which is not how a
        # worker runs. The rows' order is shuffled per block: the row after the fp32 ones starts
        # with their 90 MB of weights in the caches, and no row should always be that one.
        order = random.Random(14)
        for _ in range(args.rounds):
            for start in range(0, len(texts), BLOCK):
                for name in order.sample(list(rows), len(rows)):
                    run = rows[name]
                    for text in texts[start:start + BLOCK]:
                        started = time.perf_counter()
                        run(text)
                        times[name].append((time.perf_counter() - started) * 1000)
        load = os.getloadavg()[0]
        vectors = {name: np.array([run(text) for text in checked]) for name, run in rows.items()}
        outside = _outside_the_graph(tokenizer, session(default), texts)

    direct, hopped = asyncio.run(_through_batcher(texts))

    print(f"\nOne text per call, {len(texts)} texts x {args.rounds} rounds, rows in turns; load average {load:.2f}")
    print(f"Agreement: cosine over {len(checked)} texts of tests/bench/data, against the fp32 export and 'before'\n")
    print(f"{'row':26} {'ms/text':>8} | {'fp32 min':>8} {'p1':>7} {'mean':>7} | {'before min':>10} {'p1':>7} {'mean':>7}")
    for name in rows:
        cells = []
        for ref in ("fp32", "before"):
            cos = (vectors[name] * vectors[ref]).sum(axis=1)
            cells.append(f"{cos.min():.5f} {np.percentile(cos, 1):.5f} {cos.mean():.5f}")
        print(f"{name:26} {statistics.median(times[name]):8.3f} | {cells[0]:>24} | {cells[1]:>26}")
    print(f"\n{'outside the graph':26} {'ms/text':>8}")
    for name, ms in outside.items():
        print(f"{name:26} {ms:8.3f}")
    print(f"\n{'one node, 12 tokens':30} {'us/call':>8}")
    for name, us in _skip_layer_norm_alone().items():
        print(f"{name:30} {us:8.1f}")
    print(f"\n{'from an event loop':26} {'ms/text':>8}")
    print(f"{'direct call':26} {direct:8.3f}\n{'through the batcher':26} {hopped:8.3f}")


def _outside_the_graph(tokenizer: Tokenizer, s: ort.InferenceSession, texts: list[str]) -> dict[str, float]:
    """Median ms of tokenizing into the input arrays, and of the default's call by ``run`` and by
    IOBinding (inputs bound from numpy, the output left for onnxruntime to allocate)."""
    feeds = [model_inputs(tokenizer, [t]) for t in texts]

    def median_ms(fn: Callable[[int], object]) -> float:
        spent = []
        for i in range(len(texts)):
            started = time.perf_counter()
            fn(i)
            spent.append((time.perf_counter() - started) * 1000)
        return statistics.median(spent)

    def bound(i: int) -> object:
        binding = s.io_binding()
        for name, array in feeds[i].items():
            binding.bind_cpu_input(name, array)
        binding.bind_output("embedding")
        s.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    return {
        "tokenize + arrays": median_ms(lambda i: model_inputs(tokenizer, [texts[i]])),
        "session.run": median_ms(lambda i: s.run(None, feeds[i])),
        "run_with_iobinding": median_ms(bound),
    }


def _skip_layer_norm_alone(tokens: int = 12, hidden: int = 384, calls: int = 3000) -> dict[str, float]:
    """Median us of one call of a graph holding only residual + bias + layer norm on
    ``tokens`` x ``hidden`` floats: as SkipLayerNormalization, and as Add, Add, LayerNormalization
    (what ``UNFUSED_AT_RUNTIME`` keeps). Session overhead included in both."""
    from onnx import NodeProto, TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    params = [numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32), name)
              for name in ("gamma", "beta", "bias")]

    def graph(nodes: list[NodeProto]) -> bytes:
        io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "seq", hidden]) for n in ("x", "skip", "y")]
        model = helper.make_model(helper.make_graph(nodes, "g", io[:2], io[2:], params),
                                  opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
        model.ir_version = 8
        return model.SerializeToString()

    fused = graph([helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"], ["y"],
                                    domain="com.microsoft", epsilon=1e-12)])
    apart = graph([helper.make_node("Add", ["x", "bias"], ["xb"]), helper.make_node("Add", ["xb", "skip"], ["s"]),
                   helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12)])
    feeds = {name: rng.standard_normal((1, tokens, hidden)).astype(np.float32) for name in ("x", "skip")}
    out = {}
    for name, model in (("SkipLayerNormalization", fused), ("Add, Add, LayerNormalization", apart)):
        s = session(model, level=Level.ORT_DISABLE_ALL, disabled=())
        spent = []
        for _ in range(calls):
            started = time.perf_counter()
            s.run(None, feeds)
            spent.append((time.perf_counter() - started) * 1e6)
        out[name] = statistics.median(spent[calls // 10:])
    return out


async def _through_batcher(texts: list[str]) -> tuple[float, float]:
    """Median ms of the default called directly on the loop thread and through `aencode_one`."""
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
