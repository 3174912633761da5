"""Plans, each tenant's billing account (its Stripe customer and subscription state), and the
write-ahead log of usage sent to Stripe.

Customers pay a monthly base plus a price per million tokens saved. Usage goes to Stripe as one
invoice item per (tenant, UTC day, sequence number): a day's first sync bills what its daily rollup
shows, and a later sync of the same day (late ledger rows) bills only the difference under the next
sequence number. Each item's idempotency key is derived from that identity, and the row is stored
before Stripe is called, so a crash or an outage can never bill a day twice or drop it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import models
from django.utils.functional import cached_property
from djstripe.models import Customer as DjCustomer

from tenants.models import Tenant

FREE_SLUG = "free"
MILLION = Decimal(1_000_000)
CENT = Decimal("0.01")


def usage_cents(tokens_saved: int, price_per_million: Decimal) -> int:
    """What `tokens_saved` cost at `price_per_million` dollars, in cents, rounded half up.

    Rounding happens once per tenant and UTC day (on the day's total), so the invoiced cents
    reconcile exactly with the ledger: sum over days of round_half_up(day's tokens x price).
    """
    dollars = Decimal(tokens_saved) * price_per_million / MILLION
    return int((dollars / CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class Plan(models.Model):
    """A price list entry: a monthly base plus a price per million tokens saved, and the tenant
    limits that come with it (null means unlimited). The Free plan (slug "free") costs nothing and
    its limits are what an unpaid tenant falls back to. Paid plans are mirrored in Stripe as a
    Product and a monthly Plan for the base (see billing/subscriptions.ensure_stripe_plan)."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=200, blank=True)
    monthly_base_cents = models.PositiveIntegerField(default=0)
    price_per_million_saved = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal("0"),
        help_text="US dollars per million tokens saved, billed daily as invoice items.")
    currency = models.CharField(max_length=3, default="usd")
    monthly_token_quota = models.BigIntegerField(null=True, blank=True)
    monthly_spend_quota_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True, help_text="Offered in the portal.")
    sort_order = models.PositiveSmallIntegerField(default=100)
    stripe_product_id = models.CharField(max_length=100, blank=True, editable=False)
    stripe_plan_id = models.CharField(max_length=100, blank=True, editable=False)

    LIMIT_FIELDS = ("monthly_token_quota", "monthly_spend_quota_usd", "requests_per_minute", "tokens_per_minute")

    class Meta:
        ordering = ["sort_order", "monthly_base_cents"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return self.slug == FREE_SLUG

    @property
    def base_display(self) -> Decimal:
        return Decimal(self.monthly_base_cents) / 100

    def limits(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.LIMIT_FIELDS}

    @classmethod
    def free(cls) -> Plan:
        plan, _ = cls.objects.get_or_create(slug=FREE_SLUG, defaults={"name": "Free", "sort_order": 0})
        return plan


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses, plus NONE for a tenant that never subscribed."""

    NONE = "", "No subscription"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete (expired)"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"


# Only these statuses earn a paid plan's limits; anything else falls back to the Free plan's.
PAID_STATUSES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING})


class BillingAccount(models.Model):
    """A tenant's billing state: its Stripe customer (mirrored by dj-stripe), its subscription as
    the latest webhook or API read reported it, and the days whose usage is billable.

    The customer and its card are dj-stripe's (`customer`, `card`). Subscription state lives here
    rather than in dj-stripe's Subscription model: dj-stripe 2.11 cannot sync a legacy-Plan
    subscription item (see docs/billing.md, "What dj-stripe holds").
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="billing")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    customer = models.ForeignKey("djstripe.Customer", to_field="id", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", db_constraint=False)
    subscription_id = models.CharField(max_length=100, blank=True)
    subscription_item_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices, blank=True,
                              default=SubscriptionStatus.NONE)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # Usage of whole UTC days from billing_since through billing_until (open: still subscribed).
    billing_since = models.DateField(null=True, blank=True)
    billing_until = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"billing of {self.tenant}"

    @cached_property
    def card(self) -> dict[str, Any] | None:
        """The card on file: the dj-stripe Customer's default payment method's `card` (brand,
        last4, ...), or None. dj-stripe's mirror is the record; LEO keeps no copy."""
        customer = (DjCustomer.objects.filter(id=self.customer_id).select_related("default_payment_method").first()
                    if self.customer_id else None)
        method = customer.default_payment_method if customer is not None else None
        card = method.stripe_data.get("card") if method is not None else None
        return dict(card) if card else None

    @property
    def card_brand(self) -> str:
        return str((self.card or {}).get("brand") or "")

    @property
    def card_last4(self) -> str:
        return str((self.card or {}).get("last4") or "")

    @property
    def is_paid(self) -> bool:
        return not self.plan.is_free and self.status in PAID_STATUSES

    @property
    def effective_plan(self) -> Plan:
        """The plan whose limits apply now: the chosen one while it is paid for, else Free."""
        return self.plan if self.is_paid or self.plan.is_free else Plan.free()


class StripeUsageSync(models.Model):
    """One invoice item of usage for one tenant and UTC day; written *before* Stripe is called.

    status PENDING with attempts > 0 means a call may have reached Stripe: the next run looks the
    item up by its idempotency key (kept in the item's metadata) before creating it again.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        NOTHING = "nothing", "Nothing to bill (under a cent)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_syncs")
    day = models.DateField()
    seq = models.PositiveSmallIntegerField(help_text="1 for the day's first item, then one per adjustment.")
    tokens_saved = models.BigIntegerField(help_text="Tokens saved this item bills (a difference after seq 1).")
    price_per_million_saved = models.DecimalField(max_digits=10, decimal_places=4)
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    idempotency_key = models.CharField(max_length=80, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    stripe_invoice_item_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "day", "seq"]
        constraints = [models.UniqueConstraint(fields=["tenant", "day", "seq"], name="one_usage_sync_per_seq")]
        indexes = [models.Index(fields=["status", "tenant"])]

    def __str__(self) -> str:
        return self.idempotency_key

    @staticmethod
    def key_for(tenant_id: int, day: Any, seq: int) -> str:
        return f"leo-usage-{tenant_id}-{day:%Y%m%d}-{seq}"
