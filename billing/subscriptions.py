"""Plans and subscriptions: the tenant's plan, its limits, and its Stripe subscription.

Paid plans are Stripe Products with a monthly Plan for the base (legacy Plans, which localstripe
serves); usage is billed apart, as invoice items (billing/stripe_sync.py). A subscription's state,
from an API call or a webhook, decides the tenant's limits (`apply_subscription`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from tenants.models import Tenant

from .customers import attach_card, ensure_customer
from .models import PAID_STATUSES, BillingAccount, Plan, SubscriptionStatus
from .stripe_api import StripeRejected, call, client, get_field
from .stripe_sync import sync_usage


def account_for(tenant: Tenant) -> BillingAccount:
    """The tenant's billing account, created on the Free plan on first use."""
    account, _ = BillingAccount.objects.select_related("plan", "tenant").get_or_create(
        tenant=tenant, defaults={"plan": Plan.free()})
    return account


def apply_limits(account: BillingAccount) -> None:
    """Copy the effective plan's limits onto the tenant (tenants/quotas.py enforces them)."""
    limits = account.effective_plan.limits()
    tenant = account.tenant
    changed = [name for name, value in limits.items() if getattr(tenant, name) != value]
    for name in changed:
        setattr(tenant, name, limits[name])
    if changed:
        tenant.save(update_fields=changed)


def ensure_stripe_plan(plan: Plan) -> str:
    """The Stripe Plan id that bills `plan`'s monthly base, creating Product and Plan if missing.

    Stripe Plans are immutable in price, so the id carries the amount: a new base price makes a
    new Stripe Plan, and existing subscriptions keep theirs until they change plan.
    """
    if plan.is_free:
        raise ValueError("the Free plan is not sold through Stripe")
    stripe = client()
    plan_id = f"leo-{plan.slug}-{plan.monthly_base_cents}-{plan.currency}"
    if plan.stripe_plan_id == plan_id:
        return plan_id
    product_id = f"leo-{plan.slug}"
    try:
        call(stripe.v1.products.retrieve, product_id)
    except StripeRejected:
        call(stripe.v1.products.create,
             params={"id": product_id, "name": f"LEO Optima {plan.name}", "type": "service"})
    try:
        call(stripe.v1.plans.retrieve, plan_id)
    except StripeRejected:
        call(stripe.v1.plans.create, params={"id": plan_id, "product": product_id, "amount": plan.monthly_base_cents,
                                             "currency": plan.currency, "interval": "month", "nickname": plan.name})
    Plan.objects.filter(pk=plan.pk).update(stripe_product_id=product_id, stripe_plan_id=plan_id)
    plan.stripe_product_id, plan.stripe_plan_id = product_id, plan_id
    return plan_id


def subscribe(account: BillingAccount, plan: Plan, payment_method_id: str = "") -> BillingAccount:
    """Put the tenant on `plan`: a new subscription, or a plan change of the current one."""
    if plan.is_free:
        return cancel(account)
    stripe = client()
    ensure_customer(account)
    if payment_method_id:
        attach_card(account, payment_method_id)
    elif account.card is None:
        raise StripeRejected("Add a card first.")
    plan_id = ensure_stripe_plan(plan)
    if account.subscription_id and account.status not in ("", SubscriptionStatus.CANCELED,
                                                          SubscriptionStatus.INCOMPLETE_EXPIRED):
        sub = call(stripe.v1.subscriptions.update, account.subscription_id,
                   params={"items": [{"id": account.subscription_item_id, "plan": plan_id}]})
    else:
        sub = call(stripe.v1.subscriptions.create,
                   params={"customer": str(account.customer_id), "items": [{"plan": plan_id}],
                           "metadata": {"leo_tenant_id": str(account.tenant_id)}})
        today = timezone.now().astimezone(UTC).date()
        account.billing_since = today
        account.billing_until = None
    account.plan = plan
    apply_subscription(account, sub)
    return account


def cancel(account: BillingAccount) -> BillingAccount:
    """Cancel now: today's usage is sent first, the subscription ends with a final invoice
    (`invoice_now`), and the tenant drops to the Free plan's limits."""
    if account.subscription_id and account.status != SubscriptionStatus.CANCELED:
        stripe = client()
        today = timezone.now().astimezone(UTC).date()
        sync_usage(account.tenant_id, through=today)
        sub = call(stripe.v1.subscriptions.cancel, account.subscription_id, params={"invoice_now": True})
        account.billing_until = today
        apply_subscription(account, sub)
    account.plan = Plan.free()
    account.save(update_fields=["plan", "updated_at"])
    apply_limits(account)
    return account


def apply_subscription(account: BillingAccount, sub: Any) -> BillingAccount:
    """Record a Stripe subscription's state (from an API call or a webhook) and apply limits."""
    status = str(get_field(sub, "status", "") or "")
    account.subscription_id = str(get_field(sub, "id", ""))
    account.status = status if status in SubscriptionStatus.values else SubscriptionStatus.INCOMPLETE
    account.cancel_at_period_end = bool(get_field(sub, "cancel_at_period_end", False))
    items = get_field(get_field(sub, "items", {}) or {}, "data", []) or []
    if items:
        account.subscription_item_id = str(get_field(items[0], "id", ""))
        period_end = get_field(items[0], "current_period_end") or get_field(sub, "current_period_end")
        stripe_plan = get_field(items[0], "plan") or get_field(sub, "plan")
    else:
        period_end = get_field(sub, "current_period_end")
        stripe_plan = get_field(sub, "plan")
    if period_end:
        account.current_period_end = datetime.fromtimestamp(int(period_end), tz=UTC)
    plan_id = get_field(stripe_plan, "id") if stripe_plan is not None else None
    if plan_id and account.status in PAID_STATUSES:
        known = Plan.objects.filter(stripe_plan_id=plan_id).first()
        if known is not None:
            account.plan = known
    if account.status in (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED):
        # Ended (here or in Stripe's dashboard): back on Free; its usage is billable up to today.
        account.plan = Plan.free()
        if account.billing_until is None and account.billing_since is not None:
            account.billing_until = timezone.now().astimezone(UTC).date()
    account.save()
    apply_limits(account)
    return account


def refresh_subscription(account: BillingAccount) -> BillingAccount:
    """Re-read the subscription from Stripe (covers a webhook that never arrived)."""
    if not account.subscription_id:
        return account
    sub = call(client().v1.subscriptions.retrieve, account.subscription_id)
    return apply_subscription(account, sub)
