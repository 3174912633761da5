"""Redis stopped means misses, not errors; started again, caching resumes.

A private redis-server on a spare port (so stopping it disturbs nothing else) and a LEO server
pointed at it. While Redis is down, every request still succeeds: the exact cache misses,
single-flight and rate limits degrade to per-process, nothing answers 5xx. Runs in both CI passes
(it brings its own Redis); needs the redis-server binary (Debian package redis-server).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from optimizer.models import OptimizerSettings, RequestLog
from tests.conftest import LeoServer, TenantKit, free_port, wait_for_rows
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="needs redis-server (Debian package redis-server)")


class PrivateRedis:
    """A redis-server process on a fixed port that can be stopped and started again."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    r = PrivateRedis(free_port(), tmp_path_factory.mktemp("redis"))
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def redis_server(start_server: Callable[..., LeoServer], private_redis: PrivateRedis) -> LeoServer:
    return start_server(REDIS_URL=private_redis.url)


@pytest.fixture
def exact_kit(make_tenant: Callable[..., TenantKit], redis_server: LeoServer) -> TenantKit:
    """The exact cache only, so a repeated question can only be served from Redis."""
    kit = make_tenant("RedisDown", server=redis_server)
    OptimizerSettings.objects.create(tenant=kit.tenant, semantic_cache=False, decomposition=False)
    return kit


def question() -> str:
    return f"How far is the harbour of {uuid.uuid4().hex[:10]} from the sea?"


SENT: list[str] = []  # request ids, to wait for their ledger rows


def ask(kit: TenantKit, q: str, stream: bool = False) -> str:
    client = kit.client()
    messages = [{"role": "user", "content": q}]
    if stream:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
        text = raw.parse().choices[0].message.content or ""
    assert raw.status_code == 200 and text.startswith("ANSWER[")
    SENT.append(raw.headers["x-leo-request-id"])
    return raw.headers["x-leo-cache"]


def test_redis_down_means_misses_not_errors_and_caching_resumes(exact_kit: TenantKit, private_redis: PrivateRedis,
                                                                 fake_upstream: Any) -> None:
    kit = exact_kit
    cached_q = question()
    assert ask(kit, cached_q) == "miss" and ask(kit, cached_q) == "exact"  # Redis holds the answer

    private_redis.stop()
    try:
        before = fake_upstream.stats()["chat"]
        fresh_q = question()
        results = [ask(kit, cached_q), ask(kit, cached_q, stream=True), ask(kit, fresh_q), ask(kit, fresh_q)]
        assert results == ["miss"] * 4
        # Concurrent identical requests: no shared lock, so each may lead; none fails.
        burst_q = question()
        with ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(lambda _: ask(kit, burst_q), range(8)))
        assert set(burst) == {"miss"}
        assert fake_upstream.stats()["chat"] - before == 4 + len(burst)
        with kit.http() as http:  # management endpoints answer too (the database is the truth)
            assert http.get("/v1/cache").status_code == 200
            assert http.get("/v1/models").status_code == 200
    finally:
        private_redis.start()

    # Back: after the circuit breaker's cool-down (2 s) answers are stored and served again.
    q = question()
    deadline = time.monotonic() + 30
    while True:
        first, second = ask(kit, q), ask(kit, q)
        if (first, second) == ("miss", "exact") or time.monotonic() > deadline:
            break
        q = question()
        time.sleep(0.2)
    assert (first, second) == ("miss", "exact")

    rows = wait_for_rows(RequestLog, len(SENT), request_id__in=SENT)
    assert len(rows) == len(SENT) and {r.status_code for r in rows} == {200}
