"""Browser tests of the portal's live parts: the overview polls while its tab is visible and not
while hidden (#15.6), and a phone-sized screen shows every column of every table (#15.15)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_portal_flows import PASSWORD, _sign_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SET_VISIBILITY = """state => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => state === 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def _owner_with_traffic(prefix: str) -> tuple[str, Any, Any]:
    from tenants.models import ApiKey, Membership, Role, Tenant
    from tests.portal_helpers import make_ledger_row, verified_user

    email = f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"
    user = verified_user(email, PASSWORD)
    tenant = Tenant.create(f"{prefix} {uuid.uuid4().hex[:6]}")
    Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    key, _ = ApiKey.issue(tenant, name=prefix)
    make_ledger_row(tenant, key)
    return email, tenant, key


def test_overview_polls_only_while_visible(portal_server: Any, new_page: Any) -> None:
    from tests.portal_helpers import make_ledger_row

    email, tenant, key = _owner_with_traffic("poll")
    base = portal_server.url
    page = new_page()
    page.clock.install()  # htmx's poll runs on timers this test moves forward
    _sign_in(page, base, email)
    page.goto(f"{base}/portal/?period=24h")
    figure = page.locator("#fig-requests")
    expect(figure).to_have_text("1")

    make_ledger_row(tenant, key)
    page.clock.fast_forward("00:31")
    expect(figure).to_have_text("2")  # refreshed without a reload
    assert page.locator("main h1").count() == 1  # the figures were swapped, not the page nested

    page.evaluate(SET_VISIBILITY, "hidden")
    page.wait_for_load_state("networkidle")  # a poll already on its way may land
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/portal/" in r.url else None)
    make_ledger_row(tenant, key)
    for _ in range(3):
        page.clock.fast_forward("00:31")
    page.wait_for_timeout(700)
    assert polls == [] and figure.inner_text() == "2"  # a hidden tab costs the server nothing

    page.evaluate(SET_VISIBILITY, "visible")
    expect(figure).to_have_text("3")  # back in view: refreshed at once
    assert len(polls) == 1


def test_phone_shows_every_column(portal_server: Any, new_page: Any) -> None:
    email, tenant, key = _owner_with_traffic("narrow")
    base = portal_server.url
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    _sign_in(page, base, email)
    for path in ("/portal/?period=24h", "/portal/requests/", "/portal/cache/", "/portal/keys/",
                 "/portal/members/", "/portal/audit/", "/portal/settings/providers/"):
        page.goto(base + path)
        tables = page.locator("main table")
        for i in range(tables.count()):
            table = tables.nth(i)
            if not table.is_visible():
                continue  # e.g. inside a closed <details>
            headers = table.locator("thead th")
            for j in range(headers.count()):
                th = headers.nth(j)
                th.scroll_into_view_if_needed()
                box = th.bounding_box()
                assert box is not None and box["width"] > 0, f"{path}: column {th.inner_text()!r} is cut"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than the phone (tables scroll in their panel)"
