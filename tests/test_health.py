"""`/healthz` and `/readyz` against real parts: a private redis-server that the test stops, a TCP
listener that never answers (a hung broker), and an unopenable database in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncRequestFactory

from leo_optima.core import health

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(view: Any, path: str) -> tuple[int, dict[str, Any], float]:
    """Run an async view the way the sync test thread can, and time it."""
    request = AsyncRequestFactory().get(path)
    started = time.monotonic()
    response = async_to_sync(view)(request)
    elapsed = time.monotonic() - started
    assert response["Cache-Control"] == "no-store"
    return response.status_code, json.loads(response.content), elapsed


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server on its own port, so the test can stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/5"
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url, socket_timeout=0.5).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield url, proc
    finally:
        proc.kill()
        proc.wait(timeout=5)


def _use_redis(settings: Any, url: str) -> None:
    """Production-shaped settings: django-redis cache (as base.py configures it) and a Redis broker."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    settings.CELERY_BROKER_URL = url
    settings.CELERY_TASK_ALWAYS_EAGER = False


def test_healthz_answers_without_touching_anything() -> None:
    # No database mark: healthz must not need the database (pytest-django would refuse access).
    status, body, _ = _call(health.healthz, "/healthz")
    assert (status, body) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_readyz_embedded_default_is_ready(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.CELERY_TASK_ALWAYS_EAGER = True
    status, body, _ = _call(health.readyz, "/readyz")
    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["cache"] == {"backend": "locmem", "status": "skipped", "ms": body["checks"]["cache"]["ms"]}
    assert body["checks"]["broker"]["status"] == "skipped"


@pytest.mark.django_db
def test_readyz_names_redis_failures_and_does_not_hang(
    settings: Any, redis_url: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, proc = redis_url
    _use_redis(settings, url)

    status, body, _ = _call(health.readyz, "/readyz")
    assert status == 200, body
    assert body["checks"]["cache"]["status"] == "ok"
    assert body["checks"]["cache"]["backend"] == "redis"
    assert body["checks"]["broker"] == {"backend": "redis", "status": "ok", "ms": body["checks"]["broker"]["ms"]}

    proc.kill()
    proc.wait(timeout=5)
    status, body, elapsed = _call(health.readyz, "/readyz")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["failed"] == ["cache", "broker"]
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["cache"]["backend"] == "redis"  # only known from the settings
    assert body["checks"]["broker"]["status"] == "error"
    # The response names the failure type only, never the URL or host.
    assert "127.0.0.1" not in json.dumps(body)
    assert elapsed < 3.0


@pytest.fixture
def silent_tcp_server() -> Iterator[str]:
    """Accepts connections and never answers: what a wedged broker looks like to a client."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.django_db
def test_readyz_times_out_on_a_silent_broker(settings: Any, silent_tcp_server: str) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.CELERY_BROKER_URL = silent_tcp_server
    settings.CELERY_TASK_ALWAYS_EAGER = False
    status, body, elapsed = _call(health.readyz, "/readyz")
    assert status == 503
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"]["status"] == "error"
    assert elapsed < 2.5, "a silent broker must cost about the socket timeout, not hang readyz"


_UNREACHABLE_DB_SCRIPT = textwrap.dedent(
    """
    import asyncio, json
    import django
    django.setup()
    from django.test import RequestFactory
    from leo_optima.core.health import readyz
    response = asyncio.run(readyz(RequestFactory().get("/readyz")))
    print(json.dumps({"status": response.status_code, "body": json.loads(response.content)}))
    """
)


def test_readyz_names_the_database_when_it_cannot_be_opened(tmp_path: Path) -> None:
    # A separate process: the database settings are read once, at start-up.
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="leo_optima.settings.test",
        DATABASE_URL=f"sqlite:///{tmp_path}/missing-dir/db.sqlite3",
        PYTHONPATH=str(ROOT),
    )
    out = subprocess.run(
        [sys.executable, "-c", _UNREACHABLE_DB_SCRIPT],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == 503
    assert result["body"]["failed"] == ["database"]
    assert result["body"]["checks"]["database"]["error"] == "OperationalError"
    assert result["body"]["checks"]["cache"]["status"] == "skipped"
