"""Per-key limits and alerts in a real browser (headless Chromium) against a live LEO server:
an owner creates a key with a budget and an allowed model, the SDK is refused accordingly, the
owner lifts the budget on the key's limits page and the SDK gets through; the owner turns on an
error-rate alert, and once it is crossed the overview shows it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import openai
import pytest

from tests.conftest import seed_prices

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "browser-pass-7731"


def _sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]:has-text('Sign In')")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def test_key_limits_and_an_alert_in_the_browser(portal_server: Any, new_page: Any) -> None:
    from optimizer import alerts
    from tenants.auth import CACHE_SECONDS
    from tenants.models import Membership, Role, Tenant
    from tests.portal_helpers import make_ledger_row, verified_user

    seed_prices()
    base = portal_server.url
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    owner = verified_user(email, PASSWORD)
    tenant = Tenant.create(f"Limits {uuid.uuid4().hex[:6]}")
    Membership.objects.create(user=owner, tenant=tenant, role=Role.OWNER)

    page = new_page()
    _sign_in(page, base, email)
    page.goto(f"{base}/portal/keys/")
    page.fill("input[name=name]", "capped")
    page.click("summary:has-text('Limits (optional)')")
    page.fill("input[name='limits-monthly_budget_usd']", "0")
    page.fill("input[name='limits-allowed_models']", "gpt-4o-mini")
    page.click("button:has-text('Create key')")
    plaintext = page.locator("#new-key-value").inner_text().strip()
    assert "$0.00/month" in page.locator("#keys").inner_text()

    client = openai.OpenAI(base_url=f"{base}/v1", api_key=plaintext, max_retries=0, timeout=30)
    ask = {"messages": [{"role": "user", "content": "limits in the browser"}], "max_tokens": 5}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", **ask)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", **ask)
    assert "key_monthly_budget_usd" in exc.value.message

    page.click("#keys a:has-text('Limits')")
    page.fill("input[name=monthly_budget_usd]", "")
    page.click("button:has-text('Save limits')")
    page.wait_for_url("**/portal/keys/")
    assert "Limits of" in page.locator(".messages").inner_text()
    time.sleep(CACHE_SECONDS + 0.2)
    client.chat.completions.create(model="gpt-4o-mini", **ask)

    page.goto(f"{base}/portal/settings/")
    page.click("a:has-text('Alerts')")
    page.check("input[name='error_rate-enabled']")
    page.fill("input[name='error_rate-threshold_percent']", "10")
    page.click("button:has-text('Save alerts')")
    assert "Alerts saved." in page.locator(".messages").inner_text()
    page.goto(f"{base}/portal/")
    assert page.locator("#active-alerts").count() == 0

    for _ in range(alerts.MIN_REQUESTS):
        make_ledger_row(tenant, status_code=502, technique="miss")
    assert [o for o in alerts.evaluate_all() if o.alert.tenant_id == tenant.pk][0].crossed
    page.goto(f"{base}/portal/")
    assert "Error rate is" in page.locator("#active-alerts").inner_text()
