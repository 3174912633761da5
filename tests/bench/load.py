"""Load: 10,000 requests at 200 concurrent through gunicorn (2 uvicorn workers) on PostgreSQL and Redis.

    python -m tests.bench.load [--requests 10000] [--concurrency 200] [--stream-share 0.5]
                               [--repeat-share 0.4] [--semantic]

Uses DATABASE_URL / REDIS_URL when given (the database must be migrated or migratable), otherwise
starts a private PostgreSQL cluster (initdb, as the `postgres` user when run as root) and a private
redis-server on spare ports, and removes them afterwards. The fake upstream runs as its own process.

Checks, each printed with its figure (exit status 1 if any fails):
- no 5xx from LEO and no transport errors;
- ledger rows == requests sent (none lost), all for this run's tenant;
- ledger prompt/completion token sums == the fake upstream's own counts, exactly (cache hits record
  zero upstream tokens, so the sums compare one to one);
- each worker's RSS grows by <= 10% between the 5,000th and the 10,000th request;
- no LEO key or provider key (exact values, and anything shaped like one) in any captured log.

The mix: `stream-share` of requests stream; `repeat-share` repeat an earlier question (exact-cache
hits, or single-flight followers when the first is still in flight). The semantic cache is off unless
`--semantic` (it adds an embedding per miss, which on a shared 2-core box measures the CPU rather
than the gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
LEO_KEY = re.compile(r"leo_(?=[A-Za-z0-9_\-]*[0-9A-Z])[A-Za-z0-9_\-]{30,}")
SK_KEY = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


# --- services -----------------------------------------------------------------------------------

class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        found = shutil.which("pg_ctl") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))), None)
        if not found:
            raise SystemExit("no DATABASE_URL and no PostgreSQL binaries (pg_ctl, initdb) to start one")
        self.bin = Path(found).parent
        self.root = root
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/leo"

    def _run(self, *args: str) -> None:
        cmd = " ".join([str(self.bin / args[0]), *args[1:]])
        if os.geteuid() == 0:
            subprocess.run(["su", "postgres", "-c", cmd], check=True, capture_output=True, timeout=120)
        else:
            subprocess.run(cmd, shell=True, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres")
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "pg.log"), "-w", "start", "-o",
                  f"'-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                  f"-c fsync=off -c synchronous_commit=off'")
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE leo")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-w", "stop", "-m", "fast")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(self.root)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


_PREPARE = """
import django, sys
django.setup()
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
if sys.argv[1] == "syncdb":
    # A fresh private database: tables straight from the models (all migrations take minutes).
    settings.MIGRATION_MODULES = {a.label: None for a in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
else:
    call_command("migrate", verbosity=0, interactive=False)
from optimizer import prices_seed
from optimizer.models import ModelPrice, OptimizerSettings
from tenants.models import ApiKey, Tenant
prices_seed.seed(ModelPrice)
tenant = Tenant.objects.create(name="Load", slug="load-" + sys.argv[2])
OptimizerSettings.objects.update_or_create(tenant=tenant, defaults={"semantic_cache": sys.argv[3] == "1"})
print(tenant.pk)
print(ApiKey.issue(tenant, name="load")[1])
"""


# --- the run ------------------------------------------------------------------------------------

def worker_pids(master: int) -> list[int]:
    try:
        return sorted(int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split())
    except OSError:
        return []


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Load:
    def __init__(self, args: argparse.Namespace, base_url: str, key: str, master: int) -> None:
        self.args = args
        self.base_url = base_url
        self.key = key
        self.master = master
        self.statuses: Counter[int] = Counter()
        self.cache: Counter[str] = Counter()
        self.transport_errors: Counter[str] = Counter()
        self.incomplete_streams = 0
        self.request_ids: set[str] = set()
        self.done = 0
        self.memory: dict[int, dict[int, int]] = {}  # completed count -> pid -> RSS KiB
        self.latencies: list[float] = []

    def plan(self) -> list[tuple[str, bool]]:
        rng = random.Random(7)
        asked: list[str] = []
        out = []
        for i in range(self.args.requests):
            if asked and rng.random() < self.args.repeat_share:
                q = rng.choice(asked[-500:])
            else:
                q = f"Load question {i}: what is the weather like on moon {uuid.uuid4().hex[:12]}?"
                asked.append(q)
            out.append((q, rng.random() < self.args.stream_share))
        return out

    def _snapshot(self) -> None:
        if self.done in (self.args.requests // 2, self.args.requests):
            self.memory[self.done] = {pid: rss_kib(pid) for pid in worker_pids(self.master)}

    async def one(self, http: httpx.AsyncClient, q: str, stream: bool) -> None:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}], "stream": stream}
        started = time.perf_counter()
        try:
            if stream:
                async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                    lines = [line async for line in r.aiter_lines() if line.startswith("data:")]
                    if r.status_code == 200 and (not lines or lines[-1].strip() != "data: [DONE]"):
                        self.incomplete_streams += 1
            else:
                r = await http.post("/v1/chat/completions", json=body)
            self.statuses[r.status_code] += 1
            self.cache[r.headers.get("x-leo-cache", "?")] += 1
            self.request_ids.add(r.headers.get("x-leo-request-id", ""))
        except httpx.HTTPError as exc:
            self.transport_errors[type(exc).__name__] += 1
        self.latencies.append(time.perf_counter() - started)
        self.done += 1
        self._snapshot()

    async def run(self) -> float:
        work = self.plan()
        queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        for item in work:
            queue.put_nowait(item)
        limits = httpx.Limits(max_connections=self.args.concurrency, max_keepalive_connections=self.args.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=120,
                                     headers={"Authorization": f"Bearer {self.key}"}) as http:
            async def worker() -> None:
                while not queue.empty():
                    q, stream = queue.get_nowait()
                    await self.one(http, q, stream)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))
            return time.perf_counter() - started


def ledger(database_url: str, tenant_id: int) -> tuple[int, int, int, Counter[str], set[str]]:
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
        rows = conn.execute("SELECT request_id, prompt_tokens, completion_tokens, technique, status_code "
                            "FROM optimizer_requestlog WHERE tenant_id = %s", (tenant_id,)).fetchall()
    techniques = Counter(r[3] for r in rows)
    return len(rows), sum(r[1] for r in rows), sum(r[2] for r in rows), techniques, {r[0] for r in rows}


def main() -> int:  # noqa: C901 - one linear script: set up, run, check, report
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--stream-share", type=float, default=0.5)
    parser.add_argument("--repeat-share", type=float, default=0.4)
    parser.add_argument("--semantic", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="leo-load-"))
    os.chmod(work, 0o755)
    cleanups: list[Any] = []
    procs: list[subprocess.Popen[bytes]] = []  # the fake upstream, then gunicorn (its own process group)
    try:
        database_url = os.environ.get("DATABASE_URL", "")
        redis_url = os.environ.get("REDIS_URL", "")
        mode = "migrate"
        if not database_url:
            pg = PrivatePostgres(work / "pg")
            cleanups.append(pg.stop)  # registered first: a half-started cluster is stopped too
            pg.start()
            database_url, mode = pg.url, "syncdb"
        if not redis_url:
            rd = PrivateRedis(work / "redis")
            cleanups.append(rd.stop)
            rd.start()
            redis_url = rd.url
        upstream_key = "sk-load-upstream-" + secrets.token_urlsafe(24)
        from cryptography.fernet import Fernet

        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leo_optima.settings.local", "DJANGO_DEBUG": "false",
               "DATABASE_URL": database_url, "REDIS_URL": redis_url, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
               "LEO_KEY_PEPPER": secrets.token_urlsafe(32), "LEO_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
               "LEO_UPSTREAM_API_KEY": upstream_key, "LEO_PRELOAD_EMBEDDER": "true" if args.semantic else "false",
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
               "LEO_DB_POOL_SIZE": "20", "PROMETHEUS_MULTIPROC_DIR": str(work / "prom")}
        (work / "prom").mkdir()

        print(f"== preparing database ({mode})", flush=True)
        out = subprocess.run([sys.executable, "-c", _PREPARE, mode, uuid.uuid4().hex[:8],
                              "1" if args.semantic else "0"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=900, check=True).stdout.strip().splitlines()
        tenant_id, key = int(out[-2]), out[-1]

        up_port = free_port()
        up_log = open(work / "upstream.log", "wb")
        up = subprocess.Popen([sys.executable, "-m", "fake_upstream", "--port", str(up_port)], cwd=ROOT,
                              env=env, stdout=up_log, stderr=subprocess.STDOUT)
        procs.append(up)
        wait_http(f"http://127.0.0.1:{up_port}/_stats", 30, up)
        env["LEO_UPSTREAM_URL"] = f"http://127.0.0.1:{up_port}/v1"

        port = free_port()
        leo_log = open(work / "leo.log", "wb")
        leo = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                                "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
                                "leo_optima.asgi:application"], cwd=ROOT, env=env, stdout=leo_log,
                               stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(leo)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz", 120, leo)
        pids_before = worker_pids(leo.pid)

        print(f"== load: {args.requests} requests, {args.concurrency} concurrent, "
              f"{args.stream_share:.0%} streamed, {args.repeat_share:.0%} repeated", flush=True)
        load = Load(args, base, key, leo.pid)
        elapsed = asyncio.run(load.run())

        # Ledger: written behind; give it time to land.
        deadline = time.monotonic() + 120
        while True:
            rows, prompt, completion, techniques, ids = ledger(database_url, tenant_id)
            if rows >= args.requests or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        stats = httpx.get(f"http://127.0.0.1:{up_port}/_stats", timeout=10).json()

        os.killpg(leo.pid, signal.SIGTERM)
        leo.wait(60)
        up.send_signal(signal.SIGINT)
        up.wait(30)
        leo_log.close()
        up_log.close()
        logs = (work / "leo.log").read_text(errors="replace") + (work / "upstream.log").read_text(errors="replace")
        leaks = [s for s in (key, upstream_key) if s in logs] + LEO_KEY.findall(logs) + SK_KEY.findall(logs)

        five_xx = sum(n for s, n in load.statuses.items() if s >= 500)
        lat = sorted(load.latencies)
        mem_half, mem_end = load.memory.get(args.requests // 2, {}), load.memory.get(args.requests, {})
        growth = {pid: (mem_end[pid] - mem_half[pid]) / mem_half[pid] for pid in mem_half if pid in mem_end}
        same_workers = set(mem_half) == set(mem_end) == set(pids_before)

        checks = {
            "no 5xx from LEO": five_xx == 0,
            "no transport errors": not load.transport_errors,
            "every stream ended with [DONE]": load.incomplete_streams == 0,
            "ledger rows == requests sent": rows == args.requests,
            "every response's request id is in the ledger": load.request_ids <= ids,
            "ledger prompt tokens == upstream's": prompt == stats["prompt_tokens"],
            "ledger completion tokens == upstream's": completion == stats["completion_tokens"],
            "each worker's RSS grew <= 10% (5k -> 10k)": bool(growth) and all(g <= 0.10 for g in growth.values()),
            "same worker processes throughout": same_workers,
            "no key in any log": not leaks,
        }
        print("\n== figures")
        print(f"requests sent          {args.requests} at concurrency {args.concurrency} in {elapsed:.1f}s "
              f"({args.requests / elapsed:.0f} req/s)")
        print(f"latency                p50 {lat[len(lat) // 2] * 1000:.0f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.0f} ms")
        print(f"statuses               {dict(sorted(load.statuses.items()))}  5xx: {five_xx}")
        print(f"X-LEO-Cache            {dict(load.cache.most_common())}")
        print(f"transport errors       {dict(load.transport_errors) or 0}; incomplete streams {load.incomplete_streams}")
        print(f"ledger rows            {rows} (lost: {args.requests - rows}); techniques {dict(techniques)}")
        print(f"tokens (ledger/upstr.) prompt {prompt}/{stats['prompt_tokens']}, "
              f"completion {completion}/{stats['completion_tokens']}; upstream requests {stats['requests']}")
        for pid in sorted(mem_half):
            print(f"worker {pid} RSS        {mem_half[pid] / 1024:.1f} MiB at {args.requests // 2}, "
                  f"{mem_end.get(pid, 0) / 1024:.1f} MiB at {args.requests} ({growth.get(pid, float('nan')):+.1%})")
        print(f"logs scanned           {len(logs.splitlines())} lines, keys found: {len(leaks)}")
        print("\n== checks")
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
        result = {"requests": args.requests, "concurrency": args.concurrency, "seconds": round(elapsed, 1),
                  "5xx": five_xx, "rows_lost": args.requests - rows, "checks": checks}
        print(json.dumps(result))
        return 0 if all(checks.values()) else 1
    finally:
        for i, p in enumerate(procs):
            if p.poll() is None:
                if i == 1:
                    os.killpg(p.pid, signal.SIGKILL)
                else:
                    p.kill()
                p.wait(10)
        for cleanup in reversed(cleanups):
            cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
