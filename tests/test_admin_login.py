"""Staff sign in to the admin through allauth (rate limits, MFA), and the admin insists on TOTP.

Issue #13 item 2: a staff user with TOTP signed in at `POST /admin/login/` with the password alone,
that session also opened the portal, and 25 wrong passwords there were never throttled.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.portal_helpers import totp_code, verified_user

pytestmark = pytest.mark.django_db
PASSWORD = "pw-portal-123!"


def _client() -> Client:
    # Its own address: allauth's per-address login limit lives in the cache, maybe a shared Redis.
    return Client(REMOTE_ADDR=f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}")


def _staff(totp: bool) -> tuple[Any, str | None]:
    """A verified staff superuser (a fresh address each run) and, if asked, their TOTP secret."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    user = verified_user(f"staff-{uuid.uuid4().hex[:8]}@leo.test", PASSWORD)
    user.is_staff = user.is_superuser = True
    user.save()
    if not totp:
        return user, None
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return user, secret


def test_admin_login_hands_over_to_allauth_keeping_next() -> None:
    response = Client().get("/admin/login/?next=/admin/tenants/tenant/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2Ftenants%2Ftenant%2F"
    # An anonymous visit to any admin page ends at the same login, with next pointing back.
    assert Client().get("/admin/", follow=True).redirect_chain[-1][0] == "/accounts/login/?next=%2Fadmin%2F"


def test_password_alone_opens_neither_admin_nor_portal_for_staff_with_totp() -> None:
    user, secret = _staff(totp=True)
    client = _client()
    # The old admin form's fields: the password is never read there any more.
    response = client.post("/admin/login/?next=/admin/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/")["Location"].startswith("/accounts/login/")
    assert client.get("/portal/")["Location"].startswith("/accounts/login/")

    # allauth's login: the password leads to the second factor, and still opens nothing.
    response = client.post("/accounts/login/?next=/admin/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/2fa/authenticate/")
    assert client.get("/admin/")["Location"].startswith("/accounts/login/")
    assert client.get("/portal/")["Location"].startswith("/accounts/login/")

    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/tenants/auditevent/").status_code == 200


def test_wrong_passwords_through_the_admin_login_are_throttled() -> None:
    user, _ = _staff(totp=False)
    client = _client()
    # Wherever the admin's login leads, post the password there (under either form's field names).
    login_url = client.get("/admin/login/?next=/admin/", follow=True).request["PATH_INFO"]
    fields = {"username": user.email, "login": user.email}
    bodies = [client.post(login_url, {**fields, "password": f"wrong-{i}"}).content for i in range(25)]
    assert b"Too many failed login attempts" in bodies[-1]
    # Even the right password is refused while the limit holds.
    response = client.post(login_url, {**fields, "password": PASSWORD})
    assert b"Too many failed login attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_staff_without_totp_are_sent_to_set_it_up_before_the_admin_opens() -> None:
    user, _ = _staff(totp=False)
    client = _client()
    client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert "_auth_user_id" in client.session  # signed in, no second factor set up
    response = client.get("/admin/tenants/tenant/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/totp/activate/?next=%2Fadmin%2Ftenants%2Ftenant%2F"
    # Signing out still works for them.
    assert client.post("/admin/logout/").status_code in (200, 302)


def test_staff_enrolling_totp_in_this_session_then_reach_the_admin() -> None:
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    user, _ = _staff(totp=False)
    client = _client()
    client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    TOTP.activate(user, generate_totp_secret())  # what allauth's activation page does with a valid code
    assert client.get("/admin/").status_code == 200


def test_a_session_made_without_the_second_factor_is_sent_to_pass_it() -> None:
    """force_login stands for any non-allauth way to a session (Django's login(), a script)."""
    user, secret = _staff(totp=True)
    client = _client()
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/reauthenticate/?next=%2Fadmin%2F"
    response = client.post(response["Location"], {"code": totp_code(secret)})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def _views(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for p in patterns:
        if isinstance(p, URLResolver):
            found += _views(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            found.append((prefix + str(p.pattern), p.callback))
    return found


def test_no_other_view_makes_a_session() -> None:
    """Every routed view that could sign someone in is allauth's (whose login stages include MFA):
    no django.contrib.auth login view, no DRF browsable-API login, no login by e-mailed code."""
    from django.conf import settings
    from django.contrib.auth import views as auth_views

    for route, callback in _views(get_resolver().url_patterns):
        view_class = getattr(callback, "view_class", None)
        module = getattr(view_class or callback, "__module__", "")
        assert not (view_class and issubclass(view_class, auth_views.LoginView)), route
        assert not module.startswith("rest_framework"), route
    assert settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] == []
    assert not settings.ACCOUNT_LOGIN_BY_CODE_ENABLED and not settings.ACCOUNT_LOGIN_ON_PASSWORD_RESET
    assert Client().get("/api-auth/login/").status_code == 404
    assert Client().get("/accounts/login/code/").status_code == 404
    # The code-confirming step exists only inside a login already under way (a login stage).
    assert Client().get("/accounts/login/code/confirm/").status_code == 302
