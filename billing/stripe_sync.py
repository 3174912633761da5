"""Everything LEO asks of Stripe: customers, cards, plans, subscriptions, usage invoice items, invoices.

Customers and their payment methods are mirrored into dj-stripe (`djstripe.Customer`,
`djstripe.PaymentMethod`) as they are written, and read back from there: the card on file is the
dj-stripe Customer's default payment method. A mirror that fails raises; nothing is swallowed.
Subscriptions, invoices and invoice items stay with LEO and the Stripe API: dj-stripe 2.11 cannot
sync them from a legacy-Plan Stripe (localstripe); docs/billing.md gives the failing calls.

Usage billing (see billing/models.py for the invariants):
1. `sync_usage` first refreshes the tenant's stale daily rollups from the ledger;
2. rows a previous run left PENDING are sent first (Stripe was down, or the worker died);
3. for each billable UTC day, target = round_half_up(day's tokens saved x price per million) cents;
   if that differs from what the day's earlier items billed, a new StripeUsageSync row for the
   difference is committed *before* Stripe is called, with an idempotency key derived from
   (tenant, day, sequence);
4. the invoice item is created with that key (and the key in its metadata). A row that was tried
   before is first looked up in Stripe by that metadata, which also covers Stripe's 24-hour
   idempotency window and servers (localstripe) that ignore the Idempotency-Key header.
So a day is billed once whatever fails, and reruns add nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Max, Sum
from django.utils import timezone
from djstripe.models import Customer as DjCustomer
from djstripe.models import PaymentMethod as DjPaymentMethod

from optimizer import rollups
from optimizer.models import UsageRollup
from tenants.models import Tenant

from .models import PAID_STATUSES, BillingAccount, Plan, StripeUsageSync, SubscriptionStatus, usage_cents
from .stripe_api import StripeRejected, StripeUnavailable, call, client

log = logging.getLogger("leo.billing")

# Late ledger rows older than this are not looked for (the ledger is written within seconds).
ROLLUP_LOOKBACK = timedelta(days=35)
# A sync cannot outlive Celery's hard time limit (CELERY_TASK_TIME_LIMIT, 300 s), so a lock left by
# a killed worker is stale after that; the retry with backoff then gets through.
LOCK_SECONDS = 300


class SyncBusy(RuntimeError):
    """Another worker is syncing this tenant right now."""


# --- accounts and limits ------------------------------------------------------------------------

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


# --- customers and plans ------------------------------------------------------------------------

def mirror(model: Any, obj: Any) -> Any:
    """Store a Stripe object in dj-stripe's table for it. dj-stripe resolves the owning Account
    through GET /v1/account (or an APIKey row it stored before); its errors propagate."""
    with transaction.atomic():
        return call(model.sync_from_stripe_data, obj, api_key=settings.STRIPE_SECRET_KEY)


def ensure_customer(account: BillingAccount, email: str = "") -> str:
    """The tenant's Stripe customer id, creating the customer (once: idempotent) if needed, and
    its dj-stripe mirror (re-read from Stripe if an earlier mirror failed)."""
    stripe = client()
    if account.customer_id:
        customer_id = str(account.customer_id)
        if not DjCustomer.objects.filter(id=customer_id).exists():
            mirror(DjCustomer, call(stripe.v1.customers.retrieve, customer_id))
        return customer_id
    tenant = account.tenant
    params: dict[str, Any] = {"name": tenant.name,
                              "metadata": {"leo_tenant_id": str(tenant.id), "leo_tenant_slug": tenant.slug}}
    if email:
        params["email"] = email
    customer = call(stripe.v1.customers.create, params=params,
                    options={"idempotency_key": f"leo-customer-{tenant.id}-{tenant.slug}"})
    # The id is kept before mirroring, so a failed mirror is redone rather than a second customer made.
    account.customer_id = customer.id
    account.save(update_fields=["customer", "updated_at"])
    mirror(DjCustomer, customer)
    return str(customer.id)


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


# --- card and subscription ----------------------------------------------------------------------

def setup_intent_secret(account: BillingAccount, email: str = "") -> str:
    """A SetupIntent's client secret for Stripe.js to collect a card off-session."""
    stripe = client()
    customer = ensure_customer(account, email)
    intent = call(stripe.v1.setup_intents.create,
                  params={"customer": customer, "usage": "off_session", "payment_method_types": ["card"]})
    return str(intent.client_secret)


def _attach_card(account: BillingAccount, payment_method_id: str) -> None:
    """Attach the card Stripe.js collected and make it the customer's default (both mirrored)."""
    stripe = client()
    customer = str(account.customer_id)
    method = call(stripe.v1.payment_methods.retrieve, payment_method_id)
    if method.get("customer") not in (None, customer):
        raise StripeRejected("That card belongs to another customer.")
    if method.get("customer") is None:
        method = call(stripe.v1.payment_methods.attach, payment_method_id, params={"customer": customer})
    mirror(DjPaymentMethod, method)
    updated = call(stripe.v1.customers.update, customer,
                   params={"invoice_settings": {"default_payment_method": payment_method_id}})
    mirror(DjCustomer, updated)


def subscribe(account: BillingAccount, plan: Plan, payment_method_id: str = "") -> BillingAccount:
    """Put the tenant on `plan`: a new subscription, or a plan change of the current one."""
    if plan.is_free:
        return cancel(account)
    stripe = client()
    ensure_customer(account)
    if payment_method_id:
        _attach_card(account, payment_method_id)
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


def _get(obj: Any, name: str, default: Any = None) -> Any:
    try:
        return obj[name]
    except (KeyError, TypeError):
        return getattr(obj, name, default)


def apply_subscription(account: BillingAccount, sub: Any) -> BillingAccount:
    """Record a Stripe subscription's state (from an API call or a webhook) and apply limits."""
    status = str(_get(sub, "status", "") or "")
    account.subscription_id = str(_get(sub, "id", ""))
    account.status = status if status in SubscriptionStatus.values else SubscriptionStatus.INCOMPLETE
    account.cancel_at_period_end = bool(_get(sub, "cancel_at_period_end", False))
    items = _get(_get(sub, "items", {}) or {}, "data", []) or []
    if items:
        account.subscription_item_id = str(_get(items[0], "id", ""))
        period_end = _get(items[0], "current_period_end") or _get(sub, "current_period_end")
        stripe_plan = _get(items[0], "plan") or _get(sub, "plan")
    else:
        period_end = _get(sub, "current_period_end")
        stripe_plan = _get(sub, "plan")
    if period_end:
        account.current_period_end = datetime.fromtimestamp(int(period_end), tz=UTC)
    plan_id = _get(stripe_plan, "id") if stripe_plan is not None else None
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


# --- usage --------------------------------------------------------------------------------------

@dataclass
class SyncResult:
    tenant_id: int
    sent: list[str] = field(default_factory=list)
    amount_cents: int = 0
    skipped: str = ""


def lock_key(tenant_id: int) -> str:
    return f"leo:billing:sync:{tenant_id}"


@contextmanager
def _tenant_lock(tenant_id: int) -> Iterator[None]:
    # Two workers syncing one tenant would plan the same new row; the unique (tenant, day, seq)
    # constraint would stop the second, but a lock avoids the wasted work and the error.
    key = lock_key(tenant_id)
    if not cache.add(key, "1", LOCK_SECONDS):
        raise SyncBusy(f"tenant {tenant_id} is being synced")
    try:
        yield
    finally:
        cache.delete(key)


def _refresh_rollups(tenant_id: int, since: date, through: date) -> None:
    start = max(datetime.combine(since, datetime.min.time(), tzinfo=UTC), timezone.now() - ROLLUP_LOOKBACK)
    end = datetime.combine(through + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    for tid, day in sorted(rollups.stale_periods(UsageRollup.Period.DAY, start, end, [tenant_id])):
        rollups.rollup(tid, UsageRollup.Period.DAY, day)


def _day_totals(tenant_id: int, since: date, through: date) -> dict[date, int]:
    start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(through + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    rows = (UsageRollup.objects.filter(tenant_id=tenant_id, period=UsageRollup.Period.DAY,
                                       start__gte=start, start__lt=end)
            .values("start").annotate(tokens=Sum("tokens_saved")).order_by("start"))
    return {r["start"].astimezone(UTC).date(): int(r["tokens"] or 0) for r in rows}


def _plan_rows(account: BillingAccount, since: date, through: date) -> list[StripeUsageSync]:
    """Commit one new row per day whose billed total differs from its rollup (steps 3 of the doc)."""
    totals = _day_totals(account.tenant_id, since, through)
    billed: dict[date, dict[str, Any]] = {
        r["day"]: r for r in StripeUsageSync.objects.filter(tenant_id=account.tenant_id, day__gte=since,
                                                            day__lte=through)
        .values("day").annotate(tokens=Sum("tokens_saved"), cents=Sum("amount_cents"), seq=Max("seq")).order_by()
    }
    new: list[StripeUsageSync] = []
    for day in sorted(totals.keys() | billed.keys()):
        tokens = totals.get(day, 0)
        done = billed.get(day)
        if done is None:
            price, seq, done_tokens, done_cents = account.plan.price_per_million_saved, 1, 0, 0
        else:
            # A day keeps the price of its first item, so adjustments never reprice billed tokens.
            price = StripeUsageSync.objects.get(tenant_id=account.tenant_id, day=day, seq=1).price_per_million_saved
            seq, done_tokens, done_cents = done["seq"] + 1, int(done["tokens"]), int(done["cents"])
        cents = usage_cents(tokens, price) - done_cents
        if tokens == done_tokens and cents == 0:
            continue
        new.append(StripeUsageSync(
            tenant_id=account.tenant_id, day=day, seq=seq, tokens_saved=tokens - done_tokens,
            price_per_million_saved=price, amount_cents=cents, currency=account.plan.currency,
            idempotency_key=StripeUsageSync.key_for(account.tenant_id, day, seq),
            status=StripeUsageSync.Status.PENDING if cents else StripeUsageSync.Status.NOTHING))
    with transaction.atomic():
        return StripeUsageSync.objects.bulk_create(new)


def _find_item(customer: str, key: str) -> str | None:
    """The id of an invoice item already created under `key` (pending or on an invoice), if any."""
    stripe = client()
    for item in call(stripe.v1.invoice_items.list, params={"customer": customer, "limit": 100}).auto_paging_iter():
        if (_get(item, "metadata") or {}).get("leo_usage_key") == key:
            return str(item.id)
    for invoice in call(stripe.v1.invoices.list, params={"customer": customer, "limit": 100}).auto_paging_iter():
        for line in _get(_get(invoice, "lines", {}), "data", []) or []:
            if (_get(line, "metadata") or {}).get("leo_usage_key") == key:
                return str(_get(line, "invoice_item") or _get(line, "id"))
    return None


def _send(sync: StripeUsageSync, customer: str) -> None:
    stripe = client()
    try:
        found = _find_item(customer, sync.idempotency_key) if sync.attempts else None
        if found is None:
            # Counted before the call: if this process dies mid-call, the next run looks first.
            StripeUsageSync.objects.filter(pk=sync.pk).update(attempts=F("attempts") + 1)
            sync.attempts += 1
            item = call(stripe.v1.invoice_items.create, params={
                "customer": customer, "amount": sync.amount_cents, "currency": sync.currency,
                "description": (f"LEO Optima: {sync.tokens_saved:,} tokens saved on {sync.day:%Y-%m-%d}"
                                f" at ${sync.price_per_million_saved.normalize():f} per million"
                                + (f" (adjustment {sync.seq - 1})" if sync.seq > 1 else "")),
                "metadata": {"leo_usage_key": sync.idempotency_key, "leo_tenant_id": str(sync.tenant_id),
                             "leo_day": sync.day.isoformat(), "leo_tokens_saved": str(sync.tokens_saved)}},
                options={"idempotency_key": sync.idempotency_key})
            found = str(item.id)
    except (StripeUnavailable, StripeRejected) as exc:
        StripeUsageSync.objects.filter(pk=sync.pk).update(last_error=str(exc)[:300])
        raise
    StripeUsageSync.objects.filter(pk=sync.pk).update(
        status=StripeUsageSync.Status.SENT, stripe_invoice_item_id=found, sent_at=timezone.now(), last_error="")


def billable_through(now: datetime | None = None) -> date:
    """The default last day to bill: yesterday (UTC), a closed day whose ledger has settled."""
    return (now or timezone.now()).astimezone(UTC).date() - timedelta(days=1)


def sync_usage(tenant_id: int, through: date | None = None) -> SyncResult:
    """Send the tenant's unbilled usage through `through` (default: yesterday) to Stripe.

    Raises StripeUnavailable when Stripe cannot be reached: what was committed stays PENDING and
    the next run (the task retries with backoff) sends it under the same key.
    """
    result = SyncResult(tenant_id)
    account = BillingAccount.objects.select_related("plan", "tenant").filter(tenant_id=tenant_id).first()
    if account is None or not account.customer_id or account.billing_since is None:
        result.skipped = "not subscribed"
        return result
    through = through or billable_through()
    if account.billing_until is not None:
        through = min(through, account.billing_until)
    with _tenant_lock(tenant_id):
        pending = list(StripeUsageSync.objects.filter(tenant_id=tenant_id, status=StripeUsageSync.Status.PENDING))
        for sync in pending:
            _send(sync, str(account.customer_id))
            result.sent.append(sync.idempotency_key)
            result.amount_cents += sync.amount_cents
        if through < account.billing_since:
            return result
        _refresh_rollups(tenant_id, account.billing_since, through)
        for sync in _plan_rows(account, account.billing_since, through):
            if sync.status == StripeUsageSync.Status.PENDING:
                _send(sync, str(account.customer_id))
                result.sent.append(sync.idempotency_key)
                result.amount_cents += sync.amount_cents
    return result


def tenants_to_sync() -> list[int]:
    """Tenants with a subscription history or rows still pending."""
    ids = set(BillingAccount.objects.filter(billing_since__isnull=False).values_list("tenant_id", flat=True))
    ids |= set(StripeUsageSync.objects.filter(status=StripeUsageSync.Status.PENDING)
               .values_list("tenant_id", flat=True))
    return sorted(ids)


# --- invoices -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class InvoiceView:
    id: str
    number: str
    created: datetime | None
    amount_cents: int
    currency: str
    status: str
    url: str

    @property
    def amount(self) -> Decimal:
        return Decimal(self.amount_cents) / 100


def _invoice_view(inv: Any, status: str | None = None) -> InvoiceView:
    created = _get(inv, "created") or _get(inv, "date")
    return InvoiceView(
        id=str(_get(inv, "id", "") or ""), number=str(_get(inv, "number", "") or ""),
        created=datetime.fromtimestamp(int(created), tz=UTC) if created else None,
        amount_cents=int(_get(inv, "total", 0) or 0), currency=str(_get(inv, "currency", "usd") or "usd"),
        status=status or str(_get(inv, "status", "") or ""), url=str(_get(inv, "hosted_invoice_url", "") or ""))


def invoices(account: BillingAccount, limit: int = 24) -> tuple[InvoiceView | None, list[InvoiceView]]:
    """(the upcoming invoice or None, the latest invoices), read from Stripe."""
    if not account.customer_id:
        return None, []
    stripe = client()
    upcoming = None
    if account.subscription_id and account.status != SubscriptionStatus.CANCELED:
        try:
            upcoming = _invoice_view(call(stripe.v1.invoices.create_preview,
                                          params={"customer": str(account.customer_id)}), status="upcoming")
        except StripeRejected:  # no upcoming invoice
            upcoming = None
    listed = call(stripe.v1.invoices.list, params={"customer": str(account.customer_id), "limit": limit})
    return upcoming, [_invoice_view(inv) for inv in listed.data]
