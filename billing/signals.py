"""Billing's reactions to the identity app (which must not import billing) and to plan edits.

A tenant made by portal sign-up or by `create_tenant` starts on the Free plan with its limits
applied. The demo tenant (`manage.py demo`, used by benchmarks) is left without limits, as are
tenants made in the admin, until billing puts them on a plan.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from tenants.models import Tenant
from tenants.signals import VIA_CLI, VIA_SIGNUP, tenant_created

from .subscriptions import account_for, apply_limits
from .models import BillingAccount, Plan


@receiver(tenant_created, dispatch_uid="leo_billing_free_plan_on_create")
def free_plan_on_create(sender: Any, tenant: Tenant, via: str, **kwargs: Any) -> None:
    if via not in (VIA_SIGNUP, VIA_CLI):
        return
    apply_limits(account_for(tenant))


@receiver(post_save, sender=Plan, dispatch_uid="leo_billing_plan_limits_changed")
def plan_limits_changed(sender: Any, instance: Plan, created: bool, **kwargs: Any) -> None:
    """Staff edited a plan's limits: every tenant whose limits come from it gets the new ones
    (accounts are read after the save, so they see the new values)."""
    if created:
        return
    for account in BillingAccount.objects.select_related("plan", "tenant").iterator():
        if account.effective_plan.pk == instance.pk:
            apply_limits(account)
