"""Billing's reactions to the identity app (which must not import billing): a tenant created by
self-service sign-up starts on the Free plan, with its limits applied.

Tenants made by staff (`create_tenant`, the admin, benchmarks) keep the limits they were given
until billing puts them on a plan.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from tenants.models import AuditEvent


@receiver(post_save, sender=AuditEvent, dispatch_uid="leo_billing_free_plan_on_signup")
def free_plan_on_signup(sender: Any, instance: AuditEvent, created: bool, **kwargs: Any) -> None:
    if not created or instance.action != "tenant.created" or instance.tenant_id is None:
        return
    from . import stripe_sync

    account = stripe_sync.account_for(instance.tenant)  # type: ignore[arg-type]
    stripe_sync.apply_limits(account)


@receiver(post_save, sender="billing.Plan", dispatch_uid="leo_billing_plan_limits_changed")
def plan_limits_changed(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """Staff edited a plan's limits: every tenant whose limits come from it gets the new ones
    (accounts are read after the save, so they see the new values)."""
    if created:
        return
    from . import stripe_sync
    from .models import BillingAccount

    for account in BillingAccount.objects.select_related("plan", "tenant").iterator():
        if account.effective_plan.pk == instance.pk:
            stripe_sync.apply_limits(account)
