"""Shared pieces of the portal tests: three actors and a victim tenant with one of everything."""

from __future__ import annotations

import itertools
import random
import uuid
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
