"""The tenant's Stripe customer and its card, both mirrored into dj-stripe as they are written.

Customers and their payment methods are stored in dj-stripe's tables (`djstripe.Customer`,
`djstripe.PaymentMethod`) as soon as Stripe returns them, and read back from there: the card on
file is the dj-stripe Customer's default payment method. A mirror that fails raises; nothing is
swallowed.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from djstripe.models import Customer as DjCustomer
from djstripe.models import PaymentMethod as DjPaymentMethod

from .models import BillingAccount
from .stripe_api import StripeRejected, call, client


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


def setup_intent_secret(account: BillingAccount, email: str = "") -> str:
    """A SetupIntent's client secret for Stripe.js to collect a card off-session."""
    stripe = client()
    customer = ensure_customer(account, email)
    intent = call(stripe.v1.setup_intents.create,
                  params={"customer": customer, "usage": "off_session", "payment_method_types": ["card"]})
    return str(intent.client_secret)


def attach_card(account: BillingAccount, payment_method_id: str) -> None:
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
