"""The last stage before the upstream: prompt optimization, and the routed model put in the body.

The routing decision was made before the lookups (`plan.routed_model`); here it only replaces the
body's model. The prompt optimizer (`prompt_opt.optimize`) runs in the tenant's mode, lossless by
default. The upstream never sees the original prompt, so its token count is scaled from the
upstream's count of the optimized one (`Outgoing.original_prompt`) for the counterfactual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..pricing import Price, count_tokens, price_of
from .ledger import Record
from .plan import Plan
from .prompt_opt import optimize
from .types import Call


@dataclass(frozen=True)
class Outgoing:
    """What goes upstream: the body, the model that answers and its price, and the prompt's local
    token estimates (before, after) optimization, None when it did not shrink."""

    body: dict[str, Any]
    model: str
    price: Price
    ratio: tuple[int, int] | None

    def original_prompt(self, upstream_prompt_tokens: int) -> int | None:
        """The original prompt's tokens, from the upstream's count of the optimized prompt and our
        before/after estimate (the upstream never saw the original)."""
        ratio = self.ratio
        if ratio is None or ratio[1] <= 0 or ratio[0] <= ratio[1]:
            return None
        return round(upstream_prompt_tokens * ratio[0] / ratio[1])


async def prepare(call: Call, rec: Record, plan: Plan, requested_price: Price) -> Outgoing:
    """The upstream body: optimized in the tenant's prompt mode, sent to the routed model, and for
    a stream always asking for usage; records the served model on the ledger row."""
    body = call.body
    ratio: tuple[int, int] | None = None
    if call.endpoint == "chat" and plan.cfg.prompt_mode != "off":
        result = optimize(body, plan.cfg.prompt_mode, count_tokens)  # type: ignore[arg-type]
        if result.tokens_after < result.tokens_before:
            body = result.request
            ratio = (result.tokens_before, result.tokens_after)
            rec.stage("prompt_opt", before=result.tokens_before, after=result.tokens_after, changes=result.changes)
    model = plan.model  # routing was decided before the cache lookups (`plan.routed_model`)
    if model != rec.model:
        body = {**body, "model": model}
    if call.stream:
        # Always ask for usage so the ledger has the upstream's count; stripped if the client did not ask.
        body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
    price = requested_price if model == rec.model else await price_of(model)
    rec.served_model = model
    return Outgoing(body, model, price, ratio)
