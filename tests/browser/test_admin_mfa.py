"""Staff reach the admin in a real browser only through allauth's sign-in and its TOTP step
(issue #13 item 2); staff without TOTP are sent to set it up first."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.browser.test_portal_flows import PASSWORD, _sign_in, _totp_code

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _staff(email: str) -> Any:
    from tests.portal_helpers import verified_user

    user = verified_user(email, PASSWORD)
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def test_staff_with_totp_reach_the_admin_only_after_the_code(portal_server: Any, new_page: Any) -> None:
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    email = f"staff-{uuid.uuid4().hex[:8]}@leo.test"
    secret = generate_totp_secret()
    TOTP.activate(_staff(email), secret)
    base = portal_server.url
    page = new_page()
    page.goto(f"{base}/admin/")
    assert "/accounts/login/" in page.url and "next=%2Fadmin%2F" in page.url
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]:has-text('Sign In')")
    page.wait_for_url("**/accounts/2fa/authenticate/**")
    # The password alone opens neither the admin nor the portal.
    for path in ("/admin/", "/portal/"):
        pending = page.request.get(f"{base}{path}", max_redirects=0)
        assert pending.status == 302 and "/accounts/login/" in pending.headers["location"], path
    page.fill("input[name=code]", _totp_code(secret))
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    assert "Site administration" in page.content()


def test_staff_without_totp_are_sent_to_set_it_up(portal_server: Any, new_page: Any) -> None:
    email = f"staff-{uuid.uuid4().hex[:8]}@leo.test"
    _staff(email)
    base = portal_server.url
    page = new_page()
    _sign_in(page, base, email)
    page.goto(f"{base}/admin/")
    if "/accounts/reauthenticate/" in page.url:  # allauth asks for the password again before MFA changes
        page.fill("input[name=password]", PASSWORD)
        page.click("main form button[type=submit]")
    page.wait_for_url("**/accounts/2fa/totp/activate/**")
    secret = page.locator("#authenticator_secret").input_value()
    page.fill("input[name=code]", _totp_code(secret))
    page.click("main form button[type=submit]:has-text('Activate')")
    page.wait_for_url(lambda url: "/totp/activate/" not in url)
    # Enrolled in this session with a valid code, which counts as this session's second factor.
    page.goto(f"{base}/admin/")
    assert page.url == f"{base}/admin/" and "Site administration" in page.content()
