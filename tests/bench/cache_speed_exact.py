"""Cache speed, exact-hit and end-to-end parts (run through ``python -m tests.bench.cache_speed``).

    python -m tests.bench.cache_speed --parts exact e2e              # both parts below
    python -m tests.bench.cache_speed --parts exact --sizes 10000 100000 1000000 --lookups 5000
    python -m tests.bench.cache_speed --parts e2e --requests 1000 --queries 300

Two definitions of "the latency an exact hit adds", both printed:

1. In process (``exact_hit_latency``): the exact cache's own work for a hit, as the pipeline does
   it: ``exact_cache.lookup`` in the shared state (process memory, or Redis when ``REDIS_URL`` is
   set) holding N entries of one tenant, then building the answer (``fresh`` + JSON encoding, or
   the replayed SSE chunks for a stream). Memory per entry: the process RSS growth while filling
   the local store divided by N (with Redis: Redis' own ``used_memory`` growth), beside the stored
   value's size, which is the answer itself.
2. End to end (``end_to_end``): a LEO server (uvicorn, one worker; a scratch SQLite database, or
   ``DATABASE_URL`` / ``REDIS_URL`` when set) and the fake upstream as processes; one keep-alive
   httpx client times sequential requests. Added latency of an exact hit = its p50 minus the p50 of
   a bare round trip through the same API stack and key authentication (``GET /v1/models``) and
   minus ``GET /healthz`` (no authentication). A semantic hit (a GPTCache paraphrase of a stored
   question, each asked once so the embedding is computed every time) is timed the same way; the
   direct fake-upstream round trip is printed for scale.

Migrating a scratch SQLite database takes a minute or two on a loaded machine; set
``DATABASE_URL=sqlite:////path/to/migrated.sqlite3`` to reuse one (migrate is then a no-op).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
BENCH_TENANT = 987_654_321  # a tenant id no real tenant uses: the Redis keys are deleted afterwards


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leo_optima.settings.test")
    import django

    django.setup()


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 3)


def _answer(i: int) -> dict[str, Any]:
    """A realistic stored chat answer: the fake upstream's shape and length (20-40 words)."""
    from fake_upstream import answer_text

    content = answer_text(f"question {i}")
    return {"id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o-mini",
            "system_fingerprint": "fp_bench", "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                 "content": content},
                                                          "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 18, "completion_tokens": 36, "total_tokens": 54}}


@dataclass
class ExactRow:
    """In-process exact-hit figures for one store size."""

    store: str
    entries: int
    fill_s: float
    hit_p50_ms: float
    hit_p99_ms: float
    stream_hit_p50_ms: float
    value_bytes: int
    bytes_per_entry: float
    overhead_bytes: float  # bytes_per_entry - value_bytes: what the store adds to the answer itself


def exact_hit_latency(sizes: Sequence[int] = (10_000, 100_000, 1_000_000), lookups: int = 5000) -> list[ExactRow]:
    """Time exact hits (lookup + response build) with N entries of one tenant in the shared state."""
    _django()
    from optimizer.pipeline import exact_cache
    from optimizer.pipeline.responses import fresh, replay_as_stream
    from leo_optima.core.state import LocalState, RedisState, reset_state_for_tests

    redis_url = os.environ.get("REDIS_URL", "")
    rows: list[ExactRow] = []
    for n in sizes:
        state: Any = RedisState(redis_url) if redis_url else LocalState(max_items=n + 1000)
        reset_state_for_tests(state)
        keys = [f"{i:064x}" for i in range(n)]
        row = asyncio.run(_exact_one(state, keys, lookups, redis_url, exact_cache, fresh, replay_as_stream))
        rows.append(row)
        print_exact([row], header=len(rows) == 1)
        del state, keys
        reset_state_for_tests(None)
        gc.collect()
    return rows


async def _exact_one(state: Any, keys: list[str], lookups: int, redis_url: str, exact_cache: Any, fresh: Any,
                     replay_as_stream: Any) -> ExactRow:
    n = len(keys)
    sample = exact_cache.Cached(response=_answer(0), prompt_tokens=18, completion_tokens=36,
                                request_text="question 0", key_hash=keys[0]).dumps()
    gc.collect()
    rss0 = _rss()
    redis_mem0 = await _redis_memory(redis_url)
    t0 = time.perf_counter()
    if redis_url:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_url)
        for start in range(0, n, 5000):
            async with client.pipeline(transaction=False) as pipe:
                for i in range(start, min(n, start + 5000)):
                    cached = exact_cache.Cached(response=_answer(i), prompt_tokens=18, completion_tokens=36,
                                                request_text=f"question {i}", key_hash=keys[i])
                    pipe.set(exact_cache.kv_key(BENCH_TENANT, keys[i]), cached.dumps(), px=3_600_000)
                await pipe.execute()
    else:
        for i in range(n):
            cached = exact_cache.Cached(response=_answer(i), prompt_tokens=18, completion_tokens=36,
                                        request_text=f"question {i}", key_hash=keys[i])
            await state.set(exact_cache.kv_key(BENCH_TENANT, keys[i]), cached.dumps(), 3600)
    fill_s = time.perf_counter() - t0
    gc.collect()
    per_entry = ((await _redis_memory(redis_url)) - redis_mem0) / n if redis_url else (_rss() - rss0) / n

    rng = random.Random(0)
    json_times, stream_times = [], []
    for j in range(lookups + 200):
        key = keys[rng.randrange(n)]
        t = time.perf_counter()
        hit = await exact_cache.lookup(BENCH_TENANT, key)
        assert hit is not None, "every looked-up key was stored"
        if j % 2:
            body = json.dumps(fresh(hit.response, "chatcmpl-req_bench")).encode()
            assert body
            if j >= 200:
                json_times.append(time.perf_counter() - t)
        else:
            chunks = replay_as_stream(fresh(hit.response, "chatcmpl-req_bench"), True)
            assert len(chunks) > 3
            if j >= 200:
                stream_times.append(time.perf_counter() - t)
    if redis_url:
        await _redis_cleanup(redis_url)
    return ExactRow(store="redis" if redis_url else "local", entries=n, fill_s=round(fill_s, 1),
                    hit_p50_ms=_ms(json_times, 50), hit_p99_ms=_ms(json_times, 99),
                    stream_hit_p50_ms=_ms(stream_times, 50), value_bytes=len(sample),
                    bytes_per_entry=round(per_entry, 1), overhead_bytes=round(per_entry - len(sample), 1))


async def _redis_memory(url: str) -> int:
    if not url:
        return 0
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


async def _redis_cleanup(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"leo:c:{BENCH_TENANT}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


def print_exact(rows: Sequence[ExactRow], header: bool = True) -> None:
    if not rows:
        return
    if header:
        print("## exact hit, in process (shared-state lookup + response build)")
        print(" ".join(f"{c:>18}" for c in asdict(rows[0])))
    for r in rows:
        print(" ".join(f"{v!s:>18}" for v in asdict(r).values()), flush=True)


# --- end to end ----------------------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def _timed(fn: Any, n: int, warm: int = 50) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _interleaved(fns: list[Any], n: int, warm: int = 50) -> list[list[float]]:
    """Time each function n times, taking turns (one call of each per round)."""
    out: list[list[float]] = [[] for _ in fns]
    for i in range(warm + n):
        for fn, times in zip(fns, out):
            t = time.perf_counter()
            fn()
            if i >= warm:
                times.append(time.perf_counter() - t)
    return out


def end_to_end(requests: int = 1000, paraphrases: int = 300) -> dict[str, Any]:
    """Start the fake upstream and a LEO server, then time hits against bare round trips."""
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="leo-cache-speed-"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leo_optima.settings.local", "DJANGO_DEBUG": "false",
           "HF_HUB_OFFLINE": "1", "LEO_LOG_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}")
    for name in ("DJANGO_SECRET_KEY", "LEO_KEY_PEPPER"):
        env.setdefault(name, secrets.token_urlsafe(32))
    if "LEO_ENCRYPTION_KEYS" not in env:
        from cryptography.fernet import Fernet

        env["LEO_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    procs: list[subprocess.Popen[bytes]] = []

    def start(cmd: list[str], log: str) -> None:
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(tmp / log, "wb"),
                                      stderr=subprocess.STDOUT, start_new_session=True))

    try:
        up_port = _free_port()
        start([sys.executable, "-m", "fake_upstream", "--port", str(up_port)], "upstream.log")
        upstream = f"http://127.0.0.1:{up_port}/v1"
        env.update(LEO_UPSTREAM_URL=upstream, LEO_UPSTREAM_API_KEY="sk-bench")
        _wait(f"http://127.0.0.1:{up_port}/_stats")
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        script = ("from tenants.models import Tenant, ApiKey; from optimizer.models import OptimizerSettings;"
                  f"t = Tenant.create('cache-speed-{secrets.token_hex(3)}');"
                  "OptimizerSettings.objects.create(tenant=t, decomposition=False, prompt_mode='off');"
                  "print(ApiKey.issue(t, name='bench')[1])")
        key = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        port = _free_port()
        start([sys.executable, "-m", "uvicorn", "leo_optima.asgi:application", "--host", "127.0.0.1", "--port",
               str(port), "--no-access-log", "--log-level", "warning"], "leo.log")
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/healthz")
        return _measure(httpx, base, upstream, key, requests, paraphrases) | {"logs": str(tmp)}
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)


def _measure(httpx: Any, base: str, upstream: str, key: str, requests: int, paraphrases: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {key}"}
    pairs = json.loads((SHARED / "paraphrase_pairs_gptcache.json").read_text())
    with httpx.Client(base_url=base, headers=auth, timeout=120) as http, httpx.Client(timeout=30) as direct:
        def chat(text: str, **headers: str) -> httpx.Response:
            r = http.post("/v1/chat/completions", headers=headers,
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
            r.raise_for_status()
            return r

        # The first semantic lookup loads the embedding model (unless the server preloaded it).
        chat("warm up the embedder", **{"Cache-Control": "no-store"})
        question = "What is the boiling point of water at sea level in Celsius?"
        assert chat(question).headers["x-leo-cache"] in ("miss", "exact")
        assert chat(question).headers["x-leo-cache"] == "exact"
        # Interleaved, so a burst of load from elsewhere on the machine hits all three alike.
        healthz, models, exact = _interleaved([lambda: http.get("/healthz").raise_for_status(),
                                               lambda: http.get("/v1/models").raise_for_status(),
                                               lambda: chat(question)], requests)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "direct " + question}]}
        up = _timed(lambda: direct.post(upstream + "/chat/completions", json=body,
                                        headers={"Authorization": "Bearer sk-bench"}).raise_for_status(), requests)

        # Semantic: store each origin (misses), then ask each paraphrase once (fresh embedding each).
        chosen = [p for p in pairs if p["origin"] != p["similar"]][:paraphrases]
        for p in chosen:
            chat(p["origin"])
        time.sleep(1.0)  # the worker's replica refreshes every 0.3 s
        semantic, missed = [], 0
        for p in chosen:
            t = time.perf_counter()
            r = chat(p["similar"], **{"Cache-Control": "no-store"})
            elapsed = time.perf_counter() - t
            if r.headers["x-leo-cache"] == "semantic":
                semantic.append(elapsed)
            else:
                missed += 1
    out = {"requests": requests, "healthz_p50_ms": _ms(healthz, 50), "models_p50_ms": _ms(models, 50),
           "exact_p50_ms": _ms(exact, 50), "exact_p99_ms": _ms(exact, 99),
           "upstream_direct_p50_ms": _ms(up, 50),
           "semantic_hits": len(semantic), "semantic_not_hit": missed}
    out["exact_added_vs_models_p50_ms"] = round(out["exact_p50_ms"] - out["models_p50_ms"], 3)
    out["exact_added_paired_median_ms"] = round(float(np.median(np.subtract(exact, models))) * 1000, 3)
    out["exact_added_vs_healthz_p50_ms"] = round(out["exact_p50_ms"] - out["healthz_p50_ms"], 3)
    if semantic:
        out |= {"semantic_p50_ms": _ms(semantic, 50), "semantic_p99_ms": _ms(semantic, 99)}
        out["semantic_added_vs_models_p50_ms"] = round(out["semantic_p50_ms"] - out["models_p50_ms"], 3)
        out["semantic_added_vs_models_p99_ms"] = round(out["semantic_p99_ms"] - _ms(models, 99), 3)
    return out


def print_e2e(result: dict[str, Any]) -> None:
    print("## end to end through a live server (one uvicorn worker, sequential keep-alive client)")
    for k, v in result.items():
        print(f"{k:>34}  {v}")
