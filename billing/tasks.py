"""Celery tasks: thin wrappers over optimizer.rollups and billing.stripe_sync.

Stripe down or slow: `sync_tenant_usage` retries with exponential backoff (LEO_BILLING_RETRY_SECONDS,
default 30 s, doubling, capped at an hour, jittered); what a failed run committed stays PENDING and
is resent under the same idempotency key, so retries never bill twice. Without a broker tasks run eagerly, where a retry
would spin in-process, so eager runs raise instead and the next scheduled run picks up.
"""

from __future__ import annotations

import logging
import random
from datetime import date
from typing import Any

from celery import shared_task
from django.conf import settings

from optimizer import rollups

from . import stripe_sync
from .models import BillingAccount, SubscriptionStatus
from .stripe_api import StripeUnavailable, configured

log = logging.getLogger("leo.billing")

MAX_BACKOFF_SECONDS = 3600


def backoff(retries: int) -> int:
    """Seconds before retry number `retries + 1`: 30, 60, 120, ... (LEO_BILLING_RETRY_SECONDS
    doubling) capped at an hour, +-20% jitter so many tenants do not retry in step."""
    base = min(MAX_BACKOFF_SECONDS, settings.LEO_BILLING_RETRY_SECONDS * 2 ** retries)
    return max(1, int(base * random.uniform(0.8, 1.2)))  # noqa: S311 (jitter, not security)


@shared_task(name="billing.tasks.rollup_recent")
def rollup_recent() -> dict[str, int]:
    """Recompute recent hourly and daily rollups and any period with late ledger rows."""
    result = rollups.rollup_recent()
    return {"hours": result.hours, "days": result.days}


@shared_task(name="billing.tasks.sync_all_usage")
def sync_all_usage(through: str | None = None) -> int:
    """Queue one usage sync per billable tenant (each retries on its own)."""
    if not configured():
        return 0
    tenants = stripe_sync.tenants_to_sync()
    for tenant_id in tenants:
        sync_tenant_usage.delay(tenant_id, through)
    return len(tenants)


@shared_task(bind=True, name="billing.tasks.sync_tenant_usage", max_retries=20, acks_late=True)
def sync_tenant_usage(self: Any, tenant_id: int, through: str | None = None) -> dict[str, Any]:
    """Roll up and send one tenant's unbilled usage through `through` (ISO date; default yesterday)."""
    try:
        result = stripe_sync.sync_usage(tenant_id, date.fromisoformat(through) if through else None)
    except (StripeUnavailable, stripe_sync.SyncBusy) as exc:
        if self.request.is_eager:
            raise
        log.warning("usage sync of tenant %s deferred: %s", tenant_id, exc)
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    return {"tenant_id": tenant_id, "sent": result.sent, "amount_cents": result.amount_cents,
            "skipped": result.skipped}


@shared_task(bind=True, name="billing.tasks.refresh_subscriptions", max_retries=5)
def refresh_subscriptions(self: Any) -> int:
    """Re-read live subscriptions from Stripe, in case a webhook was lost."""
    if not configured():
        return 0
    accounts = BillingAccount.objects.select_related("plan", "tenant").exclude(subscription_id="").exclude(
        status=SubscriptionStatus.CANCELED)
    done = 0
    for account in accounts:
        try:
            stripe_sync.refresh_subscription(account)
            done += 1
        except StripeUnavailable as exc:
            if self.request.is_eager:
                raise
            raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    return done
