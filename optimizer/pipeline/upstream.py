"""The upstream call: a model's upstreams in fallback order, as JSON or as an open stream.

Each attempt is counted on the ledger row (`upstream_calls`) and named in its trail; the upstream
that answered becomes the row's provider. A provider's failure reaches the client as OpenAI's
error envelope (`provider_error`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..providers import openai_compat as provider
from ..providers.base import ProviderError, Upstream, UpstreamStream
from ..providers.registry import upstreams_for
from .ledger import Record
from .types import Call, ProxyError

T = TypeVar("T")
PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}


def provider_error(exc: ProviderError) -> ProxyError:
    """What the client is told when the upstream failed: its status, in OpenAI's envelope."""
    headers = {}
    if exc.status == 429 and exc.retry_after is not None:
        headers["Retry-After"] = str(int(exc.retry_after))
    kind = {429: "rate_limit_error", 504: "timeout"}.get(exc.status, "upstream_error")
    if 400 <= exc.status < 500 and exc.status != 429:
        kind = "invalid_request_error"
    return ProxyError(exc.status, str(exc), type=kind, code=exc.kind, headers=headers, body=exc.body)


async def _through_chain(call: Call, rec: Record, model: str,
                         attempt: Callable[[Upstream], Awaitable[T]]) -> tuple[T, Upstream]:
    """Try the model's upstreams in fallback order; a non-retryable error (a 4xx the client caused,
    a timeout) ends the chain at once."""
    last: ProviderError | None = None
    chain = await upstreams_for(call.principal, model)
    if not chain:  # not allowed, or only the platform could serve it and it does not offer it
        raise ProxyError(404, f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found", param="model")
    for upstream in chain:
        try:
            rec.upstream_calls += 1
            result = await attempt(upstream)
        except ProviderError as exc:
            rec.stage("upstream_error", provider=upstream.name, kind=exc.kind)
            last = exc
            if not exc.retryable:
                raise
            continue
        rec.provider = upstream.name
        return result, upstream
    assert last is not None
    raise last


async def call_json(call: Call, rec: Record, body: dict[str, Any], model: str) -> dict[str, Any]:
    """One JSON request of `body` to `model`'s upstreams; returns the upstream's response body."""
    result, upstream = await _through_chain(
        call, rec, model, lambda up: provider.request_json(up, PATHS[call.endpoint], body))
    rec.upstream_latency_ms += result.latency_ms
    rec.stage("upstream", provider=upstream.name, ms=round(result.latency_ms, 2))
    return result.body


async def open_stream(call: Call, rec: Record, body: dict[str, Any], model: str) -> UpstreamStream:
    """Open an SSE stream of `body` from `model`'s upstreams (the first byte has arrived)."""
    stream, upstream = await _through_chain(
        call, rec, model, lambda up: provider.open_stream(up, PATHS[call.endpoint], body))
    rec.upstream_latency_ms += stream.first_byte_ms
    rec.stage("upstream", provider=upstream.name, first_byte_ms=round(stream.first_byte_ms, 2))
    return stream
