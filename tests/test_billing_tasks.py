"""Billing's Celery tasks run eagerly (the embedded default, no broker): rollups, usage sync against
a real localstripe, no in-process retry spin when Stripe is down; backoff; Free plan on sign-up."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from billing import stripe_sync, subscriptions, tasks
from billing.models import Plan, StripeUsageSync
from billing.stripe_api import StripeUnavailable
from optimizer.models import RequestLog, Technique, UsageRollup
from tenants.models import AuditEvent, Membership, Tenant
from tenants.signals import VIA_SIGNUP, send_tenant_created
from tests.test_billing_support import (  # noqa: F401  (fixtures)
    LocalStripe,
    localstripe,
    seed_djstripe_account,
    stripe_settings,
    test_card,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks in-process, as with no broker configured (the suite may run with REDIS_URL set)."""
    from leo_optima.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def pro(stripe_settings: LocalStripe) -> Plan:
    Plan.objects.create(slug="free", name="Free", sort_order=0, requests_per_minute=7, monthly_token_quota=500)
    return Plan.objects.create(slug="pro", name="Pro", monthly_base_cents=1000, price_per_million_saved=Decimal("4"))


def hit(tenant: Tenant, when: datetime, tokens: int, n: int) -> None:
    RequestLog.objects.create(request_id=f"task-{tenant.id}-{n}", created_at=when, tenant=tenant, endpoint="chat",
                              technique=Technique.EXACT, status_code=200, model="gpt-4o-mini", tokens_saved=tokens)


def test_retries_are_celerys_autoretry_with_capped_backoff() -> None:
    """No hand-written backoff: Celery retries Stripe outages and busy tenants, doubling from
    LEO_BILLING_RETRY_SECONDS up to an hour, with jitter (a worker's retry runs in test_billing_e2e)."""
    from django.conf import settings

    task = tasks.sync_tenant_usage
    assert set(task.autoretry_for) == {StripeUnavailable, stripe_sync.SyncBusy}
    assert (task.retry_backoff, task.retry_backoff_max, task.retry_jitter, task.max_retries) == (
        settings.LEO_BILLING_RETRY_SECONDS, 3600, True, 20)
    assert not hasattr(tasks, "backoff")


def test_tasks_roll_up_and_sync_eagerly(eager: None, stripe_settings: LocalStripe, pro: Plan) -> None:
    seed_djstripe_account()
    account = subscriptions.account_for(Tenant.create("Eager"))
    subscriptions.subscribe(account, pro, test_card(stripe_settings))
    yesterday = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0) - timedelta(days=1)
    account.billing_since = yesterday.date()
    account.save()
    hit(account.tenant, yesterday, 123_456, 1)  # 4 $/M -> 49.3824 cents -> 49
    hit(account.tenant, yesterday + timedelta(hours=1), 1, 2)

    assert tasks.rollup_recent.delay().get()["days"] >= 1
    assert UsageRollup.objects.filter(tenant=account.tenant, period="day").get().tokens_saved == 123_457
    assert tasks.sync_all_usage.delay().get() == 1
    (row,) = StripeUsageSync.objects.filter(tenant=account.tenant)
    assert (row.status, row.amount_cents, row.tokens_saved) == ("sent", 49, 123_457)
    items = [i for i in stripe_settings.invoice_items(str(account.customer_id)) if i["metadata"].get("leo_usage_key")]
    assert [i["amount"] for i in items] == [49]


def test_eager_sync_with_stripe_down_raises_instead_of_spinning(eager: None, stripe_settings: LocalStripe,
                                                               pro: Plan) -> None:
    seed_djstripe_account()
    account = subscriptions.account_for(Tenant.create("Down"))
    subscriptions.subscribe(account, pro, test_card(stripe_settings))
    account.billing_since = datetime.now(UTC).date() - timedelta(days=2)
    account.save()
    hit(account.tenant, datetime.now(UTC) - timedelta(days=1), 1_000_000, 1)
    stripe_settings.stop()
    try:
        with pytest.raises(StripeUnavailable):
            tasks.sync_tenant_usage.delay(account.tenant_id).get()
    finally:
        stripe_settings.start()
    (row,) = StripeUsageSync.objects.filter(tenant=account.tenant)
    assert (row.status, row.attempts) == ("pending", 1)
    assert tasks.sync_tenant_usage.delay(account.tenant_id).get()["amount_cents"] == 400


def test_tasks_do_nothing_without_stripe(eager: None, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = ""
    assert tasks.sync_all_usage.delay().get() == 0
    assert tasks.refresh_subscriptions.delay().get() == 0


def free_with_limits() -> Plan:
    return Plan.objects.create(slug="free", name="Free", sort_order=0, requests_per_minute=7,
                               monthly_token_quota=500, monthly_spend_quota_usd=Decimal("2"), tokens_per_minute=900)


def limits_of(tenant: Tenant) -> tuple[Any, ...]:
    tenant.refresh_from_db()
    return (tenant.requests_per_minute, tenant.monthly_token_quota, tenant.tokens_per_minute,
            tenant.monthly_spend_quota_usd)


FREE_LIMITS = (7, 500, 900, Decimal("2"))


def test_a_signed_up_tenant_starts_with_the_free_limits() -> None:
    """Portal sign-up sends tenants.signals.tenant_created; billing puts the tenant on Free."""
    free_with_limits()
    staff_made = Tenant.create("Made by staff")
    response = Client().post("/accounts/signup/", {
        "email": "founder@limits.test", "organization": "Signed up", "password1": "sign-up-pass-981",
        "password2": "sign-up-pass-981"})
    assert response.status_code == 302
    signed_up = Membership.objects.get(user__email="founder@limits.test").tenant
    assert limits_of(signed_up) == FREE_LIMITS
    assert signed_up.billing.plan.slug == "free"
    assert limits_of(staff_made) == (None, None, None, None)


def test_create_tenant_starts_on_free_and_the_demo_tenant_stays_unlimited() -> None:
    free_with_limits()
    out = StringIO()
    call_command("create_tenant", "Via CLI", stdout=out)
    assert limits_of(Tenant.objects.get(pk=int(out.getvalue().splitlines()[-1]))) == FREE_LIMITS
    call_command("demo", "--quiet", stdout=StringIO())
    call_command("demo", "--quiet", stdout=StringIO())  # the second run finds it: no second signal
    assert limits_of(Tenant.objects.get(slug="demo")) == (None, None, None, None)


def test_the_audit_row_alone_no_longer_sets_a_plan() -> None:
    """Billing listens to the tenants app's signal, not to audit rows (#16.3)."""
    free_with_limits()
    tenant = Tenant.create("Audit only")
    AuditEvent.record("tenant.created", tenant=tenant, target=tenant.name)
    assert limits_of(tenant) == (None, None, None, None)


def test_sync_stripe_plans_command_mirrors_paid_plans(stripe_settings: LocalStripe, pro: Plan) -> None:
    out = StringIO()
    call_command("sync_stripe_plans", stdout=out)
    call_command("sync_stripe_plans", stdout=out)  # idempotent
    assert out.getvalue().splitlines() == ["pro: leo-pro-1000-usd"] * 2
    with stripe_settings.api() as api:
        plan = api.get("/v1/plans/leo-pro-1000-usd").json()
    assert (plan["amount"], plan["interval"], plan["product"]) == (1000, "month", "leo-pro")


def test_editing_a_plan_updates_its_tenants_limits() -> None:
    free = Plan.objects.create(slug="free", name="Free", sort_order=0, requests_per_minute=7)
    tenant = Tenant.create("Edited")
    send_tenant_created(tenant, VIA_SIGNUP)
    other = Tenant.create("Untouched")  # not on any plan
    free.requests_per_minute = 11
    free.save()
    tenant.refresh_from_db()
    other.refresh_from_db()
    assert tenant.requests_per_minute == 11 and other.requests_per_minute is None


def test_beat_schedule_names_registered_tasks() -> None:
    from leo_optima.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"billing.tasks.rollup_recent", "billing.tasks.sync_all_usage"} <= scheduled
    assert scheduled <= set(app.tasks)
