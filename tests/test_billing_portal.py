"""The billing portal page and the Stripe webhook endpoint, in process (Django's test client)
against a real localstripe: roles and outsiders, form errors, CSP for Stripe.js, signature checks,
and an unpaid tenant falling back to the Free limits."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from billing import subscriptions
from billing.models import Plan
from tenants.models import Membership, Role, Tenant, User
from tests.test_billing_support import (  # noqa: F401  (fixtures)
    LocalStripe,
    localstripe,
    seed_djstripe_account,
    stripe_settings,
    test_card,
)

pytestmark = pytest.mark.django_db
WEBHOOK_SECRET = "whsec_leo_test_secret"


@pytest.fixture
def plans(stripe_settings: LocalStripe) -> Plan:
    Plan.objects.create(slug="free", name="Free", sort_order=0, requests_per_minute=5)
    return Plan.objects.create(slug="pro", name="Pro", monthly_base_cents=4900,
                               price_per_million_saved=Decimal("2"), requests_per_minute=1000)


@pytest.fixture
def actors() -> dict[str, Any]:
    tenant = Tenant.create("Portal Billing")
    other = Tenant.create("Elsewhere")
    users = {}
    for name, role, t in (("owner", Role.OWNER, tenant), ("member", Role.MEMBER, tenant),
                          ("outsider", Role.OWNER, other)):
        user = User.objects.create_user(f"{name}@billing.test", "pw-12345-xyz")
        Membership.objects.create(user=user, tenant=t, role=role)
        users[name] = user
    return {"tenant": tenant, **users}


def client_for(user: User) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_billing_page_roles(plans: Plan, actors: dict[str, Any], stripe_settings: LocalStripe) -> None:
    owner = client_for(actors["owner"])
    page = owner.get("/portal/billing/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Pro" in body and "$49.00" in body and 'id="subscribe-form"' in body
    # Stripe.js comes from localstripe here, and the page's CSP admits exactly that origin.
    csp = page["Content-Security-Policy"]
    assert f'src="{stripe_settings.url}/js.stripe.com/v3/"' in body
    assert stripe_settings.url in csp.split("script-src")[1].split(";")[0]
    assert "<script>" not in body  # no inline scripts

    assert client_for(actors["member"]).get("/portal/billing/").status_code == 403
    # The outsider sees their own tenant's billing, never this one's.
    outsider = client_for(actors["outsider"]).get("/portal/billing/")
    assert outsider.status_code == 200 and actors["tenant"].name not in outsider.content.decode()
    assert Client().get("/portal/billing/").status_code == 302


def test_subscribe_form_errors_are_form_errors(plans: Plan, actors: dict[str, Any],
                                               stripe_settings: LocalStripe) -> None:
    seed_djstripe_account()
    owner = client_for(actors["owner"])
    bad_plan = owner.post("/portal/billing/subscribe/", {"plan": "nope"})
    assert bad_plan.status_code == 400 and "Select a valid choice" in bad_plan.content.decode()
    bad_method = owner.post("/portal/billing/subscribe/", {"plan": "pro", "payment_method": "x' or 1=1"})
    assert bad_method.status_code == 400 and "Invalid payment method" in bad_method.content.decode()
    no_card = owner.post("/portal/billing/subscribe/", {"plan": "pro"})
    assert no_card.status_code == 400 and "Add a card first" in no_card.content.decode()
    declined = owner.post("/portal/billing/subscribe/",
                          {"plan": "pro", "payment_method": test_card(stripe_settings, "4000000000000002")})
    assert declined.status_code == 400 and "declined" in declined.content.decode()
    assert Tenant.objects.get(pk=actors["tenant"].pk).requests_per_minute is None  # nothing applied
    assert client_for(actors["member"]).post("/portal/billing/subscribe/", {"plan": "pro"}).status_code == 403


def test_subscribe_with_a_card_then_cancel(plans: Plan, actors: dict[str, Any],
                                           stripe_settings: LocalStripe) -> None:
    seed_djstripe_account()
    owner = client_for(actors["owner"])
    assert owner.post("/portal/billing/setup-intent/").json()["client_secret"].startswith("seti_")
    done = owner.post("/portal/billing/subscribe/", {"plan": "pro", "payment_method": test_card(stripe_settings)})
    assert done.status_code == 302
    tenant = Tenant.objects.get(pk=actors["tenant"].pk)
    assert tenant.requests_per_minute == 1000
    page = owner.get("/portal/billing/").content.decode()
    assert "Visa" in page and "4242" in page and 'data-invoice="upcoming"' in page and "49.00 USD" in page

    assert owner.post("/portal/billing/cancel/").status_code == 302
    tenant.refresh_from_db()
    assert tenant.requests_per_minute == 5
    assert "Free" in owner.get("/portal/billing/").content.decode()


def signed(payload: dict[str, Any], secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    """Sign as Stripe (and localstripe) do: HMAC-SHA256 of "<t>.<body>"."""
    body = json.dumps(payload).encode()
    t = int(time.time())
    sig = hmac.new(secret.encode(), b"%d.%s" % (t, body), hashlib.sha256).hexdigest()
    return body, f"t={t},v1={sig}"


def test_webhook_checks_signatures_and_applies_state(plans: Plan, actors: dict[str, Any],
                                                      stripe_settings: LocalStripe, settings: Any) -> None:
    settings.DJSTRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    seed_djstripe_account()
    account = subscriptions.account_for(actors["tenant"])
    subscriptions.subscribe(account, plans, test_card(stripe_settings))

    def event(kind: str, status: str) -> dict[str, Any]:
        return {"id": f"evt_{kind}", "object": "event", "type": kind,
                "data": {"object": {"id": account.subscription_id, "object": "subscription", "status": status,
                                    "customer": str(account.customer_id), "items": {"data": []}}}}

    c = Client()
    tenant = Tenant.objects.get(pk=actors["tenant"].pk)
    body, header = signed(event("customer.subscription.updated", "unpaid"))
    forged = c.post("/stripe/webhook/", body, content_type="application/json",
                    headers={"Stripe-Signature": signed(event("customer.subscription.updated", "unpaid"),
                                                        "whsec_wrong")[1]})
    assert forged.status_code == 400
    assert c.post("/stripe/webhook/", body, content_type="application/json").status_code == 400
    # Signed, but events are cues: the subscription is re-read, and Stripe says it is active.
    ok = c.post("/stripe/webhook/", body, content_type="application/json", headers={"Stripe-Signature": header})
    assert ok.status_code == 200 and ok.json()["outcome"] == "subscription active"
    tenant.refresh_from_db()
    assert tenant.requests_per_minute == 1000

    # Canceled in Stripe (say, from its dashboard): the event brings the tenant down to Free.
    with stripe_settings.api() as api:
        api.delete(f"/v1/subscriptions/{account.subscription_id}").raise_for_status()
    body, header = signed(event("customer.subscription.deleted", "canceled"))
    ok = c.post("/stripe/webhook/", body, content_type="application/json", headers={"Stripe-Signature": header})
    assert ok.status_code == 200 and ok.json()["outcome"] == "subscription canceled"
    tenant.refresh_from_db()
    assert tenant.requests_per_minute == 5
    page = client_for(actors["owner"]).get("/portal/billing/").content.decode()
    assert '<strong id="plan-name">Free</strong>' in page

    settings.DJSTRIPE_WEBHOOK_SECRET = ""
    assert c.post("/stripe/webhook/", body, content_type="application/json",
                  headers={"Stripe-Signature": header}).status_code == 503
