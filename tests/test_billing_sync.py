"""Usage sync against a real localstripe: each day billed once, reruns add nothing, late rows add
an adjustment, Stripe down or a worker killed mid-call never bills twice, amounts reconcile with
the ledger to the cent."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from billing import stripe_sync, subscriptions
from billing.models import BillingAccount, Plan, StripeUsageSync
from billing.stripe_api import StripeUnavailable
from optimizer.models import RequestLog, Technique
from tenants.models import Tenant
from tests.conftest import ROOT, database_url
from tests.test_billing_support import (  # noqa: F401  (fixtures)
    SECRET_KEY,
    LocalStripe,
    localstripe,
    seed_djstripe_account,
    stripe_settings,
    test_card,
)

pytestmark = pytest.mark.django_db(transaction=True)
PRICE = Decimal("2.5")  # dollars per million tokens saved
_ids = itertools.count()


@pytest.fixture
def pro(stripe_settings: LocalStripe) -> Plan:
    Plan.objects.create(slug="free", name="Free", sort_order=0, requests_per_minute=5, monthly_token_quota=1000)
    return Plan.objects.create(slug="pro", name="Pro", monthly_base_cents=4900, price_per_million_saved=PRICE,
                               requests_per_minute=1000)


def subscribed(localstripe: LocalStripe, plan: Plan, days_ago: int = 3) -> BillingAccount:
    """A tenant subscribed to `plan` with a test card, billable from `days_ago` days back."""
    seed_djstripe_account()
    tenant = Tenant.create(f"Billed {next(_ids)}")
    account = subscriptions.account_for(tenant)
    subscriptions.subscribe(account, plan, test_card(localstripe))
    BillingAccount.objects.filter(pk=account.pk).update(billing_since=today() - timedelta(days=days_ago))
    account.refresh_from_db()
    return account


def today() -> date:
    return datetime.now(UTC).date()


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def saved(tenant_id: int, when: datetime, tokens: int) -> None:
    """A ledger row of a cache hit that saved `tokens` tokens."""
    RequestLog.objects.create(request_id=f"bill-{next(_ids)}", created_at=when, tenant_id=tenant_id,
                              endpoint="chat", technique=Technique.EXACT, status_code=200, model="gpt-4o-mini",
                              tokens_saved=tokens, saved_usd=Decimal(tokens) / 10**7)


def expected_cents(tenant_id: int, since: date, through: date) -> int:
    """Recomputed from the ledger, independently of billing's code: per UTC day, round half up."""
    per_day: dict[date, int] = defaultdict(int)
    for row in RequestLog.objects.filter(tenant_id=tenant_id):
        per_day[row.created_at.astimezone(UTC).date()] += row.tokens_saved
    return sum(int((Decimal(t) * PRICE / 10**6 * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
               for d, t in per_day.items() if since <= d <= through)


def usage_items(ls: LocalStripe, account: BillingAccount) -> list[dict[str, Any]]:
    return [i for i in ls.invoice_items(str(account.customer_id)) if "leo_usage_key" in (i.get("metadata") or {})]


def test_each_day_is_billed_once_and_reconciles_with_the_ledger(stripe_settings: LocalStripe, pro: Plan) -> None:
    account = subscribed(stripe_settings, pro)
    tid = account.tenant_id
    d2, d1, d0 = today() - timedelta(days=2), today() - timedelta(days=1), today()
    saved(tid, at(d2, 1), 1_234_567)  # $3.0864175 -> 309 cents
    saved(tid, at(d1, 3), 2_000)      # $0.005 exactly half a cent -> 1 cent (half up)
    saved(tid, at(d1, 23), 0)
    saved(tid, at(d0, 0), 200_001)    # today: billed only when asked to bill through today
    saved(tid, at(d2 - timedelta(days=3)), 999_999)  # before the subscription: never billed

    result = stripe_sync.sync_usage(tid)  # default: through yesterday

    assert result.amount_cents == 309 + 1 == expected_cents(tid, account.billing_since, d1)
    items = usage_items(stripe_settings, account)
    assert sorted(i["amount"] for i in items) == [1, 309]
    assert {i["metadata"]["leo_usage_key"] for i in items} == {StripeUsageSync.key_for(tid, d, 1) for d in (d2, d1)}

    again = stripe_sync.sync_usage(tid)
    assert again.sent == [] and len(usage_items(stripe_settings, account)) == 2

    stripe_sync.sync_usage(tid, through=d0)
    cents = expected_cents(tid, account.billing_since, d0)
    assert cents == 309 + 1 + 50
    assert sum(i["amount"] for i in usage_items(stripe_settings, account)) == cents
    upcoming = stripe_settings.upcoming(str(account.customer_id))
    assert upcoming["total"] == 4900 + cents


def test_late_ledger_rows_are_billed_as_an_adjustment(stripe_settings: LocalStripe, pro: Plan) -> None:
    account = subscribed(stripe_settings, pro)
    tid = account.tenant_id
    d1 = today() - timedelta(days=1)
    saved(tid, at(d1, 10), 1_000_000)  # 250 cents
    stripe_sync.sync_usage(tid)

    saved(tid, at(d1, 23), 1_001)  # arrives after the day was billed
    stripe_sync.sync_usage(tid)
    stripe_sync.sync_usage(tid)

    rows = list(StripeUsageSync.objects.filter(tenant_id=tid).order_by("seq"))
    assert [(r.seq, r.tokens_saved, r.amount_cents, r.status) for r in rows] == [
        (1, 1_000_000, 250, "sent"), (2, 1_001, 0, "nothing")]  # 250.25025 still rounds to 250
    saved(tid, at(d1, 23), 20_000)  # now 1_021_001 tokens: 255.25 -> 255 cents
    stripe_sync.sync_usage(tid)
    rows = list(StripeUsageSync.objects.filter(tenant_id=tid).order_by("seq"))
    assert (rows[-1].seq, rows[-1].tokens_saved, rows[-1].amount_cents) == (3, 20_000, 5)
    assert sum(i["amount"] for i in usage_items(stripe_settings, account)) == 255 == expected_cents(tid, d1, d1)


def test_stripe_down_then_back_bills_the_same_invoice(stripe_settings: LocalStripe, pro: Plan) -> None:
    account = subscribed(stripe_settings, pro)
    tid = account.tenant_id
    d1 = today() - timedelta(days=1)
    saved(tid, at(d1), 3_000_000)  # 750 cents

    stripe_settings.stop()
    try:
        with pytest.raises(StripeUnavailable):
            stripe_sync.sync_usage(tid)
        (row,) = StripeUsageSync.objects.filter(tenant_id=tid)
        assert (row.status, row.attempts, row.amount_cents) == ("pending", 1, 750)
        assert "unreachable" in row.last_error and SECRET_KEY not in row.last_error
        with pytest.raises(StripeUnavailable):  # still down: nothing new planned, same row retried
            stripe_sync.sync_usage(tid)
        assert StripeUsageSync.objects.filter(tenant_id=tid).count() == 1
    finally:
        stripe_settings.start()  # reloads its store from disk, like Stripe coming back

    result = stripe_sync.sync_usage(tid)
    assert result.amount_cents == 750
    stripe_sync.sync_usage(tid)
    items = usage_items(stripe_settings, account)
    assert [i["amount"] for i in items] == [750]
    assert stripe_settings.upcoming(str(account.customer_id))["total"] == 4900 + 750


def test_a_worker_killed_mid_call_leaves_a_state_the_next_run_completes(stripe_settings: LocalStripe,
                                                                        pro: Plan) -> None:
    account = subscribed(stripe_settings, pro)
    tid = account.tenant_id
    d1 = today() - timedelta(days=1)
    saved(tid, at(d1), 4_000_000)  # 1000 cents

    # Freeze localstripe so the sync blocks inside InvoiceItem.create with its request sent, then kill
    # the worker there: the item may or may not exist in Stripe, and the row says "attempted".
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leo_optima.settings.test", "DATABASE_URL": database_url(),
           "STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_API_BASE": stripe_settings.url}
    code = f"import django; django.setup(); from billing.stripe_sync import sync_usage; sync_usage({tid})"
    stripe_settings.pause()
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not StripeUsageSync.objects.filter(tenant_id=tid, attempts=1).exists():
            assert time.monotonic() < deadline and worker.poll() is None, "the sync never reached Stripe"
            time.sleep(0.05)
        time.sleep(0.5)  # the request is in localstripe's socket by now
        worker.kill()
        worker.wait(10)
    finally:
        stripe_settings.resume()
    # Real Stripe answers a replayed Idempotency-Key with the first result, so the dead worker's
    # request and the next run's cannot both create an item; localstripe ignores the header, so
    # give it a moment to finish the dead worker's request before the next run looks it up.
    time.sleep(1.5)

    (row,) = StripeUsageSync.objects.filter(tenant_id=tid)
    assert row.status == "pending" and row.attempts == 1
    # The dead worker's lock (in Redis, when configured) would expire after LOCK_SECONDS, and the
    # task's retry would then get through; the test expires it now.
    from django.core.cache import cache

    cache.delete(stripe_sync.lock_key(tid))
    stripe_sync.sync_usage(tid)
    stripe_sync.sync_usage(tid)
    items = usage_items(stripe_settings, account)
    assert [i["amount"] for i in items] == [1000]
    row.refresh_from_db()
    assert row.status == "sent" and row.stripe_invoice_item_id == items[0]["id"]


def test_unpaid_tenant_falls_back_to_free_limits(stripe_settings: LocalStripe, pro: Plan) -> None:
    account = subscribed(stripe_settings, pro)
    tenant = Tenant.objects.get(pk=account.tenant_id)
    assert (tenant.requests_per_minute, tenant.monthly_token_quota) == (1000, None)
    assert account.status == "active" and account.plan == pro

    sub = {"id": account.subscription_id, "status": "past_due", "items": {"data": []}}
    subscriptions.apply_subscription(account, sub)
    tenant.refresh_from_db()
    assert (tenant.requests_per_minute, tenant.monthly_token_quota) == (5, 1000)
    assert account.plan == pro and account.effective_plan.is_free  # still chosen, not paid for

    subscriptions.refresh_subscription(account)  # Stripe still says active: the paid limits return
    tenant.refresh_from_db()
    assert account.status == "active" and tenant.requests_per_minute == 1000


def test_change_plan_and_cancel(stripe_settings: LocalStripe, pro: Plan) -> None:
    scale = Plan.objects.create(slug="scale", name="Scale", monthly_base_cents=19900,
                                price_per_million_saved=Decimal("1.5"))
    account = subscribed(stripe_settings, pro)
    sub_id = account.subscription_id
    subscriptions.subscribe(account, scale)  # the card on file is reused
    assert account.subscription_id == sub_id and account.plan == scale
    lines = stripe_settings.upcoming(str(account.customer_id))["lines"]["data"]
    assert [line["amount"] for line in lines if line["type"] == "subscription"] == [19900]
    tenant = Tenant.objects.get(pk=account.tenant_id)
    assert tenant.requests_per_minute is None

    saved(account.tenant_id, at(today(), 0), 1_000_000)
    subscriptions.cancel(account)
    account.refresh_from_db()
    tenant.refresh_from_db()
    assert account.status == "canceled" and account.plan.is_free and account.billing_until == today()
    assert tenant.requests_per_minute == 5
    # Today's usage went out before the subscription ended, at the Scale price.
    assert [i["amount"] for i in usage_items(stripe_settings, account)] == [150]


def test_stripe_slow_times_out_then_the_retry_bills_once(stripe_settings: LocalStripe, pro: Plan,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from billing import stripe_api

    account = subscribed(stripe_settings, pro)
    tid = account.tenant_id
    saved(tid, at(today() - timedelta(days=1)), 2_000_000)  # 500 cents
    monkeypatch.setattr(stripe_api, "TIMEOUT_SECONDS", 2)  # a client of its own, with the short timeout
    # Stripe hangs: the request is in its socket when the client gives up. Once it wakes up it
    # may well create the item that LEO never heard back about.
    stripe_settings.pause()
    try:
        with pytest.raises(StripeUnavailable):
            stripe_sync.sync_usage(tid)
    finally:
        stripe_settings.resume()
    (row,) = StripeUsageSync.objects.filter(tenant_id=tid)
    assert (row.status, row.attempts) == ("pending", 1)

    stripe_sync.sync_usage(tid)
    stripe_sync.sync_usage(tid)
    items = usage_items(stripe_settings, account)
    assert [i["amount"] for i in items] == [500]
    row.refresh_from_db()
    assert row.status == "sent" and row.stripe_invoice_item_id == items[0]["id"]
