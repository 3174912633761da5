"""The one place that talks to Stripe's client library: configuration and error classification.

Stripe's own network retries are off (`max_network_retries = 0`): retrying belongs to the Celery
task, with backoff, so an outage is retried minutes later rather than hammered within one request.
Every call has a short timeout so a slow Stripe cannot hold a worker for long.
"""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings

TIMEOUT_SECONDS = 10


class BillingNotConfigured(RuntimeError):
    """No Stripe secret key: billing pages say so, tasks skip."""


class StripeUnavailable(RuntimeError):
    """Stripe could not be reached or failed on its side; retrying later may help."""


class StripeRejected(RuntimeError):
    """Stripe refused the request (bad card, invalid parameters); retrying will not help."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


_configured_for: tuple[str, str] | None = None


def configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def client() -> Any:
    """The `stripe` module, configured from settings (api key, api base, timeouts, no retries)."""
    global _configured_for
    key = settings.STRIPE_SECRET_KEY
    if not key:
        raise BillingNotConfigured("Stripe is not configured (STRIPE_SECRET_KEY is empty).")
    base = settings.STRIPE_API_BASE or "https://api.stripe.com"
    if _configured_for != (key, base):
        stripe.api_key = key
        stripe.api_base = base.rstrip("/")
        stripe.max_network_retries = 0
        stripe.default_http_client = stripe.RequestsClient(timeout=TIMEOUT_SECONDS)
        _configured_for = (key, base)
    return stripe


def classify(exc: Exception) -> Exception:
    """Map a stripe error to StripeUnavailable (retry later) or StripeRejected (do not)."""
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)):
        return StripeUnavailable(f"Stripe unreachable: {type(exc).__name__}")
    if isinstance(exc, stripe.StripeError):
        status = getattr(exc, "http_status", None) or 0
        message = getattr(exc, "user_message", None) or "Stripe refused the request."
        if status >= 500 or status in (0, 409, 429):
            return StripeUnavailable(f"Stripe error {status}: {type(exc).__name__}")
        return StripeRejected(str(message), getattr(exc, "code", "") or "")
    return exc
