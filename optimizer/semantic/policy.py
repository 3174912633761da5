"""The semantic-hit decision and the per-tenant adaptive threshold.

Decision rule (``decide``): serve the nearest cached entry only when all three hold:

1. its cosine similarity to the query is at least the tenant's current threshold;
2. it beats the runner-up by at least ``margin`` (two near-equal candidates mean the query sits
   between two cached questions, and picking one is a coin toss);
3. the verifier approved it (numbers, units, dates, negation, entities, direction, format,
   language and compound-vs-part all agree; see ``verifier.py``).

Adaptive threshold (``AdaptiveThreshold``): a staircase driven by ``POST /v1/feedback`` on
served semantic answers. A "wrong" raises the threshold by ``step_up``; a "right" lowers it by
``step_up * r / (1 - r)`` with ``r = target_rate / 2``. The expected move is zero exactly where the
wrong rate among served answers equals ``r``, so the threshold settles where about half the
configured bound is realised, which leaves room for noise. On top of the staircase:

- a guard: when the realised wrong rate (recent feedback, exponentially decayed so old traffic
  fades; Wilson upper bound at 90%) exceeds the bound, "right" feedback no longer lowers the
  threshold, only "wrong" raises it, until the rate is back under the bound;
- limits: never below ``floor`` nor above ``ceiling``, so one tenant's feedback cannot turn the
  cache into "serve anything" or switch it off entirely (1.0 means off; use the tenant switch).

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
"""Realised wrong-answer rate the adaptive threshold keeps served answers under."""


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


def choose(
    query: str,
    candidates: Sequence[tuple[int, float, str]],
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    verifier: Callable[[str, str], Verdict] = verify,
    fallthrough: bool = False,
    lexical_weight: float = LEXICAL_WEIGHT,
) -> tuple[int | None, Decision]:
    """Pick the entry to serve from the nearest ``candidates`` ``(entry_id, similarity, text)``,
    best first (``index.search(partition, vec, k=CANDIDATES)`` plus the stored texts).

    The margin is measured between *verified* candidates: a runner-up that the verifier rejects
    (it names another number, entity, direction...) could never be served for this query, so it
    does not make the query ambiguous. The nearest candidate itself must pass the verifier: when
    it fails, the query is most likely a specific variant of it, and serving the next one instead
    (``fallthrough=True``) served more near-duplicates of the wrong entry than right answers in
    the benchmark. Returns the entry to serve (or ``None``) and the ``decide`` result behind it.
    """
    if not candidates:
        return None, decide([], None, threshold, margin)
    first_reason: Decision | None = None
    verified: list[tuple[int, float, float]] = []
    for entry_id, sim, text in candidates:
        # Candidates further than the margin below the threshold can neither be served nor
        # make a served one ambiguous; skip verifying them.
        if sim < threshold - margin:
            break
        verdict = verifier(query, text)
        if verdict.ok:
            verified.append((entry_id, sim, sim + lexical_weight * lexical_overlap(query, text)))
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
    if len(verified) > 1 and best[2] - verified[1][2] < margin:
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
class AdaptiveThreshold:
    """Per-tenant threshold state that moves with feedback; see the module docstring."""

    threshold: float = DEFAULT_THRESHOLD
    bound: float = DEFAULT_WRONG_RATE_BOUND
    step_up: float = 0.01
    floor: float = 0.70
    ceiling: float = 0.99
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
        if not self.floor <= self.threshold <= self.ceiling:
            self.threshold = min(max(self.threshold, self.floor), self.ceiling)
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
        """Take one feedback on a served semantic answer; return the new threshold."""
        self.right *= self._decay
        self.wrong *= self._decay
        if correct:
            self.right += 1
            self.total_right += 1
            if not self.over_bound:
                self.threshold -= self.step_down
        else:
            self.wrong += 1
            self.total_wrong += 1
            self.threshold += self.step_up
        self.threshold = min(max(self.threshold, self.floor), self.ceiling)
        return self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able state for the database."""
        d = asdict(self)
        d.pop("_decay", None)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaptiveThreshold:
        """Rebuild from ``to_dict()`` output; unknown keys are ignored, missing ones defaulted."""
        names = {
            "threshold", "bound", "step_up", "floor", "ceiling", "half_life", "right", "wrong",
            "total_right", "total_wrong",
        }
        return cls(**{k: v for k, v in data.items() if k in names})
