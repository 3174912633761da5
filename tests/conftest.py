"""Shared fixtures: the fake upstream, live LEO servers on loopback, tenants with keys.

Servers run as real processes (uvicorn, or gunicorn with uvicorn workers) against the test
database, so tests that talk to them use `transactional_db` (data must be committed to be seen).
Tenant ids come from a session-wide counter, so a server's short-lived per-tenant caches never
mix two tests' tenants even where the database reuses ids after a flush.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
_tenant_ids = itertools.count(random.randint(10_000, 10_000_000))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    """The URL of the test database (pytest-django renamed it), for servers started by tests."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = quote(s.get("USER") or "")
    password = quote(s.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = s.get("HOST") or "localhost"
    if host.startswith("/"):
        return f"postgres://{auth}/{s['NAME']}?host={quote(host)}" + (f"&port={s['PORT']}" if s.get("PORT") else "")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{s['NAME']}"


@dataclass
class LeoServer:
    """A LEO server process on loopback."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


# Tests give tenants providers on the fake upstream, which listens on loopback: staff must allow that
# (tenants/egress.py). tests/test_egress.py starts servers with LEO_EGRESS_ALLOW="" to show the refusals.
TEST_EGRESS_ALLOW = "127.0.0.1"


def server_env(upstream_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leo_optima.settings.test", "DATABASE_URL": database_url(),
           "LEO_UPSTREAM_URL": upstream_url, "LEO_UPSTREAM_API_KEY": "sk-fake-upstream-key-0000",
           "LEO_EGRESS_ALLOW": TEST_EGRESS_ALLOW,
           "LEO_LEDGER_FLUSH_SECONDS": "0.02", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[Any]:
    from fake_upstream import run_in_thread

    up = run_in_thread()
    yield up
    up.stop()


@pytest.fixture(autouse=True)
def _reset_fake_upstream(request: pytest.FixtureRequest) -> Iterator[None]:
    """Knobs set by one test must not leak into the next."""
    yield
    if "fake_upstream" in request.fixturenames:
        request.getfixturevalue("fake_upstream").reset()


@pytest.fixture(scope="session")
def _redis_clean(django_db_setup: None) -> None:
    """Start every test session from an empty Redis database (cached answers persist otherwise)."""
    url = os.environ.get("REDIS_URL")
    if url:
        import redis

        redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="session")
def start_server(django_db_setup: None, django_db_blocker: Any, fake_upstream: Any, _redis_clean: None,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LeoServer]]:
    """Start a LEO server: `start_server(workers=1, gunicorn=False, upstream=None, **env)`."""
    servers: list[LeoServer] = []
    logs = tmp_path_factory.mktemp("servers")

    def start(workers: int = 1, gunicorn: bool = False, upstream: str | None = None, **extra: str) -> LeoServer:
        port = free_port()
        env = server_env(upstream or fake_upstream.url, **extra)
        if gunicorn:
            cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                   "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "leo_optima.asgi:application"]
        else:
            cmd = [sys.executable, "-m", "uvicorn", "leo_optima.asgi:application", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers), "--no-access-log", "--lifespan", "on"]
        log_path = logs / f"server-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        server = LeoServer(f"http://127.0.0.1:{port}", proc, log_path, env)
        servers.append(server)
        try:
            wait_http(server.url + "/healthz", 90, proc)
        except Exception:
            server.stop()
            raise RuntimeError(f"LEO server failed to start:\n{server.log()[-4000:]}") from None
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def leo_server(start_server: Callable[..., LeoServer]) -> LeoServer:
    """One shared uvicorn server for the session."""
    return start_server()


@dataclass
class TenantKit:
    """A tenant with an owner, a key, and an openai client for it."""

    tenant: Any
    owner: Any
    key: str
    api_key: Any
    base_url: str

    def client(self, **kwargs: Any) -> Any:
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30)
        return openai.OpenAI(base_url=self.base_url, api_key=self.key, **kwargs)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url.removesuffix("/v1"), timeout=30,
                            headers={"Authorization": f"Bearer {self.key}"})


def seed_prices() -> None:
    from optimizer import prices_seed
    from optimizer.models import ModelPrice

    prices_seed.seed(ModelPrice)


@pytest.fixture
def make_tenant(transactional_db: None, leo_server: LeoServer) -> Iterator[Callable[..., TenantKit]]:
    """Create tenants (with committed rows, visible to the server): `make_tenant(name, **fields)`."""
    from tenants.models import ApiKey, Membership, Role, Tenant, User

    seed_prices()

    def make(name: str = "Acme", server: LeoServer | None = None, **fields: Any) -> TenantKit:
        tid = next(_tenant_ids)
        tenant = Tenant.objects.create(id=tid, name=f"{name} {tid}", slug=f"{name.lower()}-{tid}", **fields)
        owner = User.objects.create_user(f"owner-{tid}@example.com", "pw-owner-123!")
        Membership.objects.create(user=owner, tenant=tenant, role=Role.OWNER)
        api_key, plaintext = ApiKey.issue(tenant, name="test")
        return TenantKit(tenant, owner, plaintext, api_key, (server or leo_server).v1)

    yield make
    # Servers write ledger rows behind; a flush (TRUNCATE on PostgreSQL) racing them can deadlock.
    from tests.writes_settled import wait_settled

    wait_settled()


@pytest.fixture
def kit(make_tenant: Callable[..., TenantKit]) -> TenantKit:
    return make_tenant()


def wait_for_rows(model: Any, count: int, timeout: float = 30.0, **filters: Any) -> list[Any]:
    """Ledger rows are written behind (within ~50 ms); wait until `count` rows match."""
    deadline = time.monotonic() + timeout
    while True:
        rows = list(model.objects.filter(**filters))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)
