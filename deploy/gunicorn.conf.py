"""gunicorn configuration for the web service: ASGI through uvicorn workers, long-stream timeouts,
JSON logs and Prometheus multiprocess bookkeeping.

Run: ``gunicorn -c deploy/gunicorn.conf.py leo_optima.asgi:application``.

Environment: ``WEB_CONCURRENCY`` (workers), ``GUNICORN_BIND`` (default ``0.0.0.0:8000``),
``GUNICORN_TIMEOUT`` (default 300), ``PROMETHEUS_MULTIPROC_DIR`` (default
``/tmp/leo-prometheus``), ``LEO_LOG_LEVEL``, ``LEO_TRUSTED_PROXIES`` (the proxies whose
X-Forwarded-For is believed; none by default).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

# Multiprocess mode has to be on before any worker imports prometheus_client, or each worker would
# keep its counters in its own memory and /metrics would show whichever worker answered the scrape.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/leo-prometheus")
_METRICS_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"]

# The project root, so `leo_optima.core.logging` imports when gunicorn is started from elsewhere.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


from leo_optima.settings.env import trusted_proxies  # noqa: E402 - needs _ROOT on sys.path


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, not {raw!r}") from None


# --------------------------------------------------------------------------- server

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# The uvicorn-worker package: uvicorn's own `uvicorn.workers` is deprecated since 0.30.
worker_class = "uvicorn_worker.UvicornWorker"
# Async workers each hold many streams, so CPU count (not 2n+1) is enough. A worker holds about
# 250 MB resident after 10,000 requests (onnxruntime, no torch: tests/bench/peer_overhead.py).
workers = _int_env("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count()))
# Each worker loads the embedder, its threads and its pools after fork. Preloading would share
# Django's read-only pages (PSS already ~190 of the 250 MB), but the app starts threads and opens
# database connections at import, which must not cross a fork.
preload_app = False

# A streamed completion can run for minutes. `timeout` is the worker heartbeat (uvicorn workers
# keep beating while streaming, so this only kills a truly stuck worker); graceful_timeout lets
# in-flight streams finish on reload or shutdown.
timeout = _int_env("GUNICORN_TIMEOUT", 300)
graceful_timeout = _int_env("GUNICORN_GRACEFUL_TIMEOUT", 300)
# nginx keeps upstream connections alive for 75 s by default; stay above it so gunicorn never
# closes a connection nginx is about to reuse.
keepalive = _int_env("GUNICORN_KEEPALIVE", 75)
# Recycle workers now and then to bound slow memory growth; jitter avoids recycling all at once.
max_requests = _int_env("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _int_env("GUNICORN_MAX_REQUESTS_JITTER", 1000)
# X-Forwarded-For/-Proto are believed only from LEO_TRUSTED_PROXIES (compose: nginx's address);
# empty means from nobody. gunicorn's own default (FORWARDED_ALLOW_IPS, else loopback) would let a
# local client name a new address per request and never meet the bad-key or login throttles.
forwarded_allow_ips = ",".join(trusted_proxies())
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)

# --------------------------------------------------------------------------- logging

# The app writes one JSON access line per request itself (with tenant and technique), so
# gunicorn's access log is off and its error log uses the same JSON handler.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LEO_LOG_LEVEL", "INFO").lower()

try:
    from leo_optima.core.logging import build_logging

    logconfig_dict: dict[str, Any] = build_logging(os.environ.get("LEO_LOG_LEVEL", "INFO"))
except ImportError:  # the project tree is not importable: keep gunicorn's plain logs
    logconfig_dict = {}


# --------------------------------------------------------------------------- hooks


def on_starting(server: Any) -> None:
    """Master start: wipe the samples a previous run left, so counters start from zero and no dead
    worker's gauge lingers."""
    os.makedirs(_METRICS_DIR, exist_ok=True)
    for entry in os.scandir(_METRICS_DIR):
        if entry.name.endswith(".db"):
            try:
                os.remove(entry.path)
            except FileNotFoundError:
                pass


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: drop its live-gauge files (its counters stay, as Prometheus expects)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _METRICS_DIR)
