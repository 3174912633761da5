"""Faults: the upstream failing in every way the fake upstream can, clients going away, Redis stopped
and PostgreSQL restarted.

In each case the client gets the right OpenAI-style error (or the fallback provider's answer),
nothing partial is cached, and the ledger records what happened. The upstream faults run against
one LEO server with short timeouts (1.5 s read, one retry), so the suite stays fast; Redis and
PostgreSQL get private servers of their own, so stopping them disturbs no other test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fake_upstream import answer_tag
from optimizer.models import CacheEntry, OptimizerSettings, RequestLog
from tests.conftest import ROOT, LeoServer, TenantKit, free_port, wait_for_rows
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

READ_TIMEOUT = 1.5
_survived: list[str] = []


def question() -> str:
    return f"How many moons does planet {uuid.uuid4().hex[:10]} have?"


def TAG(q: str) -> str:  # noqa: N802
    """How the fake upstream's answer to `q` starts."""
    return f"ANSWER[{answer_tag(q)}]"


def chat(kit: TenantKit, q: str, **kwargs: Any) -> Any:
    """A chat call through the openai SDK; returns the raw response (headers + parsed body)."""
    return kit.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": q}], **kwargs)


def row_of(request_id: str) -> RequestLog:
    [row] = wait_for_rows(RequestLog, 1, request_id=request_id)
    return row


def not_cached(kit: TenantKit, *questions: str, settle: float = 0.3) -> bool:
    """None of `questions` has a cache entry, and every entry the tenant has is a complete answer."""
    time.sleep(settle)  # entries are written behind, like the ledger
    entries = list(CacheEntry.objects.filter(tenant=kit.tenant))
    complete = all(c.get("finish_reason") for e in entries for c in e.response.get("choices") or [{}])
    return complete and not any(q in e.request_text for e in entries for q in questions)


def quiet(kit: TenantKit) -> TenantKit:
    """Semantic cache off: these tests are about faults, not about loading the embedding model."""
    OptimizerSettings.objects.update_or_create(tenant=kit.tenant, defaults={"semantic_cache": False})
    return kit


@pytest.fixture(scope="module")
def fault_server(start_server: Callable[..., LeoServer]) -> LeoServer:
    return start_server(LEO_UPSTREAM_READ_TIMEOUT=str(READ_TIMEOUT), LEO_UPSTREAM_RETRIES="1",
                        LEO_UPSTREAM_CONNECT_TIMEOUT="1")


@pytest.fixture
def fkit(make_tenant: Callable[..., TenantKit], fault_server: LeoServer) -> TenantKit:
    return quiet(make_tenant("Faulty", server=fault_server))



def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


# --- upstream status errors ----------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 500, 503])
def test_upstream_errors_beyond_the_retries_reach_the_client_in_openais_form(fkit: TenantKit, fake_upstream: Any,
                                                                             status: int) -> None:
    fake_upstream.configure(fail_next=5, error_status=status, retry_after=0)
    q = question()
    expected_exc = openai.RateLimitError if status == 429 else openai.InternalServerError
    with pytest.raises(expected_exc) as caught:
        chat(fkit, q)
    error = error_of(caught.value)
    rid = caught.value.response.headers["x-leo-request-id"]
    if status == 429:
        assert caught.value.status_code == 429 and error["message"]  # the upstream's own 429 envelope, passed on
        assert "retry-after" in caught.value.response.headers
    else:
        assert caught.value.status_code == 502 and error["code"] == f"http_{status}"
    assert fake_upstream.stats()["errors"] == 2  # the first attempt and LEO's one retry
    row = row_of(rid)
    assert row.status_code == caught.value.status_code and row.upstream_calls == 1
    assert not_cached(fkit, q)
    # The failure was not cached: the same question goes upstream again and is answered.
    fake_upstream.reset()
    ok = chat(fkit, q)
    assert ok.headers["x-leo-cache"] == "miss"
    assert ok.parse().choices[0].message.content.startswith(TAG(q))
    assert fake_upstream.stats()["chat"] == 1
    _survived.append(f"upstream {status}")


def test_a_transient_upstream_error_is_retried_invisibly(fkit: TenantKit, fake_upstream: Any) -> None:
    fake_upstream.configure(fail_next=1, error_status=503)
    raw = chat(fkit, question())
    assert raw.http_response.status_code == 200
    assert fake_upstream.stats()["by_status"] == {"503": 1, "200": 1}
    row = row_of(raw.headers["x-leo-request-id"])
    assert row.status_code == 200 and row.prompt_tokens == fake_upstream.stats()["prompt_tokens"]
    _survived.append("transient 503 (retried)")


# --- transport faults ----------------------------------------------------------------------------

def test_connection_resets(fkit: TenantKit, fake_upstream: Any) -> None:
    fake_upstream.configure(reset_next=1)
    raw = chat(fkit, question())  # one reset, retried
    assert raw.http_response.status_code == 200 and fake_upstream.stats()["resets"] == 1
    fake_upstream.reset()
    fake_upstream.configure(reset_connection=True)
    with pytest.raises(openai.InternalServerError) as caught:
        chat(fkit, failed := question())
    assert caught.value.status_code == 502 and error_of(caught.value)["type"] == "upstream_error"
    row = row_of(caught.value.response.headers["x-leo-request-id"])
    assert row.status_code == 502 and row.error_code in ("protocol", "connect")
    assert not_cached(fkit, failed)
    _survived.append("connection reset")


def test_timeouts_and_slow_first_bytes(fkit: TenantKit, fake_upstream: Any) -> None:
    fake_upstream.configure(latency_ms=300)  # slow, within the read timeout: answered
    assert chat(fkit, question()).http_response.status_code == 200
    fake_upstream.configure(latency_ms=int(READ_TIMEOUT * 1000) + 1500)  # slower than LEO waits
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        chat(fkit, q1 := question())
    assert caught.value.status_code == 504 and error_of(caught.value)["code"] == "timeout"
    assert time.monotonic() - started < READ_TIMEOUT + 5  # timeouts are not retried
    # The same for a stream: nothing was sent yet, so the client gets a plain JSON 504.
    with pytest.raises(openai.APIStatusError) as caught_stream:
        list(fkit.client().chat.completions.create(model="gpt-4o-mini", stream=True,
                                                   messages=[{"role": "user", "content": (q2 := question())}]))
    assert caught_stream.value.status_code == 504
    fake_upstream.reset()
    fake_upstream.configure(hang=True)
    with pytest.raises(openai.APIStatusError) as hung:
        chat(fkit, q3 := question())
    assert hung.value.status_code == 504
    fake_upstream.reset()
    for exc in (caught.value, caught_stream.value, hung.value):
        row = row_of(exc.response.headers["x-leo-request-id"])
        assert row.status_code == 504 and row.error_code == "timeout"
    assert not_cached(fkit, q1, q2, q3)
    _survived.extend(["slow first byte", "upstream timeout (JSON and stream)", "hung upstream"])


# --- streams -------------------------------------------------------------------------------------

def test_a_stream_cut_half_way_ends_with_an_error_event_and_is_not_cached(fkit: TenantKit, fake_upstream: Any
                                                                         ) -> None:
    q = question()
    fake_upstream.configure(drop_after_chunks=3)
    got: list[Any] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in fkit.client().chat.completions.create(model="gpt-4o-mini", stream=True,
                                                           messages=[{"role": "user", "content": q}]):
            got.append(chunk)
    assert "stream" in str(caught.value.message).lower() or "upstream" in str(caught.value.message).lower()
    assert 1 <= len(got) <= 3  # what arrived before the cut, then the error event
    assert fake_upstream.stats()["dropped_streams"] == 1
    rows = wait_for_rows(RequestLog, 1, tenant=fkit.tenant, status_code=502)
    assert rows[0].error_code == "stream_cut" and rows[0].stream
    assert not_cached(fkit, q)
    fake_upstream.reset()
    again = chat(fkit, q)
    assert again.headers["x-leo-cache"] == "miss" and fake_upstream.stats()["chat"] == 1
    _survived.append("stream cut half-way")


def test_a_client_that_disconnects_mid_stream_is_recorded_and_nothing_is_cached(fkit: TenantKit,
                                                                                fake_upstream: Any) -> None:
    q = question()
    fake_upstream.configure(chunk_delay_ms=250)
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": q}]}
    with fkit.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        rid = response.headers["x-leo-request-id"]
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data:"):
                seen += 1
                if seen == 2:
                    break  # leave: closing the response drops the connection
    row = row_of(rid)
    assert row.status_code == 499 and row.error_code == "client_disconnected"
    assert not_cached(fkit, q, settle=1.0)
    fake_upstream.reset()
    assert chat(fkit, q).headers["x-leo-cache"] == "miss"
    _survived.append("client disconnect mid-stream")


# --- fallback provider ---------------------------------------------------------------------------

def test_a_failing_tenant_provider_falls_back_to_the_platform_upstream(fkit: TenantKit, fake_upstream: Any) -> None:
    from tenants.models import ProviderCredential

    dead = free_port()  # nothing listens here: connection refused
    cred = ProviderCredential(tenant=fkit.tenant, name="own", base_url=f"http://127.0.0.1:{dead}/v1",
                              model_names=["gpt-4o-mini"], priority=1)
    cred.set_key("sk-tenant-own-key-1234")
    cred.save()
    q = question()
    raw = chat(fkit, q)
    assert raw.parse().choices[0].message.content.startswith(TAG(q))
    assert raw.headers["x-leo-provider"] == "platform"
    row = row_of(raw.headers["x-leo-request-id"])
    assert row.status_code == 200 and row.provider == "platform" and row.upstream_calls == 2
    # Exclusive: no fallback, so the client gets the provider's failure.
    ProviderCredential.objects.filter(pk=cred.pk).update(exclusive=True)
    deadline = time.monotonic() + 15  # providers are cached per process for 5 s
    while time.monotonic() < deadline:
        try:
            chat(fkit, question())
        except openai.InternalServerError as exc:
            assert exc.status_code == 502 and error_of(exc)["code"] == "connect"
            break
        time.sleep(0.5)
    else:
        pytest.fail("an exclusive provider that refuses connections still answered")
    _survived.append("fallback provider")


# --- Redis stopped -------------------------------------------------------------------------------

class PrivateRedis:
    def __init__(self, port: int, workdir: Path) -> None:
        self.port, self.workdir = port, workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    r = PrivateRedis(free_port(), tmp_path)
    r.start()
    yield r
    r.stop()


def _wait_for_minute_room(seconds_needed: int = 20) -> None:
    """Per-minute limits reset at the minute: start where the whole check fits in one minute."""
    into = time.time() % 60
    if into > 60 - seconds_needed:
        time.sleep(60 - into + 0.5)


def test_redis_stopped_leo_keeps_serving_and_limits_fall_back(private_redis: PrivateRedis,
                                                              start_server: Callable[..., LeoServer],
                                                              make_tenant: Callable[..., TenantKit],
                                                              fake_upstream: Any) -> None:
    server = start_server(REDIS_URL=private_redis.url, LEO_UPSTREAM_RETRIES="1", LEO_TRUST_X_FORWARDED_FOR="true")
    kit = quiet(make_tenant("Redisless", server=server))
    q = question()
    assert chat(kit, q).headers["x-leo-cache"] == "miss"
    assert chat(kit, q).headers["x-leo-cache"] == "exact"  # served from Redis

    private_redis.stop()
    upstream_before = fake_upstream.stats()["chat"]
    raws = [chat(kit, q) for _ in range(3)]
    assert all(r.http_response.status_code == 200 for r in raws)
    assert all(r.headers["x-leo-cache"] == "miss" for r in raws)  # the cache is bypassed, not an error
    assert fake_upstream.stats()["chat"] == upstream_before + 3
    for r in raws:
        assert row_of(r.headers["x-leo-request-id"]).status_code == 200

    # Rate limits fall back to per-process counters: still enforced, never an open door.
    from tenants.models import Tenant

    limited = quiet(make_tenant("Limited", server=server))
    Tenant.objects.filter(pk=limited.tenant.pk).update(requests_per_minute=3)
    _wait_for_minute_room()
    statuses = []
    for _ in range(5):
        try:
            statuses.append(chat(limited, question()).http_response.status_code)
        except openai.RateLimitError as exc:
            assert error_of(exc)["code"] == "rate_limit_exceeded"
            statuses.append(exc.status_code)
    assert statuses == [200, 200, 200, 429, 429]

    # Bad-key throttling falls back to per-process counters too (it used to fail open).
    from tenants.auth import BAD_KEY_LIMIT_PER_MINUTE

    guesser = {"X-Forwarded-For": f"192.0.2.{uuid.uuid4().int % 250 + 1}"}
    with httpx.Client(base_url=server.url, timeout=30, headers=guesser) as http:
        codes = [http.get("/v1/models", headers={"Authorization": f"Bearer leo_{uuid.uuid4().hex}Zz{i:03d}"}
                          ).status_code for i in range(BAD_KEY_LIMIT_PER_MINUTE + 2)]
    assert codes[:BAD_KEY_LIMIT_PER_MINUTE] == [401] * BAD_KEY_LIMIT_PER_MINUTE and codes[-1] == 429

    private_redis.start()  # an empty Redis: LEO reconnects once its circuit breaker cools down
    deadline = time.monotonic() + 20
    q2 = question()
    while time.monotonic() < deadline:
        chat(kit, q2)
        if chat(kit, q2).headers["x-leo-cache"] == "exact":
            break
        time.sleep(0.5)
    else:
        pytest.fail("the exact cache did not come back with Redis")
    assert "Traceback" not in server.log()
    _survived.append("Redis stopped and restarted")


# --- PostgreSQL restarted ------------------------------------------------------------------------

def _pg_bin() -> Path | None:
    if os.environ.get("CI_PG_BIN"):
        return Path(os.environ["CI_PG_BIN"])
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return candidates[-1].parent if candidates else None


class PrivatePostgres:
    """A throwaway cluster on a spare port (run as the `postgres` user when we are root)."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin, self.root = bin_dir, root
        self.data = root / "data"
        self.port = free_port()

    def _run(self, *args: str) -> None:
        cmd = " ".join([str(self.bin / args[0]), *args[1:]])
        if os.geteuid() == 0:
            subprocess.run(["su", "postgres", "-c", cmd], check=True, capture_output=True, timeout=60)
        else:
            subprocess.run(cmd, shell=True, check=True, capture_output=True, timeout=60)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/leo"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE leo")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w", "start", "-o",
                  f"'-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off'")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "stop", "-m", "fast")


@pytest.fixture
def private_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    if not (os.environ.get("DATABASE_URL", "").startswith("postgres")):
        pytest.skip("PostgreSQL restart case runs in the PostgreSQL leg (DATABASE_URL=postgres://...)")
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    root = Path(f"/tmp/leo-pg-{uuid.uuid4().hex[:8]}")
    pg = PrivatePostgres(bin_dir, root)
    try:
        pg.init()
        yield pg
    finally:  # also when init fails half-way: never leave a cluster running
        try:
            pg.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(root, ignore_errors=True)


_PREPARE = """
import django
django.setup()
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
# Tables straight from the models, as pytest-django's --no-migrations does: running every migration
# (dj-stripe's are many) takes minutes on a loaded box.
settings.MIGRATION_MODULES = {a.label: None for a in apps.get_app_configs()}
call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
from optimizer import prices_seed
from optimizer.models import ModelPrice
from tenants.models import ApiKey, Tenant

prices_seed.seed(ModelPrice)
tenant = Tenant.objects.create(name="Restarted", slug="restarted")
print(ApiKey.issue(tenant, name="pg")[1])
"""


def _prepare(database_url: str) -> str:
    """Create the schema and a tenant in the private cluster; returns the tenant's key."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leo_optima.settings.test", "DATABASE_URL": database_url}
    env.pop("REDIS_URL", None)
    out = subprocess.run([sys.executable, "-c", _PREPARE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_postgresql_restart_gives_clean_503s_then_recovers(private_postgres: PrivatePostgres,
                                                           start_server: Callable[..., LeoServer],
                                                           fake_upstream: Any) -> None:
    import psycopg

    key = _prepare(private_postgres.url)
    server = start_server(DATABASE_URL=private_postgres.url, REDIS_URL="", LEO_DB_POOL_SIZE="4",
                          LEO_DB_POOL_TIMEOUT="1")
    client = openai.OpenAI(base_url=server.v1, api_key=key, max_retries=0, timeout=30)

    def ask() -> tuple[int, str]:
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": question()}])
            return 200, raw.headers["x-leo-request-id"]
        except openai.APIStatusError as exc:
            error = error_of(exc)
            assert exc.status_code == 503 and error["code"] == "database_unavailable", (exc.status_code, error)
            assert exc.response.headers.get("retry-after")
            return 503, exc.response.headers["x-leo-request-id"]

    assert ask()[0] == 200
    private_postgres.stop()
    outcomes = [ask() for _ in range(3)]
    time.sleep(2.5)  # past the key cache: authentication itself now needs the database
    outcomes += [ask() for _ in range(2)]
    assert outcomes[-1][0] == 503
    private_postgres.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, rid = ask()
        if status == 200:
            break
        time.sleep(0.5)
    else:
        pytest.fail("LEO did not recover after PostgreSQL came back")
    # Every answered request is in the ledger, including those answered while PostgreSQL was down
    # (the write-behind queue kept them and retried).
    answered = [rid for status, rid in outcomes if status == 200] + [rid]
    deadline = time.monotonic() + 20
    with psycopg.connect(f"host=127.0.0.1 port={private_postgres.port} user=postgres dbname=leo") as conn:
        while True:
            found = {r[0] for r in conn.execute("SELECT request_id FROM optimizer_requestlog WHERE request_id = ANY(%s)",
                                                (answered,))}
            if found == set(answered) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert found == set(answered)
    assert "Internal Server Error" not in server.log()
    _survived.append("PostgreSQL restart")


def test_zz_report(request: pytest.FixtureRequest) -> None:
    """Prints the faults survived in this run (collected last in this module)."""
    print(f"\nfaults survived: {len(_survived)}: {', '.join(_survived)}")
