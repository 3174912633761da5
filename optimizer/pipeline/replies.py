"""What every reply carries: the X-LEO-* headers, and the error reply for whatever went wrong.

An error is always answered in OpenAI's envelope with its status, never as a 500 with a stack
trace: the gateway's own refusals (`ProxyError`) as they are, an upstream's failure as its status
(`upstream.provider_error`), a database outage as a retryable 503, anything else as a 500 naming
the request id.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import InterfaceError, OperationalError

from ..models import Technique
from ..providers.base import ProviderError
from .ledger import Record
from .types import Call, ProxyError, Reply, database_unavailable
from .upstream import provider_error

log = logging.getLogger(__name__)


def leo_headers(call: Call, rec: Record) -> dict[str, str]:
    headers = {"X-LEO-Request-Id": call.request_id, "X-LEO-Cache": _cache_header(rec.technique),
               "X-LEO-Tokens-Saved": str(rec.tokens_saved),
               "X-LEO-Cost-Saved-USD": f"{rec.saved_usd.quantize(Decimal('0.00000001')):f}"}
    if rec.similarity is not None:
        headers["X-LEO-Similarity"] = f"{rec.similarity:.4f}"
    if rec.served_model and rec.served_model != rec.model:
        headers["X-LEO-Route"] = f"{rec.model}->{rec.served_model}"
    if rec.provider:
        headers["X-LEO-Provider"] = rec.provider
    return headers


def _cache_header(technique: str) -> str:
    return {Technique.EXACT: "exact", Technique.SEMANTIC: "semantic", Technique.DEDUP: "dedup",
            Technique.DECOMPOSED: "decomposed", Technique.BYPASS: "bypass"}.get(technique, "miss")


def as_proxy_error(call: Call, exc: Exception) -> ProxyError:
    """The error the client is answered with; call it from the `except` block that caught `exc`."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, ProviderError):
        return provider_error(exc)
    if isinstance(exc, OperationalError | InterfaceError):
        # Down or restarting: a retryable 503; the row is written once it is back.
        log.warning("database unavailable: %s", type(exc).__name__, extra={"request_id": call.request_id})
        return database_unavailable()
    log.exception("pipeline failure", extra={"request_id": call.request_id})
    return ProxyError(500, f"Internal error in the gateway ({type(exc).__name__}); request id {call.request_id}.",
                      type="server_error", code="internal_error")


def error_reply(call: Call, rec: Record, exc: ProxyError) -> Reply:
    return Reply(exc.status, {**exc.headers, **leo_headers(call, rec)}, body=exc.envelope())
