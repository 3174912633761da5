"""Shared pieces of the portal tests: three actors and a victim tenant with one of everything."""

from __future__ import annotations

import itertools
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

_ids = itertools.count(random.randint(20_000_000, 30_000_000))


@dataclass
class Actors:
    """owner and member of `tenant`; `outsider` owns another tenant; `nobody` belongs to none."""

    tenant: Any
    owner: Any
    admin: Any
    member: Any
    outsider: Any
    outsider_tenant: Any
    nobody: Any
    key: Any
    membership: Any
    credential: Any
    entry: Any
    log: Any


def verified_user(email: str, password: str = "pw-portal-123!") -> Any:
    from allauth.account.models import EmailAddress

    from tenants.models import User

    user = User.objects.create_user(email, password)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


def totp_code(secret: str, valid_for: float = 3.0) -> str:
    """The current TOTP code for a secret, as an authenticator app would show it. A code read in
    the last `valid_for` seconds of its 30-second period could expire before the server checks it
    (allauth allows no drift), so then this waits for the next period, as a person would."""
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    left = 30 - time.time() % 30
    if left < valid_for:
        time.sleep(left + 0.05)
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def staff_with_totp(email: str, password: str = "pw-portal-123!") -> tuple[Any, str]:
    """A verified staff superuser with TOTP set up (every staff account needs it, SECURITY.md)."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    user = verified_user(email, password)
    user.is_staff = user.is_superuser = True
    user.save()
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return user, secret


def sign_in_staff(client: Any, email: str, password: str = "pw-portal-123!") -> Any:
    """Make a staff user with TOTP and sign `client` in the only way the admin accepts: allauth's
    login, then its second-factor step. Works with Django's test client and with an httpx client
    on a live server (which needs the CSRF token from the form)."""
    user, secret = staff_with_totp(email, password)
    if hasattr(client, "defaults"):  # Django's test client: an address of its own, so allauth's
        # per-address login limits (kept in a cache that may be a shared Redis) never add up
        client.defaults.setdefault("REMOTE_ADDR", f"10.{random.randint(0, 255)}.{random.randint(0, 255)}."
                                                  f"{random.randint(1, 254)}")
    steps: tuple[tuple[str, Callable[[], dict[str, str]]], ...] = (
        ("/accounts/login/", lambda: {"login": email, "password": password}),
        ("/accounts/2fa/authenticate/", lambda: {"code": totp_code(secret)}))
    for path, fields in steps:
        page = client.get(path)
        data = fields()  # the code is read when it is typed, not before the login step
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
        if token:
            data = {**data, "csrfmiddlewaretoken": token.group(1)}
        response = client.post(path, data=data)
        assert response.status_code == 302, (path, response.status_code)
    return user


def make_ledger_row(tenant: Any, api_key: Any = None, **fields: Any) -> Any:
    from optimizer.models import RequestLog

    values: dict[str, Any] = {
        "request_id": "req_" + uuid.uuid4().hex[:20], "created_at": timezone.now(), "tenant": tenant,
        "api_key": api_key, "endpoint": "chat.completions", "model": "gpt-4o-mini", "served_model": "gpt-4o-mini",
        "status_code": 200, "technique": "miss", "prompt_tokens": 10, "completion_tokens": 5,
        "cost_usd": Decimal("0.00001"), "counterfactual_usd": Decimal("0.00001"), "saved_usd": Decimal("0"),
        "upstream_calls": 1, "trail": {"stages": [{"stage": "exact", "hit": False}, {"stage": "upstream"}]},
    }
    values.update(fields)
    return RequestLog.objects.create(**values)


def build_actors() -> Actors:
    from optimizer.models import CacheEntry
    from tenants.models import ApiKey, Membership, ProviderCredential, Role, Tenant

    n = next(_ids)
    tenant = Tenant.objects.create(id=n, name=f"Victim {n}", slug=f"victim-{n}")
    owner = verified_user(f"owner-{n}@example.com")
    admin = verified_user(f"admin-{n}@example.com")
    member = verified_user(f"member-{n}@example.com")
    Membership.objects.create(user=owner, tenant=tenant, role=Role.OWNER)
    Membership.objects.create(user=admin, tenant=tenant, role=Role.ADMIN)
    membership = Membership.objects.create(user=member, tenant=tenant, role=Role.MEMBER)
    outsider_tenant = Tenant.objects.create(id=n + 1, name=f"Other {n}", slug=f"other-{n}")
    outsider = verified_user(f"outsider-{n}@example.com")
    Membership.objects.create(user=outsider, tenant=outsider_tenant, role=Role.OWNER)
    nobody = verified_user(f"nobody-{n}@example.com")
    key, _ = ApiKey.issue(tenant, name="victim-key")
    credential = ProviderCredential(tenant=tenant, name="victim-provider", base_url="http://127.0.0.1:9/v1")
    credential.set_key("sk-victim-secret-abcd")
    credential.save()
    entry = CacheEntry.objects.create(tenant=tenant, scope_hash="s" * 64, key_hash="k" * 64, model="gpt-4o-mini",
                                      request_text="victim question about zebras", response={"choices": []},
                                      expires_at=timezone.now() + timedelta(days=1))
    log = make_ledger_row(tenant, key, technique="exact", cost_usd=Decimal(0), saved_usd=Decimal("0.00001"))
    return Actors(tenant, owner, admin, member, outsider, outsider_tenant, nobody, key, membership, credential,
                  entry, log)
