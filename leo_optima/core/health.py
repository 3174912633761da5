"""Liveness and readiness endpoints: ``/healthz`` and ``/readyz``.

``healthz`` says only that the process answers; it touches nothing else, so a database outage never
makes an orchestrator restart healthy web workers. ``readyz`` checks the database, the cache and the
Celery broker concurrently, each bounded by a short timeout, and answers 503 naming the ones that
failed, so a load balancer stops sending traffic to a node that cannot serve it.

Both views are async: under uvicorn they run on the event loop, so liveness answers even when every
sync thread is busy, and a dead Redis costs at most the timeout, never a hung request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

from leo_optima.core.logging import redact

__all__ = ["healthz", "readyz", "run_checks"]

logger = logging.getLogger(__name__)

#: Socket timeouts for Redis and plain TCP probes, in seconds.
SOCKET_TIMEOUT = 1.0


def _check_timeout() -> float:
    """Upper bound for one check, socket work and thread hop included (``LEO_READYZ_TIMEOUT``)."""
    try:
        return max(0.1, float(os.environ.get("LEO_READYZ_TIMEOUT", "2.0")))
    except ValueError:
        return 2.0


CheckResult = dict[str, Any]


def _no_store(response: JsonResponse) -> JsonResponse:
    response["Cache-Control"] = "no-store"
    return response


async def healthz(request: HttpRequest) -> JsonResponse:
    """``GET /healthz``: 200 ``{"status": "ok"}`` while the process can answer at all."""
    return _no_store(JsonResponse({"status": "ok"}))


# --------------------------------------------------------------------------- database


def _database_select_one() -> str:
    # No connection housekeeping here: Django closes unusable connections when the request ends
    # (a failed query marks the connection), so the next probe reconnects after an outage.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        row = cursor.fetchone()
    if not row or row[0] != 1:
        raise RuntimeError("SELECT 1 returned an unexpected row")
    return connection.vendor


async def check_database() -> CheckResult:
    """``SELECT 1`` on the default database, in the request's own sync thread (thread-sensitive),
    as Django requires for connections."""
    vendor = await sync_to_async(_database_select_one, thread_sensitive=True)()
    return {"backend": vendor}


# --------------------------------------------------------------------------- cache


def _cache_backend_name() -> str:
    backend = str(settings.CACHES.get("default", {}).get("BACKEND", ""))
    lowered = backend.lower()
    for name in ("redis", "memcached", "locmem", "db", "filebased", "dummy"):
        if name in lowered:
            return name
    return backend.rsplit(".", 1)[-1] or "unknown"


def _cache_roundtrip() -> None:
    key = f"leo:readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    try:
        if cache.get(key) != "1":
            raise RuntimeError("value written to the cache could not be read back")
    finally:
        cache.delete(key)


async def check_cache() -> CheckResult:
    """Set, get and delete a key in the default cache when it is Redis; skipped otherwise, since a
    process-local cache cannot be unreachable."""
    backend = _cache_backend_name()
    if backend != "redis":
        return {"backend": backend, "skipped": True}
    # Not thread-sensitive: a stuck socket must not hold the request's sync thread.
    await sync_to_async(_cache_roundtrip, thread_sensitive=False)()
    return {"backend": backend}


# --------------------------------------------------------------------------- broker


def broker_url() -> str:
    """Celery's broker URL: the ``CELERY_BROKER_URL`` setting, else the environment."""
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    return str(url or os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "")


async def _redis_ping(url: str) -> None:
    client = aioredis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
    )
    try:
        if not await client.ping():
            raise RuntimeError("PING was not answered")
    finally:
        await client.aclose()


async def _tcp_connect(url: str) -> None:
    parts = urlsplit(url)
    default_ports = {"amqp": 5672, "amqps": 5671, "sqs": 443}
    port = parts.port or default_ports.get(parts.scheme, 0)
    if not parts.hostname or not port:
        raise RuntimeError(f"cannot tell where the {parts.scheme!r} broker listens")
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname, port), timeout=SOCKET_TIMEOUT
    )
    writer.close()
    await writer.wait_closed()


async def check_broker() -> CheckResult:
    """PING the Celery broker (Redis) or open a TCP connection to it (others); skipped when tasks
    run eagerly or no broker is configured."""
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return {"backend": "eager", "skipped": True}
    url = broker_url()
    scheme = urlsplit(url).scheme if url else ""
    if not url or scheme in {"memory", "cache+memory", ""}:
        return {"backend": scheme or "none", "skipped": True}
    if scheme in {"redis", "rediss", "unix"}:
        await _redis_ping(url)
        return {"backend": "redis"}
    await _tcp_connect(url)
    return {"backend": scheme}


# --------------------------------------------------------------------------- readiness

CHECKS: dict[str, Callable[[], Awaitable[CheckResult]]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
}


def _database_backend_name() -> str:
    engine = str(settings.DATABASES.get("default", {}).get("ENGINE", ""))
    return engine.rsplit(".", 1)[-1] or "unknown"


def _broker_backend_name() -> str:
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return "eager"
    scheme = urlsplit(broker_url()).scheme
    return "redis" if scheme in {"redis", "rediss", "unix"} else (scheme or "none")


#: What each check talks to, known from the settings alone, so a failure still names it.
BACKENDS: dict[str, Callable[[], str]] = {
    "database": _database_backend_name,
    "cache": _cache_backend_name,
    "broker": _broker_backend_name,
}


async def _run_one(name: str, check: Callable[[], Awaitable[CheckResult]], timeout: float) -> CheckResult:
    started = time.perf_counter()
    backend = BACKENDS[name]() if name in BACKENDS else "unknown"
    try:
        result = await asyncio.wait_for(check(), timeout=timeout)
        result["status"] = "skipped" if result.pop("skipped", False) else "ok"
    except TimeoutError:
        result = {"backend": backend, "status": "error", "error": f"timed out after {timeout:g}s"}
    except Exception as exc:  # any failure means "not ready"; the detail goes to the log
        # Only the exception type goes into the response: messages can name internal hosts.
        logger.warning("readiness check %s failed: %s", name, redact(f"{type(exc).__name__}: {exc}"))
        result = {"backend": backend, "status": "error", "error": type(exc).__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000.0, 1)
    return result


async def run_checks(names: tuple[str, ...] | None = None) -> dict[str, CheckResult]:
    """Run the readiness checks concurrently; return ``{name: {"status": ok|skipped|error, ...}}``."""
    selected = names or tuple(CHECKS)
    timeout = _check_timeout()
    results = await asyncio.gather(*(_run_one(n, CHECKS[n], timeout) for n in selected))
    return dict(zip(selected, results, strict=True))


async def readyz(request: HttpRequest) -> JsonResponse:
    """``GET /readyz``: 200 ``{"status": "ok", "checks": {...}}`` when the database, cache and
    broker answer; else 503 ``{"status": "unavailable", "failed": [...], "checks": {...}}``."""
    checks = await run_checks()
    failed = [name for name, result in checks.items() if result["status"] == "error"]
    if failed:
        body = {"status": "unavailable", "failed": failed, "checks": checks}
        return _no_store(JsonResponse(body, status=503))
    return _no_store(JsonResponse({"status": "ok", "checks": checks}))
