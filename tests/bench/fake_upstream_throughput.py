"""How fast the fake upstream serves: the baseline that the gateway's added latency is measured on.

Run: ``python tests/bench/fake_upstream_throughput.py [--seconds 5] [--connections 32]``
(or ``python -m tests.bench.fake_upstream_throughput``).

It starts the fake as its own process (one aiohttp process on uvloop, so one core at most), then prints:
- sequential round trips over one keep-alive connection (httpx): median and p99 latency;
- throughput of small chat requests (JSON, and stream=True) from ``wrk`` when it is installed,
  else from an asyncio httpx load generator (which is itself the bottleneck, said in the output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
STREAM_BODY = {**CHAT_BODY, "stream": True, "stream_options": {"include_usage": True}}


def start_server() -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "fake_upstream", "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on " not in line:
        process.kill()
        raise SystemExit(f"fake upstream did not start: {line!r}")
    return process, line.rsplit("listening on ", 1)[1].strip()


def sequential_latency(url: str, count: int) -> tuple[float, float]:
    samples = []
    with httpx.Client() as client:
        for _ in range(50):  # warm-up: connection, caches
            client.post(url + "/chat/completions", json=CHAT_BODY)
        for _ in range(count):
            started = time.perf_counter()
            response = client.post(url + "/chat/completions", json=CHAT_BODY)
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000


def wrk_rps(url: str, body: dict[str, object], seconds: int, connections: int) -> tuple[float, str]:
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Authorization"] = "Bearer sk-bench-0000"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                handle.name,
                url + "/chat/completions",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{output}")
    latency = re.search(r"50%\s+(\S+).*?99%\s+(\S+)", output, re.S)
    shown = f"p50 {latency.group(1)}, p99 {latency.group(2)}" if latency else ""
    return float(match.group(1)) if match else 0.0, shown


async def httpx_rps(url: str, body: dict[str, object], seconds: int, connections: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            (await client.post(url + "/chat/completions", json=body)).raise_for_status()
            done += 1

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=1000, help="sequential requests for latency")
    args = parser.parse_args()

    process, url = start_server()
    try:
        median, p99 = sequential_latency(url, args.sequential)
        print(f"sequential chat round trip over keep-alive (httpx, {args.sequential} requests): "
              f"median {median:.3f} ms, p99 {p99:.3f} ms")  # fmt: skip
        for label, body in (("chat JSON", CHAT_BODY), ("chat stream", STREAM_BODY)):
            if shutil.which("wrk"):
                rps, shown = wrk_rps(url, body, args.seconds, args.connections)
                print(f"{label}: {rps:,.0f} requests/s (wrk, 1 thread, {args.connections} connections, "
                      f"{args.seconds}s; {shown})")  # fmt: skip
            else:
                rps = asyncio.run(httpx_rps(url, body, args.seconds, args.connections))
                print(f"{label}: {rps:,.0f} requests/s (httpx load generator: a lower bound, the client is "
                      f"the bottleneck)")  # fmt: skip
        stats = httpx.get(url.removesuffix("/v1") + "/_stats").json()
        print(f"server counted {stats['requests']:,} requests, {stats['errors']} errors")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    main()
