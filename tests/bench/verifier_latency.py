"""What one verdict costs: ``verify`` over the trust sets' pairs, each text read afresh.

Run from the repository root (about a minute)::

    python -m tests.bench.verifier_latency [--rounds 3] [--ref main]

The pairs are the ones the cache meets: each look-alike against its twin and the twin's
paraphrases, each paraphrase against its group's first text, over the tuning half of
``trust_eval.jsonl`` and every development set (``trust_dev*.jsonl``; the test half is not read),
as the conversation texts the semantic stage embeds. Each verdict clears the feature cache first
(both texts are read as if new); the word vectors are warmed by a first pass, as in a worker that
has served for a while (a word never seen costs one embedding, about 1 ms, once per worker).

With ``--ref`` the same pairs also run through the verifier at that git revision (checked out
into a temporary worktree and imported in a child process), in alternating rounds, so the two
rows share the machine's load. Issue #12 asks each verdict to stay under 1 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "bench" / "data"


def pairs() -> list[tuple[str, str, float]]:
    """(query, candidate, cosine) for every pair of the tuning half and the development sets."""
    from optimizer.semantic import get_embedder
    from optimizer.semantic.embedder import conversation_text
    from tests.bench.cache_trust import group_bodies, load_records, lookalike_bodies

    records = load_records("tuning")
    for path in sorted(DATA.glob("trust_dev*.jsonl")):
        records += load_records(None, path)
    out: list[tuple[str, str]] = []
    for r in records:
        if r["kind"] == "lookalike":
            twins, b = lookalike_bodies(r)
            asked = conversation_text(b["messages"])
            out += [(asked, conversation_text(t["messages"])) for t in twins]
        else:
            texts = [conversation_text(body["messages"]) for body in group_bodies(r)]
            out += [(t, texts[0]) for t in texts[1:]]
    texts = sorted({t for pair in out for t in pair})
    vecs = dict(zip(texts, get_embedder().encode(texts), strict=True))
    return [(q, c, float(vecs[q] @ vecs[c])) for q, c in out]


def timings(items: list[tuple[str, str, float]], rounds: int) -> list[float]:
    """Milliseconds per verdict, ``rounds`` passes after one warm-up pass."""
    from optimizer.semantic.verifier import verify
    from optimizer.semantic.verifier_features import features_of

    for q, c, cos in items:  # warm the word vectors
        verify(q, c, cosine=cos)
    out: list[float] = []
    for _ in range(rounds):
        for q, c, cos in items:
            features_of.cache_clear()
            t0 = time.perf_counter()
            verify(q, c, cosine=cos)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> str:
    s = sorted(ms)
    q = lambda p: s[min(len(s) - 1, int(p * len(s)))]  # noqa: E731 - a percentile, inline
    return f"p50 {q(0.50):.3f}  p95 {q(0.95):.3f}  p99 {q(0.99):.3f}  max {s[-1]:.3f} ms  (n={len(s)})"


def _child(pairs_file: str, rounds: int) -> None:
    """In a worktree at ``--ref``: time its verifier on the pairs given, print the timings."""
    items = [tuple(x) for x in json.loads(Path(pairs_file).read_text())]
    print(json.dumps(timings(items, rounds)))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ref", help="also time the verifier at this git revision")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leo_optima.settings.local")
    import django

    django.setup()
    if args.child:
        _child(args.child, args.rounds)
        return
    items = pairs()
    print(f"[verifier] {len(items)} pairs; load average {os.getloadavg()[0]:.1f}", flush=True)
    if not args.ref:
        print("this tree ", summary(timings(items, args.rounds)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), args.ref], check=True)
        try:
            (tree / ".venv").symlink_to(ROOT / ".venv")
            if (ROOT / ".env").exists():  # the settings' local secrets, as in this tree
                (tree / ".env").write_bytes((ROOT / ".env").read_bytes())
            pairs_file = Path(tmp) / "pairs.json"
            pairs_file.write_text(json.dumps(items))
            here: list[float] = []
            there: list[float] = []
            for _ in range(args.rounds):  # alternate, one round each, so both meet the same load
                here += timings(items, 1)
                # This file, run with the other tree first on the path: its ``optimizer`` is timed.
                child = subprocess.run(
                    [sys.executable, __file__, "--child", str(pairs_file), "--rounds", "1"],
                    cwd=tree, check=True, capture_output=True, text=True,
                    env={**os.environ, "PYTHONPATH": str(tree)},
                )
                there += json.loads(child.stdout.strip().splitlines()[-1])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"this tree  {summary(here)}")
    print(f"{args.ref:<10} {summary(there)}")


if __name__ == "__main__":
    main()
