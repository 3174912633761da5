"""LEO beside LiteLLM in one run: the latency each adds over an instant upstream, with the semantic
cache off and with a tenant's defaults (semantic cache on), plus RSS per web worker and 1,000
concurrent streams held on this machine.

    python -m tests.bench.peer_overhead [--conc 1 16] [--seconds 15] [--workers 2]
                                        [--rss-requests 10000] [--streams 1000] [--no-litellm]

Everything goes through ../shared/bench/peer-overhead/run.sh (the same nginx mock, the same wrk
script and the same LiteLLM install for every row), on loopback:

1. the nginx mock (`run.sh mock`), answering in about 0.06 ms;
2. a scratch database (SQLite, or DATABASE_URL / REDIS_URL when set) with two tenants: `off`
   (semantic cache and decomposition off) and `defaults` (no settings row: what a new tenant runs);
3. LEO under gunicorn (deploy/gunicorn.conf.py, `--workers` uvicorn workers, DEBUG off, worker
   recycling off so RSS growth shows);
4. wrk with unique prompts (`UNIQUE=1`: every request misses the exact cache; the semantic cache
   finds near neighbours and its verifier rejects them, so every lookup pays its full price) at
   each concurrency: direct, LiteLLM with as many workers (`run.sh litellm`), LEO off, LEO defaults;
5. the semantic stage's own time per request (median of the ledger trail's `semantic.ms`: embed,
   search, candidate fetch, verifier and judge), per concurrency;
6. more requests to the defaults tenant until `--rss-requests` went through LEO, then RSS and PSS
   (shared pages split between the processes that map them) of each worker;
7. LEO restarted in front of the fake upstream streaming slowly (`--chunk-delay-ms`), and
   `--streams` streamed requests opened at once: how many were open together, time to first byte,
   errors.

Ports are picked free; scratch files go to a temporary directory (printed). The machine is shared:
compare rows of one run only, and give the load average (printed) with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[2]


def peer_dir() -> Path:
    for base in (ROOT.parent, ROOT.parent.parent):
        candidate = base / "shared" / "bench" / "peer-overhead"
        if (candidate / "run.sh").exists():
            return candidate
    raise SystemExit("../shared/bench/peer-overhead/run.sh not found (set --peer-dir)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="leo-peer-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.peer = Path(args.peer_dir) if args.peer_dir else peer_dir()
        self.mock_port = free_port()
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leo_optima.settings.local", "DJANGO_DEBUG": "false",
                    "HF_HUB_OFFLINE": "1", "LEO_LOG_LEVEL": "WARNING",
                    "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prom"),
                    "GUNICORN_MAX_REQUESTS": "0", "LEO_UPSTREAM_API_KEY": "sk-mock-upstream",
                    "LEO_UPSTREAM_MAX_CONNECTIONS": str(max(512, args.streams + 64))}
        self.env.setdefault("DATABASE_URL", f"sqlite:///{self.tmp / 'bench.sqlite3'}")
        for name in ("DJANGO_SECRET_KEY", "LEO_KEY_PEPPER"):
            self.env.setdefault(name, secrets.token_urlsafe(32))
        if "LEO_ENCRYPTION_KEYS" not in self.env:
            from cryptography.fernet import Fernet

            self.env["LEO_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
        self.run_env = {**os.environ, "MOCK_PORT": str(self.mock_port), "OVH_TMP": str(self.tmp / "ovh"),
                        "LITELLM_PORT": str(free_port()),
                        "LITELLM_WORKERS": str(args.litellm_workers or args.workers),
                        "DUR": str(args.seconds), "UNIQUE": "1", "VENV": args.litellm_venv}
        self.leo: subprocess.Popen[bytes] | None = None
        self.leo_url = ""

    # -- processes -----------------------------------------------------------------------------

    def start(self, cmd: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env or self.env, stdout=open(self.tmp / log, "wb"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in reversed(list(self.procs)):
            self.stop(p)

    def manage(self, *args: str) -> str:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, check=True).stdout

    def start_leo(self, upstream: str) -> None:
        if self.leo is not None:
            self.stop(self.leo)
        env = {**self.env, "LEO_UPSTREAM_URL": upstream}
        port = free_port()
        (self.tmp / "prom").mkdir(exist_ok=True)
        self.leo = self.start([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind",
                               f"127.0.0.1:{port}", "--workers", str(self.args.workers),
                               "leo_optima.asgi:application"], f"leo-{port}.log", env)
        self.leo_url = f"http://127.0.0.1:{port}"
        wait(self.leo_url + "/healthz")
        # Every worker must have loaded the model and the replica before anything is measured.
        for _ in range(40):
            self.chat(self.keys["defaults"], f"warm up {secrets.token_hex(4)}")
        time.sleep(2)

    def chat(self, key: str, text: str) -> httpx.Response:
        r = httpx.post(self.leo_url + "/v1/chat/completions", timeout=120, headers={"Authorization": f"Bearer {key}"},
                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
        r.raise_for_status()
        return r

    def workers(self) -> list[int]:
        """The gunicorn workers: the children of the master (the process we started)."""
        assert self.leo is not None
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.leo.pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    # -- wrk through run.sh --------------------------------------------------------------------

    def run_sh(self, mode: list[str], conc: list[int], name: str, **extra: str) -> dict[int, dict[str, float]]:
        env = {**self.run_env, "CONC": " ".join(map(str, conc)), "NAME": name, **extra}
        out = subprocess.run([str(self.peer / "run.sh"), *mode], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"run.sh {mode[0]} failed: {out.stderr[-2000:]}")
        rows: dict[int, dict[str, float]] = {}
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) == 7 and parts[0] == name:
                c = int(parts[1])
                rows[c] = dict(zip(("rps", "p50", "p90", "p99", "non2xx"), map(float, parts[2:]), strict=True))
                raw = self.tmp / "ovh" / "results" / f"{name}-c{c}.txt"
                m = re.search(r"sockerr=(\d+)", raw.read_text()) if raw.exists() else None
                rows[c]["sockerr"] = float(m.group(1)) if m else 0.0
        return rows

    def ledger(self, tenant: str, since: float) -> dict[str, Any]:
        script = (
            "import json, statistics, datetime as d; from optimizer.models import RequestLog;"
            f"rows = list(RequestLog.objects.filter(tenant__name={tenant!r}, "
            f"created_at__gte=d.datetime.fromtimestamp({since}, d.timezone.utc)).values_list('trail', 'status_code'));"
            "ms = [s.get('ms') for t, _ in rows for s in (t or {}).get('stages', []) if s.get('stage') == 'semantic'];"
            "ms = [m for m in ms if m is not None];"
            "print(json.dumps({'n': len(rows), 'errors': sum(1 for _, c in rows if c >= 400 and c != 499),"
            " 'semantic_ms_p50': statistics.median(ms) if ms else None}))"
        )
        return json.loads(self.manage("shell", "-c", script).strip().splitlines()[-1])

    def total_requests(self) -> int:
        script = "from optimizer.models import RequestLog; print(RequestLog.objects.count())"
        return int(self.manage("shell", "-c", script).strip().splitlines()[-1])

    # -- phases --------------------------------------------------------------------------------

    def setup(self) -> None:
        self.start([str(self.peer / "run.sh"), "mock"], "mock.log", {**self.run_env})
        wait(f"http://127.0.0.1:{self.mock_port}/v1/models")
        self.manage("migrate", "-v", "0")
        script = (
            "from tenants.models import Tenant, ApiKey; from optimizer.models import OptimizerSettings;"
            "off = Tenant.create('off'); defaults = Tenant.create('defaults');"
            "OptimizerSettings.objects.create(tenant=off, semantic_cache=False, decomposition=False);"
            "print(ApiKey.issue(off, name='bench')[1], ApiKey.issue(defaults, name='bench')[1])"
        )
        off, defaults = self.manage("shell", "-c", script).strip().splitlines()[-1].split()
        self.keys = {"off": off, "defaults": defaults}
        self.start_leo(f"http://127.0.0.1:{self.mock_port}/v1")

    def overhead(self) -> None:
        a = self.args
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, load average {loadavg()}, "
              f"{a.workers} workers each, db={self.env['DATABASE_URL'].split(':')[0]}, {a.seconds}s per run, "
              f"unique prompts; scratch in {self.tmp}")
        rows: list[tuple[str, int, dict[str, float]]] = []
        direct = self.run_sh(["direct"], a.conc, "direct")
        rows += [("direct", c, direct[c]) for c in a.conc]
        if not a.no_litellm:
            name = f"litellm-w{a.litellm_workers or a.workers}"
            litellm = self.run_sh(["litellm"], a.conc, name)
            rows += [(name, c, litellm[c]) for c in a.conc]
        stage: dict[tuple[str, int], dict[str, Any]] = {}
        for tenant in ("off", "defaults"):
            for c in a.conc:
                since = time.time()
                r = self.run_sh(["target", self.leo_url, self.keys[tenant]], [c], f"leo-{tenant}")
                rows.append((f"leo-{tenant}", c, r[c]))
                time.sleep(1.5)  # the ledger is written behind
                stage[(tenant, c)] = self.ledger(tenant, since)
        litellm_rps = {c: r["rps"] for n, c, r in rows if n.startswith("litellm")}
        print(f"\n{'proxy':14} {'conc':>4} {'req/s':>8} {'p50_ms':>7} {'p99_ms':>8} {'errors':>6} {'+p50_ms':>8} "
              f"{'x litellm':>9}")
        for name, c, r in rows:
            added = r["p50"] - direct[c]["p50"] if name != "direct" else float("nan")
            ratio = r["rps"] / litellm_rps[c] if c in litellm_rps and name != "direct" else float("nan")
            print(f"{name:14} {c:4d} {r['rps']:8.1f} {r['p50']:7.2f} {r['p99']:8.2f} {int(r['non2xx'] + r['sockerr']):6d} "
                  f"{added:8.2f} {ratio:9.2f}")
        print(f"\nsemantic stage (ledger trail), load average {loadavg()}")
        # errors: ledger rows with a status >= 400, except 499 (wrk closing connections at the end of a run)
        print(f"{'tenant':9} {'conc':>4} {'requests':>8} {'errors':>6} {'semantic_ms_p50':>15}")
        for (tenant, c), s in stage.items():
            p50 = s["semantic_ms_p50"]
            print(f"{tenant:9} {c:4d} {s['n']:8d} {s['errors']:6d} {(p50 if p50 is not None else float('nan')):15.2f}")

    def rss(self) -> None:
        target = self.args.rss_requests
        done = self.total_requests()
        while done < target:
            seconds = max(3, min(30, int((target - done) / 300) + 1))
            self.run_sh(["target", self.leo_url, self.keys["defaults"]], [16], "leo-rss", DUR=str(seconds), WARM="0",
                        CHECK="0")
            time.sleep(1.5)
            done = self.total_requests()
        print(f"\nRSS per web worker after {done} requests through LEO ({len(self.workers())} workers), "
              f"load average {loadavg()}")
        for pid in self.workers():
            status = Path(f"/proc/{pid}/status").read_text()
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss = int(re.search(r"Pss:\s+(\d+)", rollup).group(1)) / 1024  # type: ignore[union-attr]
            print(f"  worker {pid}: RSS {rss:6.1f} MB, PSS {pss:6.1f} MB")

    def streams(self) -> None:
        a = self.args
        up_port = free_port()
        self.start([sys.executable, "manage.py", "fake_upstream", "--port", str(up_port), "--chunk-delay-ms",
                    str(a.chunk_delay_ms)], "fake-upstream.log")
        wait(f"http://127.0.0.1:{up_port}/_stats")
        self.start_leo(f"http://127.0.0.1:{up_port}/v1")
        result = asyncio.run(hold_streams(self.leo_url + "/v1/chat/completions", self.keys["defaults"], a.streams))
        print(f"\n{a.streams} concurrent streams through LEO (tenant defaults, upstream chunk delay "
              f"{a.chunk_delay_ms:g} ms), load average {loadavg()}")
        print(f"  completed {result['ok']}, errors {result['errors']}, open at once (peak) {result['peak']}, "
              f"time to first byte p50 {result['ttfb_p50']:.1f} ms p99 {result['ttfb_p99']:.1f} ms, "
              f"wall {result['wall']:.1f} s")
        for pid in self.workers():
            rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024  # type: ignore[union-attr]
            print(f"  worker {pid}: RSS {rss:6.1f} MB")


async def hold_streams(url: str, key: str, n: int) -> dict[str, Any]:
    """Open ``n`` streamed chat completions at once; count how many were open together."""
    open_now = peak = ok = errors = 0
    ttfb: list[float] = []
    started_all = time.perf_counter()
    barrier = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def one(i: int) -> None:
            nonlocal open_now, peak, ok, errors
            await barrier.wait()
            body = {"model": "gpt-4o-mini", "stream": True,
                    "messages": [{"role": "user", "content": f"Tell me a story number {i} {secrets.token_hex(4)}"}]}
            t0 = time.perf_counter()
            first = False
            try:
                async with session.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as r:
                    if r.status != 200:
                        errors += 1
                        return
                    tail = b""
                    async for chunk in r.content.iter_any():
                        if not first:
                            first = True
                            ttfb.append((time.perf_counter() - t0) * 1000)
                            open_now += 1
                            peak = max(peak, open_now)
                        tail = (tail + chunk)[-64:]
                    if b"[DONE]" in tail:
                        ok += 1
                    else:
                        errors += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1
            finally:
                if first:
                    open_now -= 1

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        barrier.set()
        await asyncio.gather(*tasks)
    ttfb.sort()
    pick = (lambda p: ttfb[min(len(ttfb) - 1, int(p * (len(ttfb) - 1)))]) if ttfb else (lambda p: float("nan"))
    return {"ok": ok, "errors": errors, "peak": peak, "ttfb_p50": pick(0.5), "ttfb_p99": pick(0.99),
            "wall": time.perf_counter() - started_all}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conc", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rss-requests", type=int, default=10000, help="requests through LEO before RSS is read")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--chunk-delay-ms", type=float, default=3000.0)
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--litellm-workers", type=int, default=None, help="default: --workers")
    ap.add_argument("--litellm-venv", default=os.environ.get("VENV", "/tmp/litellm-venv"))
    ap.add_argument("--peer-dir", default=None)
    ap.add_argument("--skip", nargs="*", default=[], choices=["overhead", "rss", "streams"])
    args = ap.parse_args()
    bench = Bench(args)
    try:
        bench.setup()
        if "overhead" not in args.skip:
            bench.overhead()
        if "rss" not in args.skip:
            bench.rss()
        if "streams" not in args.skip and args.streams:
            bench.streams()
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
