"""The one place that talks to Stripe's client library: a configured `stripe.StripeClient` and
error classification.

LEO's own calls go through a `StripeClient` built from settings (key, API base, timeout), never
through the `stripe` module's global configuration. Stripe's own network retries are off
(`max_network_retries=0`): retrying belongs to the Celery task, with backoff, so an outage is
retried minutes later rather than hammered within one request. Every call has a short timeout so
a slow Stripe cannot hold a worker for long.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import stripe
from django.conf import settings

TIMEOUT_SECONDS = 10
T = TypeVar("T")


class BillingNotConfigured(RuntimeError):
    """No Stripe secret key: billing pages say so, tasks skip."""


class StripeUnavailable(RuntimeError):
    """Stripe could not be reached or failed on its side; retrying later may help."""


class StripeRejected(RuntimeError):
    """Stripe refused the request (bad card, invalid parameters); retrying will not help."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


_clients: dict[tuple[str, str, int], stripe.StripeClient] = {}


def configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def api_base() -> str:
    return (settings.STRIPE_API_BASE or "https://api.stripe.com").rstrip("/")


def client() -> stripe.StripeClient:
    """A StripeClient for the configured key and API base (one per configuration, reused)."""
    key = settings.STRIPE_SECRET_KEY
    if not key:
        raise BillingNotConfigured("Stripe is not configured (STRIPE_SECRET_KEY is empty).")
    config = (key, api_base(), TIMEOUT_SECONDS)
    if config not in _clients:
        _clients[config] = stripe.StripeClient(
            key, base_addresses={"api": config[1]}, max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS))
    return _clients[config]


def classify(exc: stripe.StripeError) -> StripeUnavailable | StripeRejected:
    """Map a stripe error to StripeUnavailable (retry later) or StripeRejected (do not)."""
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)):
        return StripeUnavailable(f"Stripe unreachable: {type(exc).__name__}")
    status = getattr(exc, "http_status", None) or 0
    if status >= 500 or status in (0, 409, 429):
        return StripeUnavailable(f"Stripe error {status}: {type(exc).__name__}")
    message = getattr(exc, "user_message", None) or "Stripe refused the request."
    return StripeRejected(str(message), getattr(exc, "code", "") or "")


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the Stripe library, turning its errors into StripeUnavailable / StripeRejected."""
    try:
        return fn(*args, **kwargs)
    except stripe.StripeError as exc:
        raise classify(exc) from exc


def get_field(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a Stripe object, a webhook's plain dict or a dj-stripe model alike."""
    try:
        return obj[name]
    except (KeyError, TypeError):
        return getattr(obj, name, default)
