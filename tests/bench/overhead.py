"""Latency LEO adds over calling its upstream directly, under gunicorn with uvicorn workers.

    python -m tests.bench.overhead [--concurrency 1 16 128] [--seconds 10] [--workers 2]
                                   [--semantic on|off] [--upstream fake|URL]

What it does, all on loopback:
1. starts the fake upstream (`manage.py fake_upstream`, one process) unless `--upstream URL` names
   another OpenAI-compatible mock (e.g. ../shared/bench/peer-overhead's nginx mock, which is never
   the bottleneck: `run.sh mock`, then `--upstream http://127.0.0.1:18080/v1`);
2. creates a scratch SQLite database (or uses DATABASE_URL / REDIS_URL when set), a tenant and a key;
3. starts LEO under gunicorn with `--workers` uvicorn workers (deploy/gunicorn.conf.py);
4. runs wrk (unique prompt per request, so every request is a cache miss and really goes upstream)
   at each concurrency, straight at the upstream and through LEO, and prints req/s, p50, p99 and
   the added p50/p99 (LEO minus direct at the same concurrency);
5. measures streams: time to first byte, direct and through LEO, with an asyncio httpx client.

By default the tenant's semantic cache is off (`--semantic off`): every unique prompt would pay for
an embedding (about 6 ms of CPU on this machine), which is the price of semantic hits, measured on
its own by tests/bench/cache_speed.py; `--semantic on` measures the full pipeline.
Targets (issue 2): at 16 concurrent, added p50 <= 3 ms and p99 <= 15 ms; 128 concurrent streams
with no errors. Closed-loop load: at 16 and 128 connections the rows measure capacity (latency is
about connections / req/s), so compare req/s too (../shared/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LUA = Path(__file__).with_name("wrk_chat.lua")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, key: str, conc: int, seconds: int, stream: bool = False) -> dict[str, float]:
    threads = min(2, conc)
    env = {**os.environ, "KEY": key, "STREAM": "1" if stream else "0"}
    subprocess.run(["wrk", f"-t{threads}", f"-c{conc}", "-d2s", "--timeout", "30s", "-s", str(LUA), url],
                   env=env, capture_output=True, check=True)  # warm-up
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conc}", f"-d{seconds}s", "--timeout", "30s", "--latency",
                          "-s", str(LUA), url], env=env, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("OVH "))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


async def ttfb(url: str, key: str, conc: int, total: int) -> tuple[list[float], int]:
    """Time to first byte of streamed chat completions; returns (ttfbs in ms, errors)."""
    times: list[float] = []
    errors = 0
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one_worker(wid: int) -> None:
            nonlocal errors
            for n in counter:
                body = {"model": "gpt-4o-mini", "stream": True,
                        "messages": [{"role": "user", "content": f"Stream hello {secrets.token_hex(6)} {wid}-{n}"}]}
                started = time.perf_counter()
                try:
                    async with client.stream("POST", url, json=body,
                                             headers={"Authorization": f"Bearer {key}"}) as r:
                        first = None
                        async for chunk in r.aiter_bytes():
                            if first is None and chunk:
                                first = time.perf_counter()
                        if r.status_code != 200 or first is None:
                            errors += 1
                        else:
                            times.append((first - started) * 1000)
                except httpx.HTTPError:
                    errors += 1

        await asyncio.gather(*[one_worker(i) for i in range(conc)])
    return times, errors


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 128])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--semantic", choices=["on", "off"], default="off")
    ap.add_argument("--upstream", default="fake")
    ap.add_argument("--stream-requests", type=int, default=400)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="leo-overhead-"))
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leo_optima.settings.local", "DJANGO_DEBUG": "false",
           "HF_HUB_OFFLINE": "1", "LEO_LOG_LEVEL": "WARNING", "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom")}
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}")
    for name in ("DJANGO_SECRET_KEY", "LEO_KEY_PEPPER"):
        env.setdefault(name, secrets.token_urlsafe(32))
    if "LEO_ENCRYPTION_KEYS" not in env:
        from cryptography.fernet import Fernet

        env["LEO_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()

    def start(cmd: list[str], log: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(tmp / log, "wb"), stderr=subprocess.STDOUT,
                             start_new_session=True)
        procs.append(p)
        return p

    try:
        if args.upstream == "fake":
            up_port = free_port()
            start([sys.executable, "manage.py", "fake_upstream", "--port", str(up_port)], "upstream.log")
            upstream = f"http://127.0.0.1:{up_port}/v1"
            wait(f"http://127.0.0.1:{up_port}/_stats")
        else:
            upstream = args.upstream.rstrip("/")
        env["LEO_UPSTREAM_URL"] = upstream
        env["LEO_UPSTREAM_API_KEY"] = "sk-bench"
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        script = (
            "from tenants.models import Tenant, ApiKey; from optimizer.models import OptimizerSettings;"
            "t = Tenant.create('bench');"
            f"OptimizerSettings.objects.create(tenant=t, semantic_cache={args.semantic == 'on'}, decomposition=False);"
            "print(ApiKey.issue(t, name='bench')[1])"
        )
        key = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        port = free_port()
        (tmp / "prom").mkdir(exist_ok=True)
        start([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", str(args.workers), "leo_optima.asgi:application"], "leo.log")
        leo = f"http://127.0.0.1:{port}"
        wait(leo + "/healthz")
        time.sleep(3 if args.semantic == "off" else 15)  # workers load the embedding model at start

        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, {args.workers} gunicorn workers, "
              f"semantic={args.semantic}, upstream={'fake' if args.upstream == 'fake' else upstream}, "
              f"db={env['DATABASE_URL'].split(':')[0]}, {args.seconds}s per run")
        print(f"{'target':8} {'conc':>5} {'req/s':>9} {'p50_ms':>8} {'p99_ms':>8} {'non2xx':>7} {'+p50_ms':>8} "
              f"{'+p99_ms':>8}")
        for conc in args.concurrency:
            direct = wrk(upstream + "/chat/completions", "sk-bench", conc, args.seconds)
            via = wrk(leo + "/v1/chat/completions", key, conc, args.seconds)
            for name, r in (("direct", direct), ("leo", via)):
                added = name == "leo"
                print(f"{name:8} {conc:5d} {r['rps']:9.1f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} "
                      f"{int(r['non2xx'] + r['sockerr']):7d} "
                      f"{(r['p50_ms'] - direct['p50_ms']) if added else float('nan'):8.3f} "
                      f"{(r['p99_ms'] - direct['p99_ms']) if added else float('nan'):8.3f}")
        print("\nstreams: time to first byte (ms)")
        print(f"{'target':8} {'conc':>5} {'n':>6} {'errors':>7} {'p50':>8} {'p99':>8} {'+p50':>8} {'+p99':>8}")
        for conc in args.concurrency:
            total = max(args.stream_requests, conc * 3)
            d, d_err = asyncio.run(ttfb(upstream + "/chat/completions", "sk-bench", conc, total))
            v, v_err = asyncio.run(ttfb(leo + "/v1/chat/completions", key, conc, total))
            print(f"{'direct':8} {conc:5d} {len(d):6d} {d_err:7d} {pct(d, 50):8.2f} {pct(d, 99):8.2f}")
            print(f"{'leo':8} {conc:5d} {len(v):6d} {v_err:7d} {pct(v, 50):8.2f} {pct(v, 99):8.2f} "
                  f"{pct(v, 50) - pct(d, 50):8.2f} {pct(v, 99) - pct(d, 99):8.2f}")
        print(f"\n# logs in {tmp}")
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
