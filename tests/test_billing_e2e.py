"""End to end: a real Celery worker on a real Redis broker, localstripe, a live LEO server and
headless Chromium.

A tenant's owner subscribes in the browser with a localstripe test card (Stripe.js Elements served
by localstripe), the tenant makes requests through the gateway with the openai SDK, the rollup and
usage-sync tasks run on the worker, and the upcoming invoice in localstripe shows exactly the
monthly base plus the ledger's tokens saved times the price, to the cent. Syncing again adds
nothing; stopping localstripe during a sync and starting it again gives the same invoice.

Needs REDIS_URL (the Celery broker); skipped without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, LeoServer, TenantKit, server_env, wait_for_rows
from tests.test_billing_support import (  # noqa: F401  (fixtures)
    PUBLISHABLE_KEY,
    SECRET_KEY,
    LocalStripe,
    localstripe,
    seed_djstripe_account,
)

pytestmark = [
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL: Celery's broker is Redis"),
    pytest.mark.django_db(transaction=True),
]
PRICE = Decimal("3.7")  # dollars per million tokens saved: an odd price, so rounding matters
BASE_CENTS = 2900
WEBHOOK_SECRET = "whsec_leo_e2e"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def billing_env(localstripe: LocalStripe, settings: Any) -> dict[str, str]:
    """Stripe settings for this process and for the server and worker processes."""
    if localstripe.process is None or localstripe.process.poll() is not None:
        localstripe.start()
    env = {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
           "STRIPE_API_BASE": localstripe.url, "DJSTRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "LEO_BILLING_RETRY_SECONDS": "1", "LEO_WORKER_METRICS_PORT": "0"}
    settings.STRIPE_SECRET_KEY = settings.STRIPE_TEST_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = localstripe.url
    return env


@pytest.fixture
def billing_server(start_server: Callable[..., LeoServer], billing_env: dict[str, str]) -> LeoServer:
    return start_server(**billing_env)


@pytest.fixture
def worker(billing_env: dict[str, str], fake_upstream: Any, tmp_path: Path) -> Iterator[str]:
    """A Celery worker (solo pool) consuming a queue of its own; yields the queue name."""
    queue = f"billing-e2e-{uuid.uuid4().hex[:8]}"
    redis_url = os.environ["REDIS_URL"]
    env = server_env(fake_upstream.url, **billing_env)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "leo_optima", "--result-backend", redis_url, "worker",
             "--pool", "solo", "-Q", queue, "-l", "info", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"{queue}@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield queue
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def send_task(name: str, queue: str, *args: Any) -> Any:
    """Send a task to the worker; the result is read from the worker's Redis result backend (a
    backend of its own, so the app's configuration in this process stays untouched)."""
    from celery.backends.redis import RedisBackend

    from leo_optima.celery import app

    sent = app.send_task(name, args=args, queue=queue)
    return app.AsyncResult(sent.id, backend=RedisBackend(app=app, url=os.environ["REDIS_URL"]))


def run_task(name: str, queue: str, *args: Any, timeout: float = 90) -> Any:
    """Send a task to the worker and wait for its result."""
    return send_task(name, queue, *args).get(timeout=timeout)


def expected_usage_cents(tenant_id: int) -> int:
    """From the ledger, independently of billing's code: per UTC day, tokens saved x price, half up."""
    from optimizer.models import RequestLog

    per_day: dict[date, int] = defaultdict(int)
    for row in RequestLog.objects.filter(tenant_id=tenant_id):
        per_day[row.created_at.astimezone(UTC).date()] += row.tokens_saved
    return sum(int((Decimal(t) * PRICE / 10**6 * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
               for t in per_day.values())


def usage_items(ls: LocalStripe, customer: str) -> list[dict[str, Any]]:
    return [i for i in ls.invoice_items(customer) if "leo_usage_key" in (i.get("metadata") or {})]


def subscribe_in_browser(server: LeoServer, kit: TenantKit) -> None:
    """The owner signs in (a session made server-side), fills the card in localstripe's Elements
    and subscribes to the plan."""
    from django.conf import settings as dj
    from django.test import Client
    from playwright.sync_api import sync_playwright

    c = Client()
    c.force_login(kit.owner)
    session = c.cookies[dj.SESSION_COOKIE_NAME].value
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": dj.SESSION_COOKIE_NAME, "value": session, "url": server.url}])
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.on("pageerror", lambda e: console.append(f"page error: {e}"))
            page.goto(server.url + "/portal/billing/")
            page.select_option("select[name=plan]", "e2e")
            try:
                page.wait_for_selector("#card-element input[placeholder=number]", timeout=15_000)
            except Exception:
                raise AssertionError(f"no card element; console: {console}\n{page.content()[:3000]}") from None
            page.fill("#card-element input[placeholder=number]", "4242424242424242")
            page.fill("#card-element input[placeholder=exp_month]", "12")
            page.fill("#card-element input[placeholder=exp_year]", "31")
            page.fill("#card-element input[placeholder=cvc]", "123")
            page.fill("#card-element input[placeholder=postal_code]", "75001")
            page.click("#subscribe-button")
            page.wait_for_selector("text=You are on the E2E plan", timeout=30_000)
            assert page.inner_text("#plan-name") == "E2E"
            assert "4242" in page.content()
            assert not [m for m in console if "Content Security Policy" in m], console
        finally:
            browser.close()


def test_subscribe_use_rollup_sync_and_reconcile(billing_server: LeoServer, worker: str,
                                                 make_tenant: Callable[..., TenantKit],
                                                 localstripe: LocalStripe) -> None:
    from billing.models import BillingAccount, Plan, StripeUsageSync
    from optimizer.models import RequestLog, UsageRollup

    seed_djstripe_account()
    Plan.objects.create(slug="free", name="Free", sort_order=0, requests_per_minute=30)
    Plan.objects.create(slug="e2e", name="E2E", monthly_base_cents=BASE_CENTS, price_per_million_saved=PRICE,
                        requests_per_minute=6000)
    localstripe.add_webhook(billing_server.url + "/stripe/webhook/", WEBHOOK_SECRET)
    kit = make_tenant("Billing", server=billing_server)

    subscribe_in_browser(billing_server, kit)
    account = BillingAccount.objects.get(tenant=kit.tenant)
    assert account.status == "active" and account.plan.slug == "e2e"
    kit.tenant.refresh_from_db()
    assert kit.tenant.requests_per_minute == 6000
    customer = str(account.customer_id)

    # Traffic: each question once upstream, then from the exact cache (tokens saved). A long
    # context makes each hit save ~15k tokens, so the usage comes to real cents.
    client = kit.client()
    context = " ".join(f"fact{i} is recorded." for i in range(5000))
    questions = [f"{context}\nQuestion {i}: which fact is recorded first?" for i in range(3)]
    for q in questions * 3:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": q}])
    rows = wait_for_rows(RequestLog, 9, tenant=kit.tenant)
    assert len(rows) == 9 and sum(r.tokens_saved for r in rows) > 0

    today = datetime.now(UTC).date().isoformat()
    assert run_task("billing.tasks.rollup_recent", worker)["days"] >= 1
    day_saved = sum(r.tokens_saved for r in UsageRollup.objects.filter(tenant=kit.tenant, period="day"))
    assert day_saved == sum(r.tokens_saved for r in rows)
    result = run_task("billing.tasks.sync_tenant_usage", worker, kit.tenant.id, today)
    cents = expected_usage_cents(kit.tenant.id)
    assert cents > 0 and result["amount_cents"] == cents
    assert sum(i["amount"] for i in usage_items(localstripe, customer)) == cents

    # Again: nothing new.
    again = run_task("billing.tasks.sync_tenant_usage", worker, kit.tenant.id, today)
    assert again["sent"] == [] and sum(i["amount"] for i in usage_items(localstripe, customer)) == cents

    # More savings, then Stripe goes away during the sync and comes back: the retry completes it.
    for q in questions * 4:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": q}])
    wait_for_rows(RequestLog, 21, tenant=kit.tenant)
    run_task("billing.tasks.rollup_recent", worker)
    localstripe.stop()
    try:
        pending = send_task("billing.tasks.sync_tenant_usage", worker, kit.tenant.id, today)
        deadline = time.monotonic() + 60
        while not StripeUsageSync.objects.filter(tenant=kit.tenant, seq=2, attempts__gte=1).exists():
            assert time.monotonic() < deadline, "the sync never tried Stripe"
            time.sleep(0.1)
        (row,) = StripeUsageSync.objects.filter(tenant=kit.tenant, seq=2)
        assert row.status == "pending"
    finally:
        localstripe.start()  # reloads its store from disk
    pending.get(timeout=90)  # the task's own retry, with backoff, finishes it
    assert run_task("billing.tasks.sync_tenant_usage", worker, kit.tenant.id, today)["sent"] == []

    cents = expected_usage_cents(kit.tenant.id)
    items = usage_items(localstripe, customer)
    assert sum(i["amount"] for i in items) == cents
    assert len(items) == len({i["metadata"]["leo_usage_key"] for i in items}) == 2

    # The invoice: Stripe would cut it at the period's end; here it is cut now. It holds the base
    # and every usage item, exactly once. (Invoices are cut, not previewed: localstripe's preview
    # detaches pending items from the customer, unlike Stripe's.)
    with localstripe.api() as api:
        invoice = api.post("/v1/invoices", data={"customer": customer, "subscription": account.subscription_id})
        invoice.raise_for_status()
    assert invoice.json()["total"] == BASE_CENTS + cents
    assert localstripe.invoice_items(customer) == []

    # The portal lists it with its amount and status.
    from django.test import Client

    owner = Client()
    owner.force_login(kit.owner)
    page = owner.get("/portal/billing/").content.decode()
    assert f'data-invoice="{invoice.json()["id"]}"' in page
    assert f"{Decimal(BASE_CENTS + cents) / 100:.2f} USD" in page
