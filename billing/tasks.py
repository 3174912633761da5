"""Celery tasks: thin wrappers over optimizer.rollups, billing.stripe_sync and billing.subscriptions.

Stripe down or slow, or another worker syncing the same tenant: the task is retried by Celery's
own `autoretry_for` with exponential backoff (`retry_backoff`: LEO_BILLING_RETRY_SECONDS, doubling,
capped at an hour by `retry_backoff_max`, full jitter so many tenants do not retry in step). What
a failed run committed stays PENDING and is resent under the same idempotency key, so retries
never bill twice. Without a broker tasks run eagerly, where Celery would re-run a retry at once,
in a loop; so eager runs raise instead and the next scheduled run picks up (`BillingTask`).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from optimizer import rollups

from . import stripe_sync
from .subscriptions import refresh_subscription
from .models import BillingAccount, SubscriptionStatus
from .stripe_api import StripeUnavailable, configured

MAX_BACKOFF_SECONDS = 3600
RETRY_OPTIONS: dict[str, Any] = {
    "retry_backoff": settings.LEO_BILLING_RETRY_SECONDS,
    "retry_backoff_max": MAX_BACKOFF_SECONDS,
    "retry_jitter": True,
}


class BillingTask(Task):  # type: ignore[misc]
    """A task whose retries wait for a worker: run eagerly (no broker) it raises the error instead
    of Celery's in-process immediate re-run, which would hammer a Stripe that is down."""

    def retry(self, *args: Any, exc: BaseException | None = None, **kwargs: Any) -> Any:
        if self.request.is_eager and exc is not None:
            raise exc
        return super().retry(*args, exc=exc, **kwargs)


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


@shared_task(base=BillingTask, name="billing.tasks.sync_tenant_usage", acks_late=True, max_retries=20,
             autoretry_for=(StripeUnavailable, stripe_sync.SyncBusy), **RETRY_OPTIONS)
def sync_tenant_usage(tenant_id: int, through: str | None = None) -> dict[str, Any]:
    """Roll up and send one tenant's unbilled usage through `through` (ISO date; default yesterday)."""
    result = stripe_sync.sync_usage(tenant_id, date.fromisoformat(through) if through else None)
    return {"tenant_id": tenant_id, "sent": result.sent, "amount_cents": result.amount_cents,
            "skipped": result.skipped}


@shared_task(base=BillingTask, name="billing.tasks.refresh_subscriptions", max_retries=5,
             autoretry_for=(StripeUnavailable,), **RETRY_OPTIONS)
def refresh_subscriptions() -> int:
    """Re-read live subscriptions from Stripe, in case a webhook was lost."""
    if not configured():
        return 0
    accounts = BillingAccount.objects.select_related("plan", "tenant").exclude(subscription_id="").exclude(
        status=SubscriptionStatus.CANCELED)
    done = 0
    for account in accounts:
        refresh_subscription(account)
        done += 1
    return done
