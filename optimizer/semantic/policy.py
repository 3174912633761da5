"""The semantic-hit decision and the per-tenant adaptive strictness.

Decision rule (``choose``): serve the nearest cached entry only when all of these hold:

1. its cosine similarity to the query is at least the tenant's cosine threshold;
2. it beats the runner-up by at least ``margin`` (two near-equal candidates mean the query sits
   between two cached questions, and picking one is a coin toss), unless the runner-up is
   interchangeable with it (the two entries pass the decision against each other: then they
   are near-duplicates of one intent, stored paraphrases with their own answers, and either
   answer is right);
3. the verifier approved it (numbers, units, dates, negation, entities, direction, format,
   language, compound-vs-part, and the difference rule over the content words; see
   ``verifier.py``);
4. the pair judge (``judge.py``, a learned classifier) gives it at least the tenant's current
   minimum probability. That floor starts at 0: out of the box only rules 1-3 apply.

Adaptive strictness (``AdaptiveStrictness``): a staircase over one number, the tenant's
strictness ``level`` in [0, 2], driven by ``POST /v1/feedback`` on served semantic answers.
``rule_at(level, base)`` turns it into the two knobs it moves, the better discriminator first:
from 0 to 1 it raises the judge's floor from 0 to 0.95 (on Quora pairs the judge separates
same-answer pairs better than cosine does: ROC-AUC 0.918 against 0.875), and from 1 to 2 it
raises the cosine threshold from the tenant's setting to 0.99, for traffic the judge cannot
tell apart either. A "wrong" raises the level by ``step_up``; a "right" lowers it by
``step_up * r / (1 - r)`` with ``r = bound / 2``. The expected move is zero exactly where the
wrong rate among served answers equals ``r``, so the level settles where about half the
configured bound is realised, which leaves room for noise. On top of the staircase:

- a guard: when the realised wrong rate (recent feedback, exponentially decayed so old traffic
  fades; Wilson upper bound at 90%) exceeds the bound, "right" feedback no longer lowers the
  level, only "wrong" raises it, until the rate is back under the bound;
- limits: the level stays in [``floor``, ``ceiling``], so feedback can neither loosen the cache
  below its configured threshold nor switch it off entirely (use the tenant switch for that).

The class is pure logic over plain numbers: the Django side loads it with ``from_dict``, calls
``record`` on each feedback, and saves ``to_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .verifier import Verdict, lexical_overlap, verify

DEFAULT_THRESHOLD = 0.80
"""Starting cosine threshold, tuned on the first halves of the benchmark sets (see docs)."""

DEFAULT_MARGIN = 0.02
"""Minimum lead of the best candidate over the runner-up."""

DEFAULT_WRONG_RATE_BOUND = 0.01
"""Realised wrong-answer rate the adaptive strictness keeps served answers under."""

JUDGE_CEILING = 0.95
"""The highest floor the adaptive strictness puts on the judge's probability. Higher floors
served almost nothing in the benchmark (the judge rarely says more than 0.97), so past this the
strictness moves the cosine threshold instead."""

COSINE_CEILING = 0.99
"""The highest cosine threshold the adaptive strictness reaches."""

MAX_LEVEL = 2.0
"""Strictness levels run from 0 (the tenant's settings, judge off) to 2 (both ceilings)."""


def rule_at(level: float, base_threshold: float) -> tuple[float, float]:
    """``(cosine threshold, judge floor)`` at strictness ``level``: the judge's floor rises first
    (level 0 to 1), then the cosine threshold (level 1 to 2); see the module docstring."""
    level = min(max(level, 0.0), MAX_LEVEL)
    if level <= 1.0:
        return base_threshold, JUDGE_CEILING * level
    top = max(base_threshold, COSINE_CEILING)
    return base_threshold + (top - base_threshold) * (level - 1.0), JUDGE_CEILING


@dataclass(frozen=True, slots=True)
class Decision:
    """Serve (``hit``) or not, why (``reason``), and the best candidate's ``similarity``."""

    hit: bool
    reason: str
    similarity: float


def decide(
    similarities: list[float] | tuple[float, ...],
    verdict: Verdict | None,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
) -> Decision:
    """Apply the decision rule to the top-2 similarities (best first) and the verifier's verdict.

    ``similarities`` may hold one value (the partition has one entry: no runner-up, so the margin
    holds trivially) or none (empty partition). ``verdict`` may be ``None`` when the caller skips
    the verifier because the threshold already failed; it then counts as not approved.
    """
    if not similarities:
        return Decision(False, "empty", 0.0)
    best = float(similarities[0])
    if best < threshold:
        return Decision(False, "below_threshold", best)
    if len(similarities) > 1 and best - float(similarities[1]) < margin:
        return Decision(False, "ambiguous", best)
    if verdict is None:
        return Decision(False, "unverified", best)
    if not verdict.ok:
        return Decision(False, f"verifier:{verdict.reason}", best)
    return Decision(True, "hit", best)


LEXICAL_WEIGHT = 0.2
"""Weight of word overlap when ranking verified candidates against each other (see ``choose``)."""

CANDIDATES = 4
"""How many nearest entries ``choose`` looks at (``index.search(..., k=CANDIDATES)``)."""


Judge = Callable[[int, str], float]
"""``judge(entry_id, text)``: the probability that the cached entry answers the query."""

Between = Callable[[int, int], float]
"""``between(entry_a, entry_b)``: the cosine between two cached entries' embeddings."""

Verifier = Callable[..., Verdict]
"""``verifier(query, candidate, cosine=...)``, as ``verify``."""


def interchangeable(
    a: tuple[int, float, str],
    b: tuple[int, float, str],
    threshold: float,
    verifier: Verifier = verify,
    between: Between | None = None,
) -> bool:
    """Would entry ``a`` be served for ``b``'s question (and the other way round)?

    Two entries that pass the decision against each other are near-duplicates of one intent (a
    paraphrase that missed once and was stored beside the first asking, with its own answer):
    a query between them is not ambiguous, either answer is right. Without ``between`` the
    two cached texts are judged on the verifier alone, at the threshold."""
    cosine = between(a[0], b[0]) if between is not None else None
    if cosine is not None and cosine < threshold:
        return False
    return verifier(a[2], b[2], cosine=cosine).ok and verifier(b[2], a[2], cosine=cosine).ok


def choose(
    query: str,
    candidates: Sequence[tuple[int, float, str]],
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    verifier: Verifier = verify,
    fallthrough: bool = False,
    lexical_weight: float = LEXICAL_WEIGHT,
    judge: Judge | None = None,
    min_probability: float = 0.0,
    between: Between | None = None,
) -> tuple[int | None, Decision]:
    """Pick the entry to serve from the nearest ``candidates`` ``(entry_id, similarity, text)``,
    best first (``index.search(partition, vec, k=CANDIDATES)`` plus the stored texts).

    The verifier gets each candidate's cosine (it judges broad rewordings by it). The margin is
    measured between *verified* candidates: a runner-up that the verifier rejects could never be
    served for this query, so it does not make the query ambiguous; and a verified runner-up
    that is itself interchangeable with the best one (``interchangeable``: the two entries pass
    the decision against each other; ``between`` gives their cosine) is a near-duplicate of the
    same intent, not a rival, so the best one is served. The nearest candidate itself must pass
    the verifier: when it fails, the query is most likely a specific variant of it, and serving
    the next one instead (``fallthrough=True``) served more near-duplicates of the wrong entry
    than right answers in the benchmark. With a ``judge`` and ``min_probability > 0``, a
    candidate over the threshold that the judge scores below ``min_probability`` is rejected
    like a verifier rejection (reason ``verifier:judge``). Returns the entry to serve (or
    ``None``) and the ``decide`` result behind it.
    """
    if not candidates:
        return None, decide([], None, threshold, margin)
    first_reason: Decision | None = None
    verified: list[tuple[int, float, float, str]] = []
    for entry_id, sim, text in candidates:
        # Candidates further than the margin below the threshold can neither be served nor
        # make a served one ambiguous; skip verifying them.
        if sim < threshold - margin:
            break
        verdict = verifier(query, text, cosine=sim)
        if (
            verdict.ok
            and judge is not None
            and min_probability > 0
            and sim >= threshold
            and judge(entry_id, text) < min_probability
        ):
            verdict = Verdict(False, "judge")
        if verdict.ok:
            score = sim + lexical_weight * lexical_overlap(query, text)
            verified.append((entry_id, sim, score, text))
        elif first_reason is None:
            first_reason = decide([sim], verdict, threshold, margin)
            if not verified and not fallthrough:
                return None, first_reason
    if not verified:
        if first_reason is not None:
            return None, first_reason
        return None, decide([candidates[0][1]], None, threshold, margin)
    # Rank the verified candidates by similarity plus word overlap: near-duplicate entries tie on
    # cosine, and the one that shares the query's words is the better bet. The threshold still
    # applies to the cosine alone; the margin applies to the combined score.
    verified.sort(key=lambda v: -v[2])
    best = verified[0]
    if best[1] < threshold:
        return None, Decision(False, "below_threshold", best[1])
    for rival in verified[1:]:
        if best[2] - rival[2] >= margin:
            break  # sorted: every later one trails by more
        if not interchangeable(
            (best[0], best[1], best[3]), (rival[0], rival[1], rival[3]), threshold, verifier, between
        ):
            return None, Decision(False, "ambiguous", best[1])
    return best[0], Decision(True, "hit", best[1])


def wilson_upper(wrong: float, total: float, z: float = 1.2816) -> float:
    """Upper end of the Wilson interval of a rate ``wrong/total`` (z=1.2816: one-sided 90%)."""
    if total <= 0:
        return 1.0
    p = wrong / total
    denom = 1 + z * z / total
    centre = p + z * z / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return min(1.0, (centre + spread) / denom)


@dataclass(slots=True)
class AdaptiveStrictness:
    """Per-tenant strictness level that moves with feedback; see the module docstring."""

    level: float = 0.0
    bound: float = DEFAULT_WRONG_RATE_BOUND
    step_up: float = 0.02
    floor: float = 0.0
    ceiling: float = MAX_LEVEL
    # Feedback counts, exponentially decayed with ``half_life`` events so the rate is recent.
    half_life: float = 2000.0
    right: float = 0.0
    wrong: float = 0.0
    # Lifetime totals, for display; never decayed.
    total_right: int = 0
    total_wrong: int = 0
    _decay: float = field(init=False, repr=False, default=1.0)

    def __post_init__(self) -> None:
        if not 0.0 < self.bound < 0.5:
            raise ValueError("bound must be in (0, 0.5)")
        if not self.floor <= self.level <= self.ceiling:
            self.level = min(max(self.level, self.floor), self.ceiling)
        self._decay = 0.5 ** (1.0 / self.half_life) if self.half_life > 0 else 1.0

    @property
    def step_down(self) -> float:
        """Lowering per "right": the staircase's equilibrium wrong rate is ``bound / 2``."""
        r = self.bound / 2
        return self.step_up * r / (1 - r)

    @property
    def wrong_rate(self) -> float:
        """The realised wrong rate over recent feedback (0 when there is none)."""
        total = self.right + self.wrong
        return self.wrong / total if total else 0.0

    @property
    def over_bound(self) -> bool:
        """True while recent feedback cannot rule out a wrong rate above the bound."""
        total = self.right + self.wrong
        return self.wrong > 0 and wilson_upper(self.wrong, total) > self.bound

    def record(self, correct: bool) -> float:
        """Take one feedback on a served semantic answer; return the new level."""
        self.right *= self._decay
        self.wrong *= self._decay
        if correct:
            self.right += 1
            self.total_right += 1
            if not self.over_bound:
                self.level -= self.step_down
        else:
            self.wrong += 1
            self.total_wrong += 1
            self.level += self.step_up
        self.level = min(max(self.level, self.floor), self.ceiling)
        return self.level

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able state for the database (``axis`` marks what ``level`` means)."""
        d = asdict(self)
        d.pop("_decay", None)
        d["axis"] = STATE_AXIS
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaptiveStrictness:
        """Rebuild from ``to_dict()`` output; unknown keys are ignored, missing ones defaulted.
        State saved by the earlier cosine-only staircase (no ``axis``) keeps its counts but
        restarts at level 0, since its number meant a cosine threshold."""
        names = {
            "level", "bound", "step_up", "floor", "ceiling", "half_life", "right", "wrong",
            "total_right", "total_wrong",
        }
        kept = {k: v for k, v in data.items() if k in names}
        if data.get("axis") != STATE_AXIS:
            kept.pop("level", None)
        return cls(**kept)


STATE_AXIS = "judge-then-cosine"
"""Tag of the saved state: ``level`` is a strictness for ``rule_at``."""
