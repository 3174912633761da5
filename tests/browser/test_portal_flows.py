"""The customer's whole path in a real browser (headless Chromium) against a live LEO server.

sign up -> verify the email -> create a key -> call the gateway with the openai SDK -> see the
request's cost and saving on the overview -> revoke the key -> the SDK gets a 401.
Also: TOTP enrolment and sign-in with it; an invited member who cannot create keys.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.browser.conftest import read_mail
from tests.conftest import seed_prices, wait_for_rows

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "browser-pass-7731"


def _sign_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("main form button[type=submit]:has-text('Sign In')")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def _money(text: str) -> Decimal:
    return Decimal(text.strip().lstrip("$").replace(",", ""))


def test_signup_key_call_overview_revoke(portal_server: Any, mail_dir: Path, new_page: Any) -> None:
    from optimizer.models import RequestLog
    from tenants.models import Membership

    seed_prices()
    base = portal_server.url
    email = f"founder-{uuid.uuid4().hex[:8]}@example.com"
    page = new_page()

    # Sign up, then verify the address from the emailed link.
    page.goto(f"{base}/accounts/signup/")
    page.fill("input[name=email]", email)
    page.fill("input[name=organization]", "Browser Co")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url("**/accounts/confirm-email/**")
    link = read_mail(mail_dir, email, r"http://127\.0\.0\.1:\d+/accounts/confirm-email/[^\s]+")
    page.goto(link)
    page.click("main form button[type=submit]")
    page.wait_for_load_state()
    if "/portal/" not in page.url:
        _sign_in(page, base, email)
    page.goto(f"{base}/portal/")
    assert page.locator("#first-run").is_visible()
    assert page.locator("#base-url").inner_text() == f"{base}/v1"
    tenant = Membership.objects.get(user__email=email).tenant
    assert tenant.name == "Browser Co"

    # Create a key: shown once.
    page.goto(f"{base}/portal/keys/")
    page.fill("input[name=name]", "from-browser")
    page.click("button:has-text('Create key')")
    key = page.locator("#new-key-value").inner_text().strip()
    assert key.startswith("leo_")

    # Call the gateway with the official SDK; the second identical call is an exact cache hit.
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": f"What does LEO save? {uuid.uuid4().hex}"}]
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    assert second.headers["X-LEO-Cache"] == "exact"
    rows = wait_for_rows(RequestLog, 2, tenant=tenant)
    assert len(rows) == 2
    cost = sum((r.cost_usd for r in rows), Decimal(0))
    saved = sum((r.saved_usd for r in rows), Decimal(0))
    assert cost > 0 and saved > 0

    # The overview shows exactly the ledger's figures.
    page.goto(f"{base}/portal/?period=24h")
    assert page.locator("#fig-requests").inner_text() == "2"
    assert _money(page.locator("#fig-spend").inner_text()) == cost.quantize(Decimal("0.000001"))
    assert _money(page.locator("#fig-saved").inner_text()) == saved.quantize(Decimal("0.000001"))
    assert page.locator("#fig-hit-rate").inner_text() == "50%"
    assert page.locator("svg.chart polyline.saved").count() == 1
    # And the request's own page: its trail, cost and saving.
    hit_id = second.headers["X-LEO-Request-Id"]
    page.goto(f"{base}/portal/requests/")
    page.click(f"a:has-text('{hit_id}')")
    assert _money(page.locator("#req-saved").inner_text()) == next(r.saved_usd for r in rows if r.request_id == hit_id)
    assert page.locator("#trail").inner_text().count("exact") >= 1
    first_id = first.headers["X-LEO-Request-Id"]
    page.goto(f"{base}/portal/requests/{first_id}/")
    assert _money(page.locator("#req-cost").inner_text()) == next(r.cost_usd for r in rows if r.request_id == first_id)

    # Revoke (HTMX, after the confirm dialog): the row updates in place, and the SDK gets a 401.
    page.goto(f"{base}/portal/keys/")
    row = page.locator("#keys tbody tr", has_text="from-browser")
    row.locator("button:has-text('Revoke')").click()
    row = page.locator("#keys tbody tr", has_text="from-browser")
    row.locator("td.status-revoked").wait_for()
    # Swapped in place by HTMX: no page load, so no flash message (the no-JS path redirects with one).
    assert page.locator(".messages").count() == 0
    # The server remembers a verified key for up to 2 s (tenants.auth.CACHE_SECONDS).
    deadline = time.monotonic() + 15
    while True:
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again?"}])
        except openai.AuthenticationError as exc:
            assert exc.status_code == 401
            break
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.25)


def _totp_code(secret: str, counter: int | None = None) -> str:
    """The current code (never one about to expire: `tests.portal_helpers.totp_code`), or the
    code of a given period."""
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    from tests.portal_helpers import totp_code

    return totp_code(secret) if counter is None else format_hotp_value(hotp_value(secret, counter))


def test_totp_enrolment_and_sign_in(portal_server: Any, new_page: Any) -> None:
    from tests.portal_helpers import verified_user

    email = f"mfa-{uuid.uuid4().hex[:8]}@example.com"
    verified_user(email, PASSWORD)
    base = portal_server.url
    page = new_page()
    _sign_in(page, base, email)
    page.goto(f"{base}/accounts/2fa/totp/activate/")
    if "/accounts/reauthenticate/" in page.url:  # allauth asks for the password again before MFA changes
        page.fill("input[name=password]", PASSWORD)
        page.click("main form button[type=submit]")
        page.wait_for_url("**/accounts/2fa/totp/activate/**")
    secret = page.locator("#authenticator_secret").input_value()
    page.fill("input[name=code]", _totp_code(secret))
    page.click("main form button[type=submit]:has-text('Activate')")
    page.wait_for_url("**/accounts/2fa/**")
    assert "/totp/activate/" not in page.url
    page.goto(f"{base}/accounts/2fa/")
    assert "Authenticator App" in page.content()
    from allauth.mfa.models import Authenticator

    stored = Authenticator.objects.get(user__email=email, type=Authenticator.Type.TOTP).data["secret"]
    assert stored.startswith("fernet:") and secret not in stored  # encrypted at rest (tenants.adapters)

    # Sign out, sign in again: the password alone is not enough.
    page.click("header button:has-text('Sign out')")
    page2 = new_page()
    _sign_in(page2, base, email)
    page2.wait_for_url("**/accounts/2fa/authenticate/**")
    pending = page2.request.get(f"{base}/portal/keys/", max_redirects=0)
    assert pending.status == 302 and "/accounts/login/" in pending.headers["location"]  # not signed in yet
    # A code is accepted once (replay protection), so wait for the next 30-second window.
    used_counter = int(time.time()) // 30
    while int(time.time()) // 30 == used_counter:
        time.sleep(0.5)
    page2.fill("input[name=code]", _totp_code(secret))
    page2.click("main form button[type=submit]")
    page2.wait_for_url("**/portal/**")
    assert email in page2.locator("header .who").inner_text()


def test_invited_member_cannot_create_keys(portal_server: Any, mail_dir: Path, new_page: Any) -> None:
    from tenants.models import ApiKey, Membership, Role, Tenant
    from tests.portal_helpers import verified_user

    base = portal_server.url
    owner_email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    member_email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    owner = verified_user(owner_email, PASSWORD)
    tenant = Tenant.create(f"Team {uuid.uuid4().hex[:6]}")
    Membership.objects.create(user=owner, tenant=tenant, role=Role.OWNER)

    page = new_page()
    _sign_in(page, base, owner_email)
    page.goto(f"{base}/portal/members/")
    page.fill("input[name=email]", member_email)
    page.select_option("select[name=role]", "member")
    page.click("button:has-text('Invite')")
    assert member_email in page.locator("#members").inner_text()

    link = read_mail(mail_dir, member_email, r"http://127\.0\.0\.1:\d+/accounts/password/reset/key/[^\s]+")
    guest = new_page()
    guest.goto(link)
    guest.fill("input[name=password1]", PASSWORD)
    guest.fill("input[name=password2]", PASSWORD)
    guest.click("main form button[type=submit]")
    guest.wait_for_load_state()
    # Setting the first password signed them in, in this tenant (#15.13): no sign-in form.
    guest.goto(f"{base}/portal/")
    assert "/accounts/login/" not in guest.url
    assert tenant.name in guest.locator("nav.sidenav").inner_text()
    guest.goto(f"{base}/portal/keys/")
    assert guest.locator("button:has-text('Create key')").count() == 0
    assert guest.locator("button:has-text('Revoke')").count() == 0
    # Forging the form post (with a valid CSRF token) is refused too.
    token = next(c["value"] for c in guest.context.cookies() if c["name"] == "csrftoken")
    response = guest.request.post(f"{base}/portal/keys/new/", form={"name": "sneaky"},
                                  headers={"X-CSRFToken": token, "Referer": f"{base}/portal/keys/"})
    assert response.status == 403
    assert not ApiKey.objects.filter(tenant=tenant, name="sneaky").exists()


def test_phone_without_javascript(portal_server: Any, new_page: Any) -> None:
    """On a phone-sized screen with JavaScript off, the nav reaches every section, and no page
    is wider than the screen (wide tables scroll inside their panel)."""
    from tenants.models import ApiKey, Membership, Role, Tenant
    from tests.portal_helpers import make_ledger_row, verified_user

    email = f"phone-{uuid.uuid4().hex[:8]}@example.com"
    user = verified_user(email, PASSWORD)
    tenant = Tenant.create(f"Phone {uuid.uuid4().hex[:6]}")
    Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    key, _ = ApiKey.issue(tenant, name="phone")
    make_ledger_row(tenant, key)
    base = portal_server.url
    page = new_page(viewport={"width": 390, "height": 844}, java_script_enabled=False, is_mobile=True)
    _sign_in(page, base, email)
    for link, heading in (("Overview", "Overview"), ("Requests", "Requests"), ("Cache", "Cache"),
                          ("API keys", "API keys"), ("Members", "Members"), ("Settings", "Settings"),
                          ("Quick start", "Quick start"), ("Audit log", "Audit log")):
        page.click(f"nav.sidenav a:has-text('{link}')")
        assert page.locator("main h1").inner_text() == heading
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{heading} is {overflow}px wider than the phone"
    # A form post without JavaScript: revoke falls back to a normal POST and redirect.
    page.goto(f"{base}/portal/keys/")
    page.locator("#keys tbody tr", has_text="phone").locator("button:has-text('Revoke')").click()
    assert "revoked" in page.locator(".messages").inner_text()
    key.refresh_from_db()
    assert key.status == "revoked"
