"""Prices and the honest savings arithmetic.

saved = counterfactual - actual, where the counterfactual prices the original prompt's tokens and
the served answer's completion tokens at the *requested* model's list price (DESIGN.md).
Prices come from `ModelPrice`, cached per process for a few seconds. A model without a row is
*unpriced*: the platform never serves it (`providers.registry`), and when a tenant's own provider
serves it the ledger records its cost as unknown (NULL), never as zero.

Token counts: the upstream's own `usage` is the truth. Where it is missing (an upstream that ignores
`include_usage`, a stream cut before its usage chunk) the model's tokenizer counts it
(`bpe-openai`, tiktoken's tables); `count_tokens` is the cheap ~4-characters-a-token rule kept for
estimates that only steer decisions (admission, routing, decomposition's plan).

It sits beside `optimizer.pipeline` and `optimizer.providers`, not inside either: the pipeline
prices its calls and the provider registry reads the same table as the platform's catalogue, and
neither package may import the other's way back (tests/test_layers.py).
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from leo_optima.core.db import run_db

from . import metrics
from .models import ModelPrice

with warnings.catch_warnings():
    # bpe_openai loads its bundled tables at import with a deprecated importlib.resources call.
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

MILLION = Decimal("1000000")
ZERO = Decimal("0")
_TTL = 10.0


@dataclass(frozen=True)
class Price:
    model: str
    kind: str
    input_per_million: Decimal
    output_per_million: Decimal
    known: bool = True  # False: no ModelPrice row; cost() then says 0 but the ledger records "unknown"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return (Decimal(prompt_tokens) * self.input_per_million
                + Decimal(completion_tokens) * self.output_per_million) / MILLION


def unpriced(model: str) -> Price:
    return Price(model, "chat", ZERO, ZERO, known=False)

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
        # A priced model gets its own metrics label; any other name a client sends stays "other".
        metrics.register_models(_prices)
    return _prices


def forget() -> None:
    global _loaded_at
    _loaded_at = 0.0


async def price_of(model: str) -> Price:
    """A model's price; dated snapshots ("gpt-4o-2024-08-06") fall back to their family; a model
    with neither is `unpriced` (known=False)."""
    table = await prices()
    if model in table:
        return table[model]
    base = re.sub(r"-\d{4}-\d{2}-\d{2}$", "", model)
    return table.get(base) or unpriced(model)


def count_tokens(text: str) -> int:
    """A local estimate where no upstream count exists (semantic hits, decomposed parts, admission).

    About four characters a token for English, the usual rule of thumb for BPE tokenizers; used only
    for estimates, never in place of an upstream's reported usage.
    """
    return max(1, (len(text) + 3) // 4) if text else 0


# --- the model's tokenizer, where the upstream gave no count ------------------------------------

FALLBACK_ENCODING = "o200k_base"  # today's OpenAI models; closer for unknown models than ~4 chars a token


@lru_cache(maxsize=64)
def _encoding(model: str) -> Any:
    base = re.sub(r"-\d{4}-\d{2}-\d{2}$", "", model)
    for name in (model, base):
        try:
            return bpe_openai.encoding_for_model(name)
        except bpe_openai.UnsupportedModelError:
            continue
    return bpe_openai.get_encoding(FALLBACK_ENCODING)


def tokenize_count(model: str, text: str) -> int:
    """Tokens of `text` with `model`'s tokenizer (o200k_base for models it does not know)."""
    if not text:
        return 0
    return len(_encoding(model).encode(text, disallowed_special=()))


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "" if content is None else str(content)


def chat_prompt_tokens(model: str, messages: Iterable[Mapping[str, Any]]) -> int:
    """A chat prompt's tokens with OpenAI's documented framing (3 a message, 3 to prime the reply)."""
    total = 3
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        total += 3 + tokenize_count(model, str(message.get("role", ""))) \
            + tokenize_count(model, _message_text(message.get("content")))
        if message.get("name"):
            total += 1 + tokenize_count(model, str(message["name"]))
        if message.get("tool_calls"):
            total += tokenize_count(model, json.dumps(message["tool_calls"], separators=(",", ":"), sort_keys=True))
    return total
