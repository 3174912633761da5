"""What each import costs a web worker: resident memory after each step, in a fresh process.

    python -m tests.bench.worker_memory

Steps, cumulative: the interpreter, numpy, onnxruntime, tokenizers, Django and the whole ASGI app
(``leo_optima.asgi``: every view and pipeline module), the embedding model loaded and run once, and
for comparison what the embedder used to load on top: torch, then sentence-transformers with the
model. Each row is the RSS (VmRSS) after the step and what the step added.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STEPS = [
    ("python", "pass"),
    ("numpy", "import numpy"),
    ("onnxruntime", "import onnxruntime"),
    ("tokenizers", "import tokenizers"),
    ("django + leo_optima.asgi", "import leo_optima.asgi"),
    ("embedding model loaded", "from optimizer.semantic import get_embedder; get_embedder().warm_up()"),
    ("(before) torch", "import torch"),
    ("(before) sentence-transformers model",
     "from sentence_transformers import SentenceTransformer; from optimizer.semantic.embedder import model_dir;"
     "SentenceTransformer(model_dir(), device='cpu').encode(['x'])"),
]

CHILD = """
import re, sys
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
for code in sys.argv[1:]:
    exec(code)
    print(f"RSS {rss():.1f}", flush=True)
"""


def main() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "leo_optima.settings.local"),
           "LEO_PRELOAD_EMBEDDER": "false", "HF_HUB_OFFLINE": "1"}
    for name in ("DJANGO_SECRET_KEY", "LEO_KEY_PEPPER"):
        env.setdefault(name, "bench-only-" + "x" * 40)
    if "LEO_ENCRYPTION_KEYS" not in env:
        from cryptography.fernet import Fernet

        env["LEO_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    out = subprocess.run([sys.executable, "-c", CHILD, *[code for _, code in STEPS]], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    values = [float(line.split()[1]) for line in out if line.startswith("RSS ")]
    print(f"{'step':40} {'RSS MB':>8} {'added':>8}")
    previous = 0.0
    for (name, _), value in zip(STEPS, values, strict=True):
        print(f"{name:40} {value:8.1f} {value - previous:8.1f}")
        previous = value


if __name__ == "__main__":
    main()
