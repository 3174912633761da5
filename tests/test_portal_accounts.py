"""Accounts: sign-up creates the tenant with its owner, verification is mandatory, failed logins
are audited and rate-limited, staff use the same accounts for the admin."""

from __future__ import annotations

import random
import re
import uuid

import pytest
from django.core import mail
from django.test import Client

from tenants.models import AuditEvent, Membership, Role, Tenant, User
from tests.portal_helpers import totp_code, verified_user

pytestmark = pytest.mark.django_db


def test_signup_creates_tenant_and_requires_verification() -> None:
    client = Client()
    response = client.post("/accounts/signup/", {"email": "founder@startup.test", "organization": "Startup Ltd",
                                                 "password1": "sign-up-pass-981", "password2": "sign-up-pass-981"})
    assert response.status_code == 302
    user = User.objects.get(email="founder@startup.test")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER and membership.tenant.name == "Startup Ltd"
    assert AuditEvent.objects.filter(tenant=membership.tenant, action="tenant.created").exists()
    # Not verified yet: the portal is out of reach until the emailed link is followed.
    assert client.get("/portal/").status_code == 302
    link = re.search(r"http://testserver(/accounts/confirm-email/\S+)", mail.outbox[-1].body).group(1)
    client.post(link)
    client.post("/accounts/login/", {"login": "founder@startup.test", "password": "sign-up-pass-981"})
    response = client.get("/portal/")
    assert response.status_code == 200 and b"first-run" in response.content


def test_signup_without_organisation_uses_email() -> None:
    Client().post("/accounts/signup/", {"email": "solo@dev.test", "password1": "sign-up-pass-981",
                                        "password2": "sign-up-pass-981"})
    assert Membership.objects.get(user__email="solo@dev.test").tenant.name == "solo@dev.test"


def test_failed_logins_are_audited_and_limited() -> None:
    # A fresh address per run: the rate-limit counters live in the cache, which may be a shared Redis.
    email = f"victim-{uuid.uuid4().hex[:8]}@corp.test"
    user = verified_user(email)
    tenant_membership = Membership.objects.create(user=user, tenant=Tenant.create("Corp"), role=Role.OWNER)
    # Its own client address too, so other tests' failures never count against this one's per-IP limit.
    client = Client(REMOTE_ADDR=f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}")
    bodies = [client.post("/accounts/login/", {"login": email, "password": f"wrong-{i}"}).content
              for i in range(7)]
    events = AuditEvent.objects.filter(action="login.failed", target=email)
    assert events.filter(tenant=tenant_membership.tenant).count() >= 5
    assert "wrong-" not in str(list(events.values("data", "target")))
    # 5 failures per 5 minutes per account (ACCOUNT_RATE_LIMITS): then even the right password is refused.
    assert b"Too many failed login attempts" in bodies[-1]
    response = client.post("/accounts/login/", {"login": email, "password": "pw-portal-123!"})
    assert response.status_code == 200 and b"Too many failed login attempts" in response.content
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@nowhere.test"
    Client(REMOTE_ADDR="10.255.0.1").post("/accounts/login/", {"login": unknown, "password": "x"})
    assert AuditEvent.objects.filter(action="login.failed", target=unknown, tenant=None).exists()


def test_staff_sign_in_to_admin_with_same_account() -> None:
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    staff = verified_user("staff@leo.test")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    secret = generate_totp_secret()
    TOTP.activate(staff, secret)  # staff need a second factor (tests/test_admin_login.py)
    client = Client()
    client.post("/accounts/login/", {"login": "staff@leo.test", "password": "pw-portal-123!"})
    client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/tenants/auditevent/").status_code == 200
