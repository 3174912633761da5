"""One ledger row for every authenticated request, built up as the request goes through the pipeline.

Savings are counted as DESIGN.md says: saved = counterfactual - cost, where the counterfactual
prices the original prompt's tokens and the served answer's completion tokens at the requested
model's list price; tokens_saved counts the tokens that did not go upstream.

Tokens are always the upstream's count of what it billed (or, where it sent none, the model's
tokenizer's count, marked `usage_estimated` in the trail). A cost LEO cannot price (a tenant's own
provider serving a model with no `ModelPrice`) is recorded as unknown: `cost_usd` and `saved_usd`
are NULL, never zero, and no saving is claimed for it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from tenants.auth import Principal

from ..models import RequestBody, RequestLog, Technique
from ..redaction import redact
from ..pricing import ZERO, Price
from .writer import writer

log = logging.getLogger("leo.requests")
# A stored body (prompt or answer) larger than this is kept as its first characters only.
MAX_BODY_CHARS = 200_000
_observers: list[Any] = []


def add_observer(fn: Any) -> None:
    """Metrics and access logs subscribe here (optimizer.metrics, leo_optima.core.logging)."""
    _observers.append(fn)


@dataclass
class Record:
    principal: Principal
    request_id: str
    endpoint: str
    model: str = ""
    stream: bool = False
    started: float = field(default_factory=time.perf_counter)
    created_at: Any = field(default_factory=timezone.now)
    served_model: str = ""
    provider: str = ""
    status_code: int = 200
    error_code: str = ""
    technique: str = Technique.MISS
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = ZERO
    counterfactual_usd: Decimal = ZERO
    tokens_saved: int = 0
    prompt_opt_tokens_saved: int = 0
    prompt_opt_saved_usd: Decimal = ZERO
    routing_saved_usd: Decimal = ZERO
    upstream_calls: int = 0
    cost_known: bool = True
    similarity: float | None = None
    upstream_latency_ms: float = 0.0
    end_user: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    cache_key: str = ""  # the entry that served a hit
    reply_ms: float | None = None  # when the reply started: a stream's rows are written at its end
    # Set when the tenant keeps bodies (OptimizerSettings.store_bodies): for how long, and what.
    body_retention_days: int | None = None
    prompt: Any = None
    response: Any = None
    trail: dict[str, Any] = field(default_factory=lambda: {"stages": []})
    finished: bool = False

    def stage(self, name: str, **info: Any) -> None:
        self.trail["stages"].append({"stage": name, **info} if info else {"stage": name})

    def served_from_cache(self, technique: str, price: Price, prompt_tokens: int, completion_tokens: int) -> None:
        """A full saving: nothing went upstream; the counterfactual is the stored answer's usage."""
        self.technique = technique
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = ZERO
        self.counterfactual_usd = price.cost(prompt_tokens, completion_tokens)
        self.tokens_saved = prompt_tokens + completion_tokens
        self.served_model = self.model

    def upstream_used(self, served_price: Price, requested_price: Price, prompt_tokens: int,
                      completion_tokens: int, original_prompt_tokens: int | None = None) -> None:
        """Usage as the upstream reported it; the counterfactual at the requested model's price for
        the original (unoptimized) prompt."""
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        if not served_price.known and (prompt_tokens or completion_tokens):
            self.cost_known = False
        cost = served_price.cost(prompt_tokens, completion_tokens)
        self.cost_usd += cost
        original = prompt_tokens if original_prompt_tokens is None else max(prompt_tokens, original_prompt_tokens)
        at_requested = requested_price.cost(prompt_tokens, completion_tokens)
        self.counterfactual_usd += requested_price.cost(original, completion_tokens)
        opt_tokens = original - prompt_tokens
        if opt_tokens:
            self.prompt_opt_tokens_saved += opt_tokens
            self.tokens_saved += opt_tokens
            self.prompt_opt_saved_usd += requested_price.cost(opt_tokens, 0)
        if served_price is not requested_price:
            self.routing_saved_usd += at_requested - cost

    def fail(self, status: int, code: str) -> None:
        self.status_code = status
        self.error_code = code[:60]
        # A failed upstream path is an error; a cache hit whose client went away was still served.
        if self.technique in (Technique.MISS, Technique.BYPASS):
            self.technique = Technique.ERROR

    @property
    def saved_usd(self) -> Decimal:
        """What LEO saved; zero (none claimed) when the cost is unknown."""
        return self.counterfactual_usd - self.cost_usd if self.cost_known else ZERO

    @property
    def latency_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def keep_body(self, retention_days: int, endpoint: str, body: dict[str, Any]) -> None:
        """Store this request's prompt (and, once known, its answer) with the ledger row."""
        self.body_retention_days = retention_days
        self.prompt = body.get("messages") if endpoint == "chat" else body.get("prompt")

    def replied(self) -> None:
        """The reply is on its way (a stream's first bytes): LEO's overhead ends here."""
        if self.reply_ms is None:
            self.reply_ms = self.latency_ms

    def overhead_ms(self, total_ms: float) -> float:
        """LEO's own time: until the reply started (or, without one, the total) minus the time
        spent waiting for upstreams (for streams, until their first byte)."""
        until = self.reply_ms if self.reply_ms is not None else total_ms
        return max(0.0, until - self.upstream_latency_ms)

    def _body_row(self) -> RequestBody | None:
        if self.body_retention_days is None or self.prompt is None:
            return None
        prompt, n1 = redact(_bounded(self.prompt))
        response, n2 = redact(_bounded(self.response)) if self.response is not None else (None, 0)
        return RequestBody(request_log_id=self.request_id, tenant_id=self.principal.tenant_id, prompt=prompt,
                           response=response, redactions=n1 + n2, created_at=self.created_at,
                           expires_at=self.created_at + timedelta(days=self.body_retention_days))

    def finish(self) -> RequestLog | None:
        """Queue the ledger row once (streams call this from their generator's finally)."""
        if self.finished:
            return None
        self.finished = True
        total_ms = self.latency_ms
        row = RequestLog(
            request_id=self.request_id, created_at=self.created_at, tenant_id=self.principal.tenant_id,
            api_key_id=self.principal.api_key_id, endpoint=self.endpoint, model=self.model[:120],
            served_model=(self.served_model or self.model)[:120], provider=self.provider[:100], stream=self.stream,
            status_code=self.status_code, error_code=self.error_code, technique=self.technique,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            cost_usd=self.cost_usd if self.cost_known else None, counterfactual_usd=self.counterfactual_usd,
            saved_usd=self.saved_usd if self.cost_known else None, tokens_saved=self.tokens_saved,
            prompt_opt_tokens_saved=self.prompt_opt_tokens_saved, prompt_opt_saved_usd=self.prompt_opt_saved_usd,
            routing_saved_usd=self.routing_saved_usd, upstream_calls=self.upstream_calls,
            similarity=self.similarity, latency_ms=round(total_ms, 3),
            upstream_latency_ms=round(self.upstream_latency_ms, 3), overhead_ms=round(self.overhead_ms(total_ms), 3),
            end_user=self.end_user[:256], tags=self.tags, cache_key=self.cache_key[:64], trail=self.trail,
        )
        writer.put_row(row)
        try:
            body = self._body_row()
        except Exception:  # a body is a debugging aid: it must never cost the ledger row
            log.exception("could not prepare the request body")
            body = None
        if body is not None:
            writer.put_row(body)
        for observer in _observers:
            try:
                observer(self)
            except Exception:  # an observer must never cost a ledger row or a response
                log.exception("ledger observer failed")
        return row


def _bounded(value: Any) -> Any:
    """A body as JSON, or its first MAX_BODY_CHARS characters when it is larger."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= MAX_BODY_CHARS:
        return value
    return {"truncated": True, "text": text[:MAX_BODY_CHARS]}
