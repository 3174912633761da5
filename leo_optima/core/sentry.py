"""Sentry error reporting, on only when a DSN is configured, with events scrubbed like the logs."""

from __future__ import annotations

from typing import Any

from .redact import REDACTED, redact_value

__all__ = ["init_sentry"]

_SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def _scrub_event(event: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry ``before_send``: drop credential headers and cookies, then redact every string."""
    req = event.get("request")
    if isinstance(req, dict):
        headers = req.get("headers")
        if isinstance(headers, dict):
            req["headers"] = {
                k: (REDACTED if str(k).lower() in _SENSITIVE_HEADERS else v) for k, v in headers.items()
            }
        req.pop("cookies", None)
        # Prompts are customer data: never ship request bodies to a third party.
        if "data" in req:
            req["data"] = REDACTED
    return redact_value(event)  # type: ignore[no-any-return]


def _scrub_breadcrumb(crumb: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    return redact_value(crumb)  # type: ignore[no-any-return]


def init_sentry(
    dsn: str | None,
    *,
    environment: str | None = None,
    release: str | None = None,
    traces_sample_rate: float = 0.0,
) -> bool:
    """Start Sentry when ``dsn`` is set (``SENTRY_DSN``); return whether it was started.

    ``send_default_pii`` stays off and every event and breadcrumb is scrubbed with the same rules as
    the logs. sentry-sdk is imported only when a DSN is set: it is an optional dependency
    (requirements/production.txt, not base.txt), and without a DSN it is never loaded.
    """
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        send_default_pii=False,
        traces_sample_rate=traces_sample_rate,
        before_send=_scrub_event,  # type: ignore[arg-type]
        before_breadcrumb=_scrub_breadcrumb,  # type: ignore[arg-type]
        max_request_body_size="never",
    )
    return True
