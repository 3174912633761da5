"""dj-stripe against a real localstripe: what it holds for LEO (customers and their cards, written
as LEO writes them and read back from there), that a failed mirror is an error and not a warning,
and the boundary: the dj-stripe syncs that cannot run on a legacy-Plan Stripe fail here with the
exact errors docs/billing.md quotes (if one of these starts passing, dj-stripe can take it over)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import stripe
from django.db import IntegrityError
from djstripe.models import Customer, Event, Invoice, InvoiceItem, PaymentMethod, Subscription

from billing import customers, subscriptions
from billing.models import BillingAccount, Plan
from billing.stripe_api import StripeRejected, client
from tenants.models import Tenant
from tests.test_billing_support import (  # noqa: F401  (fixtures)
    SECRET_KEY,
    LocalStripe,
    localstripe,
    seed_djstripe_account,
    stripe_settings,
    test_card,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def pro(stripe_settings: LocalStripe) -> Plan:
    Plan.objects.create(slug="free", name="Free", sort_order=0)
    return Plan.objects.create(slug="pro", name="Pro", monthly_base_cents=4900, price_per_million_saved=Decimal("2"))


@pytest.fixture
def djstripe_calls_localstripe(stripe_settings: LocalStripe, monkeypatch: pytest.MonkeyPatch) -> LocalStripe:
    """dj-stripe's own API calls use the `stripe` module's globals; aim them at localstripe too."""
    monkeypatch.setattr(stripe, "api_base", stripe_settings.url)
    monkeypatch.setattr(stripe, "api_key", SECRET_KEY)
    return stripe_settings


def test_customer_and_card_live_in_djstripe(stripe_settings: LocalStripe, pro: Plan) -> None:
    seed_djstripe_account()
    account = subscriptions.account_for(Tenant.create("Mirrored"))
    subscriptions.subscribe(account, pro, test_card(stripe_settings, "5555555555554444"))

    customer = Customer.objects.get(id=account.customer_id)
    assert customer.metadata["leo_tenant_id"] == str(account.tenant_id)
    method = PaymentMethod.objects.get(customer=customer)
    assert customer.default_payment_method == method
    account = BillingAccount.objects.get(pk=account.pk)
    assert (account.card_brand, account.card_last4) == ("visa", "4444")  # read from dj-stripe (localstripe calls every card visa)
    assert not {"card_brand", "card_last4"} & {f.name for f in BillingAccount._meta.get_fields()}


def test_a_failed_mirror_raises_and_is_redone_without_a_second_customer(
        djstripe_calls_localstripe: LocalStripe) -> None:
    """No Account row: dj-stripe asks GET /v1/account, which localstripe does not serve. That is an
    error the caller sees (it was a logged warning before); the next call mirrors the same customer."""
    account = subscriptions.account_for(Tenant.create("Unmirrored"))
    with pytest.raises(StripeRejected):
        customers.ensure_customer(account)
    first = BillingAccount.objects.get(pk=account.pk).customer_id
    assert first and not Customer.objects.filter(id=first).exists()

    seed_djstripe_account()
    account = BillingAccount.objects.select_related("tenant").get(pk=account.pk)
    assert customers.ensure_customer(account) == first
    assert Customer.objects.filter(id=first).exists()
    with djstripe_calls_localstripe.api() as api:
        mine = [c for c in api.get("/v1/customers", params={"limit": 100}).json()["data"]
                if c["metadata"].get("leo_tenant_slug") == account.tenant.slug]
    assert [c["id"] for c in mine] == [first]


def legacy_plan_subscription(localstripe: LocalStripe) -> tuple[Any, Any]:
    """A customer with a card on a legacy monthly Plan, as LEO makes them."""
    seed_djstripe_account()
    sc = client()
    customer = sc.v1.customers.create(params={"name": "Boundary"})
    Customer.sync_from_stripe_data(customer, api_key=SECRET_KEY)
    card = test_card(localstripe)
    sc.v1.payment_methods.attach(card, params={"customer": customer.id})
    sc.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": card}})
    product = sc.v1.products.create(params={"id": f"leo-boundary-{customer.id}", "name": "B", "type": "service"})
    plan = sc.v1.plans.create(params={"id": f"{product.id}-100-usd", "product": product.id, "amount": 100,
                                      "currency": "usd", "interval": "month"})
    return customer, sc.v1.subscriptions.create(params={"customer": customer.id, "items": [{"plan": plan.id}]})


def test_djstripe_cannot_sync_localstripe_subscriptions_invoices_or_items(
        djstripe_calls_localstripe: LocalStripe) -> None:
    customer, sub = legacy_plan_subscription(djstripe_calls_localstripe)
    assert "subscription" not in sub["items"]["data"][0]  # localstripe's item has no parent id

    # The subscription item cannot be stored without its parent (NOT NULL on subscription_id);
    # dj-stripe takes that IntegrityError for a race, re-queries, and raises DoesNotExist.
    with pytest.raises(Exception, match="SubscriptionItem matching query does not exist") as failed:
        Subscription.sync_from_stripe_data(sub, api_key=SECRET_KEY)
    cause = failed.value.__context__
    assert isinstance(cause, IntegrityError) and "subscription_id" in str(cause)

    # An invoice references its subscription, so it fails the same way.
    (invoice,) = client().v1.invoices.list(params={"customer": customer.id}).data
    with pytest.raises(Exception, match="SubscriptionItem matching query does not exist"):
        Invoice.sync_from_stripe_data(invoice, api_key=SECRET_KEY)

    # localstripe's invoice items have no `discounts` list, which dj-stripe iterates.
    item = client().v1.invoice_items.create(params={"customer": customer.id, "amount": 123, "currency": "usd"})
    with pytest.raises(TypeError, match="'NoneType' object is not iterable"):
        InvoiceItem.sync_from_stripe_data(item, api_key=SECRET_KEY)


def test_djstripe_webhook_processing_fails_on_localstripe_subscription_events(
        djstripe_calls_localstripe: LocalStripe) -> None:
    """What dj-stripe's webhook endpoint (djstripe.urls) does with a verified event: Event.process,
    whose customer.subscription.* handler re-reads the subscription and syncs it, and fails."""
    customer, sub = legacy_plan_subscription(djstripe_calls_localstripe)
    with djstripe_calls_localstripe.api() as api:
        events = api.get("/v1/events", params={"limit": 100}).json()["data"]
    (created,) = [e for e in events if e["type"] == "customer.subscription.created"
                  and e["data"]["object"]["id"] == sub.id]
    with pytest.raises(Exception, match="SubscriptionItem matching query does not exist"):
        Event.process(created, api_key=SECRET_KEY)
    assert not Event.objects.filter(id=created["id"]).exists()  # rolled back: Stripe would redeliver
