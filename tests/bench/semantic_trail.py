"""Where a request's time goes at one connection, from the ledger's own trail (#14).

    python -m tests.bench.semantic_trail [--tenant defaults|off] [--seconds 20] [--workers 1]

`peer_overhead`'s setup (nginx mock, scratch database: SQLite, or DATABASE_URL / REDIS_URL when
set; tenants `off` and `defaults`) and LEO under gunicorn, then one sequential client sending unique
prompts for `--seconds`. Printed: the client's p50, and the medians of the ledger rows' own
figures: LEO's overhead, the semantic stage, its embedding, the exact lookup, the candidates it
verified. To compare two commits, run it in a worktree of each, alternately: this machine's load
moves the figures more than most changes do.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time

import httpx

from tests.bench.peer_overhead import Bench

TRAIL = (
    "import json, statistics as st, datetime as d; from optimizer.models import RequestLog;"
    "rows = list(RequestLog.objects.filter(tenant__name=%r, created_at__gte=d.datetime.fromtimestamp(%f, d.timezone.utc))"
    ".values_list('trail', 'overhead_ms'));"
    "stages = [s for t, _ in rows for s in (t or {}).get('stages', [])];"
    "med = lambda xs: round(st.median(xs), 2) if xs else None;"
    "print(json.dumps({'requests': len(rows), 'overhead_ms': med([o for _, o in rows if o is not None]),"
    " 'semantic_ms': med([s['ms'] for s in stages if s.get('stage') == 'semantic' and s.get('ms') is not None]),"
    " 'embed_ms': med([s['embed_ms'] for s in stages if s.get('stage') == 'semantic' and s.get('embed_ms') is not None]),"
    " 'exact_ms': med([s['ms'] for s in stages if s.get('stage') == 'exact' and s.get('ms') is not None]),"
    " 'candidates': med([s.get('candidates', 0) for s in stages if s.get('stage') == 'semantic'])}))"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tenant", choices=["defaults", "off"], default="defaults")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    bench = Bench(argparse.Namespace(conc=[1], seconds=5, workers=args.workers, rss_requests=0, streams=10,
                                     chunk_delay_ms=0, no_litellm=True, litellm_workers=None, litellm_venv="",
                                     peer_dir=None, skip=[]))
    try:
        bench.setup()
        since = time.time()
        latencies: list[float] = []
        with httpx.Client(timeout=60) as client:
            while time.time() - since < args.seconds:
                started = time.perf_counter()
                client.post(bench.leo_url + "/v1/chat/completions",
                            headers={"Authorization": f"Bearer {bench.keys[args.tenant]}"},
                            json={"model": "gpt-4o-mini", "messages": [
                                {"role": "user", "content": f"tell me about topic {secrets.token_hex(6)} and why it matters"}]})
                latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(1)  # the last ledger rows are written behind
        figures = json.loads(bench.manage("shell", "-c", TRAIL % (args.tenant, since)).strip().splitlines()[-1])
        print(f"tenant {args.tenant}, {args.workers} worker(s), {len(latencies)} requests, "
              f"client p50 {statistics.median(latencies):.2f} ms")
        print("ledger medians:", json.dumps(figures))
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
