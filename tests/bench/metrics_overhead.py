"""Cost of the gateway's metric calls on the hot path, and of one /metrics scrape.

Run: ``python tests/bench/metrics_overhead.py`` (or ``python -m tests.bench.metrics_overhead``).
Prints microseconds per ``observe_request`` call in single-process mode and in multiprocess mode
(what gunicorn workers use: every increment writes to an mmap'd file), and the time to render a
scrape that merges several workers' files. Bounded: a few seconds on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CALLS = 20_000
WORKERS = 4

_TIMING = textwrap.dedent(
    """
    import sys, time
    from optimizer import metrics
    calls = int(sys.argv[1])
    tenants = [f"tenant-{i}" for i in range(50)]
    models = ["gpt-4o", "gpt-4o-mini", "o3-mini", "someone-elses-model"]
    techniques = ["exact", "semantic", "miss", "bypass"]
    started = time.perf_counter()
    for i in range(calls):
        metrics.observe_request(tenants[i % 50], models[i % 4], techniques[i % 4], 200, 120, 0.0031,
                                latency_s=0.004)
    elapsed = time.perf_counter() - started
    print(f"{elapsed / calls * 1e6:.2f}")
    """
)

_SCRAPE = textwrap.dedent(
    """
    import time
    from optimizer import metrics
    runs = 20
    started = time.perf_counter()
    for _ in range(runs):
        body, _ = metrics.render_metrics(queue_depth=False)
    elapsed = time.perf_counter() - started
    print(f"{elapsed / runs * 1e3:.2f} {len(body)}")
    """
)


def _run(script: str, *args: str, multiproc_dir: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PROMETHEUS_MULTIPROC_DIR", "CELERY_BROKER_URL"}}
    env["PYTHONPATH"] = str(ROOT)
    if multiproc_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    return subprocess.run(
        [sys.executable, "-c", script, *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True,
        timeout=300,
    ).stdout.strip()


def main() -> None:
    single = float(_run(_TIMING, str(CALLS), multiproc_dir=None))
    print(f"observe_request, single process:   {single:8.2f} us/call  ({CALLS} calls)")
    with tempfile.TemporaryDirectory() as tmp:
        per_worker = [float(_run(_TIMING, str(CALLS), multiproc_dir=tmp)) for _ in range(WORKERS)]
        print(f"observe_request, multiprocess:     {sum(per_worker) / WORKERS:8.2f} us/call  "
              f"(mean of {WORKERS} worker processes)")
        ms, size = _run(_SCRAPE, multiproc_dir=tmp).split()
        print(f"/metrics render, {WORKERS} workers' files: {float(ms):8.2f} ms/scrape  ({int(size)} bytes, "
              f"50 tenants x 4 models x 4 techniques)")


if __name__ == "__main__":
    main()
