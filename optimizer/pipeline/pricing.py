"""Prices and the honest savings arithmetic.

saved = counterfactual - actual, where the counterfactual prices the original prompt's tokens and
the served answer's completion tokens at the *requested* model's list price (DESIGN.md).
Prices come from `ModelPrice`, cached per process for a few seconds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from decimal import Decimal

from leo_optima.db import run_db

from ..models import ModelPrice

MILLION = Decimal("1000000")
ZERO = Decimal("0")
_TTL = 10.0


@dataclass(frozen=True)
class Price:
    model: str
    kind: str
    input_per_million: Decimal
    output_per_million: Decimal

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return (Decimal(prompt_tokens) * self.input_per_million
                + Decimal(completion_tokens) * self.output_per_million) / MILLION


FREE = Price("", "chat", ZERO, ZERO)

_prices: dict[str, Price] = {}
_loaded_at = 0.0


def _load() -> dict[str, Price]:
    return {
        p.model: Price(p.model, p.kind, p.input_per_million, p.output_per_million)
        for p in ModelPrice.objects.filter(active=True)
    }


async def prices() -> dict[str, Price]:
    global _prices, _loaded_at
    if time.monotonic() - _loaded_at > _TTL:
        _prices = await run_db(_load)
        _loaded_at = time.monotonic()
    return _prices


def forget() -> None:
    global _loaded_at
    _loaded_at = 0.0


async def price_of(model: str) -> Price:
    """A model's price; dated snapshots ("gpt-4o-2024-08-06") fall back to their family."""
    table = await prices()
    if model in table:
        return table[model]
    base = re.sub(r"-\d{4}-\d{2}-\d{2}$", "", model)
    return table.get(base, FREE)


def count_tokens(text: str) -> int:
    """A local estimate where no upstream count exists (semantic hits, decomposed parts, admission).

    About four characters a token for English, the usual rule of thumb for BPE tokenizers; used only
    for estimates, never in place of an upstream's reported usage.
    """
    return max(1, (len(text) + 3) // 4) if text else 0
