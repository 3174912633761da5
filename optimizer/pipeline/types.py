"""The pipeline's small vocabulary: a call coming in, a reply going out, and the error type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tenants.auth import Principal


@dataclass(frozen=True)
class Options:
    """Per-request switches from headers: Cache-Control and the X-LEO-Cache-* headers."""

    no_cache: bool = False  # skip lookups
    no_store: bool = False  # skip storing
    ttl: int | None = None
    namespace: str = ""
    tags: tuple[tuple[str, str], ...] = ()  # X-LEO-Tags and the body's `metadata`, for the ledger


@dataclass
class Call:
    principal: Principal
    endpoint: str  # "chat" | "completions" | "embeddings"
    body: dict[str, Any]
    request_id: str
    options: Options = field(default_factory=Options)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        so = self.body.get("stream_options")
        return bool(isinstance(so, dict) and so.get("include_usage"))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None


class ProxyError(Exception):
    """An error answered in OpenAI's envelope: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.body = body

    def envelope(self) -> dict[str, Any]:
        if self.body and isinstance(self.body.get("error"), dict):
            return self.body
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def database_unavailable() -> ProxyError:
    """The database is down or restarting: a clean, retryable 503 rather than a 500."""
    return ProxyError(503, "The gateway's database is unavailable; please retry shortly.", type="server_error",
                      code="database_unavailable", headers={"Retry-After": "5"})
