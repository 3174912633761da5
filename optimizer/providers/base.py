"""What every provider adapter offers, and the one error type they raise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Upstream:
    """One place a request can go: a name for the ledger, a base URL and a key (in memory only).

    `trusted` marks the operator's own upstream (`LEO_UPSTREAM_URL`, the demo upstream); every other
    one, a tenant's provider above all, is held to the egress policy (`tenants/egress.py`) when it
    is connected to. Untrusted is the default so that a new kind of upstream cannot forget it.
    """

    name: str
    base_url: str
    api_key: str = field(repr=False)
    is_demo: bool = False
    trusted: bool = False


class ProviderError(Exception):
    """An upstream failure. `retryable` says whether another attempt (or provider) may help.

    `status` is what LEO answers the client: the upstream's own 4xx, 502 for bad gateways and
    connection failures, 504 for timeouts. `body` keeps an upstream's OpenAI-style error, if any.
    """

    def __init__(self, message: str, *, status: int, kind: str, retryable: bool,
                 retry_after: float | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body


@dataclass
class UpstreamResponse:
    body: dict[str, Any]
    latency_ms: float
    upstream: Upstream


@dataclass
class UpstreamStream:
    """An open SSE stream: `events` yields each `data:` payload parsed, ending before `[DONE]`."""

    events: AsyncIterator[dict[str, Any]]
    first_byte_ms: float
    upstream: Upstream
    close: Any
