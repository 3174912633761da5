"""Stripe webhooks: signatures verified with DJSTRIPE_WEBHOOK_SECRET, subscription state applied.

Only the signature is trusted, never the source address. Stripe does not deliver events in order,
so an event is a cue, not the state: the subscription it concerns is re-read from Stripe and that
is applied (a subscription Stripe no longer knows falls back to the event's copy). Its status is
what decides the tenant's limits.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .subscriptions import apply_subscription, refresh_subscription
from .models import BillingAccount
from .stripe_api import StripeRejected, StripeUnavailable

log = logging.getLogger("leo.billing")

SUBSCRIPTION_EVENTS = ("customer.subscription.created", "customer.subscription.updated",
                       "customer.subscription.deleted", "customer.subscription.paused",
                       "customer.subscription.resumed")
INVOICE_EVENTS = ("invoice.payment_failed", "invoice.payment_succeeded", "invoice.paid")


def _account(obj: Any, subscription_id: str = "") -> BillingAccount | None:
    qs = BillingAccount.objects.select_related("plan", "tenant")
    if subscription_id:
        found = qs.filter(subscription_id=subscription_id).first()
        if found is not None:
            return found
    customer = obj.get("customer")
    return qs.filter(customer_id=customer).first() if customer else None


def handle_event(event: Any) -> str:
    """Apply one verified event; returns what was done (for the response and the log)."""
    kind = event["type"]
    obj = event["data"]["object"]
    if kind in SUBSCRIPTION_EVENTS:
        account = _account(obj, obj.get("id", ""))
        if account is None:
            return "unknown subscription"
        if account.subscription_id != obj.get("id"):
            return "not the current subscription"
        try:
            refresh_subscription(account)
        except StripeRejected:  # gone from Stripe: the event's copy is all there is
            apply_subscription(account, obj)
        return f"subscription {account.status}"
    if kind in INVOICE_EVENTS:
        account = _account(obj, obj.get("subscription") or "")
        if account is None or not account.subscription_id:
            return "no subscription"
        refresh_subscription(account)
        return f"subscription {account.status}"
    return "ignored"


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    secret = settings.DJSTRIPE_WEBHOOK_SECRET
    if not secret:
        return JsonResponse({"error": "webhooks are not configured"}, status=503)
    try:
        event = stripe.Webhook.construct_event(request.body, request.headers.get("Stripe-Signature", ""), secret)
    except (ValueError, stripe.SignatureVerificationError):
        return JsonResponse({"error": "invalid signature or payload"}, status=400)
    try:
        outcome = handle_event(event)
    except StripeUnavailable:
        # Stripe redelivers on non-2xx, so a failed re-read is retried by Stripe itself.
        return JsonResponse({"error": "stripe unavailable, retry"}, status=503)
    except StripeRejected as exc:
        log.warning("webhook %s: %s", event.get("id"), exc)
        outcome = "rejected"
    log.info("stripe webhook %s %s: %s", event.get("type"), event.get("id"), outcome)
    return JsonResponse({"received": True, "outcome": outcome})
