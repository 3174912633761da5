"""What the decomposition, prompt-optimization and routing stages cost per request, and save.

Run: ``python tests/bench/savings_stages.py [--repeat 200]`` (or ``python -m tests.bench.savings_stages``).

Pure CPU, one core, bounded (``--repeat`` passes over a small built-in corpus). Prints, per stage:
median and p99 wall time per call, and what the stage did to the corpus (parts found, tokens
saved with cl100k_base). The corpus is in this file so anyone can rerun and read it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from optimizer.pipeline.decompose import split  # noqa: E402
from optimizer.pipeline.prompt_opt import optimize  # noqa: E402
from optimizer.pipeline.routing import RoutingRule, route  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai  # noqa: E402

    _ENC = bpe_openai.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    return len(_ENC.encode(text))


DOC = (
    "Acme Corp's 2024 annual report lists revenue of $12.4M (up 18% from 2023), 140 employees "
    "across Berlin, Austin and Lagos, and a new product line, Acme Flow, launched on 2024-05-02. "
    "Net margin was 7.9%. The board approved a 2025 budget of $15M, of which $3.2M is for R&D."
)
COMPOUND = [
    "About Python: 1. what is a list? 2. what is a dict? 3. what is a set?",
    "I use PostgreSQL 16.\n- How do I list tables?\n- How do I show indexes?\n- How do I see locks?",
    "What is a mutex? How does a semaphore work? Also, what is a spinlock?",
    "What is the capital of Peru? What is the capital of Chile?",
    "(1) Who wrote Hamlet?\n(2) Who painted the Mona Lisa?\n(3) Who composed the Four Seasons?",
]
NOT_COMPOUND = [
    "What are the pros and cons of Rust for embedded work?",
    "What is a list? How do I sort it?",
    "Compare these: 1. What is Go? 2. What is Rust?",
    "Write a poem with:\n- rhymes\n- four lines",
    "Explain how DNS resolution works, from the stub resolver to the authoritative server.",
]
REDUNDANT = [
    f"Context:\n\n{DOC}\n\n\n\nHere it is again   in case:\n\n{DOC}\n\nWhat   was the   2024 revenue?   ",
    "Please  could you kindly   summarise this?\t\n\n\n\n\n" + DOC + "\n\n\nThanks in advance!",
    f"I was wondering if you could tell me the margin.    {DOC}   \n\n\n\nBe brief. Be brief.",
]
TIGHT = [DOC, "What is the capital of France?", "Summarise:\n\n" + DOC]
ROUTABLE = ["What is the capital of France?", "Who wrote Hamlet?", "Name three primary colours."]
NOT_ROUTABLE = ["Explain step by step how TCP works.", "What is 17*23?", "What does `x[::-1]` do?"]
RULES = [RoutingRule("gpt-4o", "gpt-4o-mini", max_prompt_tokens=200)]


def chat(text: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": text},
        ],
    }


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p99 microseconds of ``fn()`` over ``repeat`` calls."""
    samples: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    repeat = max(1, min(args.repeat, 5000))

    print("decomposition (split)")
    for label, corpus in (("compound", COMPOUND), ("not compound", NOT_COMPOUND)):
        requests = [chat(t) for t in corpus]
        found = [split(r) for r in requests]
        med, p99 = timed(lambda requests=requests: [split(r) for r in requests], repeat)
        parts = [0 if d is None else len(d.parts) for d in found]
        print(
            f"  {label:13s} {len(corpus)} prompts, parts found {parts}; "
            f"per call median {med / len(corpus):.1f} us, p99 {p99 / len(corpus):.1f} us"
        )

    print("prompt optimization (cl100k_base tokens, counting included in the time)")
    for mode in ("lossless", "aggressive"):
        for label, corpus in (("redundant", REDUNDANT), ("tight", TIGHT)):
            requests = [chat(t) for t in corpus]
            results = [optimize(r, mode, count_tokens) for r in requests]  # type: ignore[arg-type]
            before = sum(r.tokens_before for r in results)
            after = sum(r.tokens_after for r in results)
            med, p99 = timed(
                lambda requests=requests, mode=mode: [optimize(r, mode, count_tokens) for r in requests],
                repeat,
            )
            print(
                f"  {mode:10s} {label:9s} tokens {before} -> {after} "
                f"({100 * (before - after) / before:.1f}% saved); per call median "
                f"{med / len(corpus):.1f} us, p99 {p99 / len(corpus):.1f} us"
            )
    big = chat("\n\n".join([DOC] * 40 + ["What   changed?   "] * 5))
    result = optimize(big, "lossless", count_tokens)
    med, p99 = timed(lambda: optimize(big, "lossless", count_tokens), max(1, repeat // 10))
    print(
        f"  lossless   40x pasted document ({len(big['messages'][1]['content'])} chars): tokens "
        f"{result.tokens_before} -> {result.tokens_after}; median {med:.0f} us, p99 {p99:.0f} us"
    )

    print("routing (gpt-4o -> gpt-4o-mini, <= 200 prompt tokens)")
    for label, corpus in (("routable", ROUTABLE), ("not routable", NOT_ROUTABLE)):
        requests = [chat(t) for t in corpus]
        decisions = [route(r, RULES, count_tokens) for r in requests]
        med, p99 = timed(lambda requests=requests: [route(r, RULES, count_tokens) for r in requests], repeat)
        print(
            f"  {label:13s} routed {[d.routed for d in decisions]}; per call median "
            f"{med / len(corpus):.1f} us, p99 {p99 / len(corpus):.1f} us"
        )


if __name__ == "__main__":
    main()
