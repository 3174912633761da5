"""allauth adapter: a sign-up creates the user's tenant, with the user as its owner."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction
from django.http import HttpRequest

from .models import AuditEvent, Membership, Role, Tenant


def client_ip(request: HttpRequest | None) -> str | None:
    """The client address as Django sees it (nginx's X-Forwarded-For is resolved before us)."""
    return request.META.get("REMOTE_ADDR") if request is not None else None


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        with transaction.atomic():
            user = super().save_user(request, user, form, commit=commit)
            if commit:
                name = (form.cleaned_data.get("organization") or "").strip() or user.email
                tenant = Tenant.create(name)
                Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
                AuditEvent.record("tenant.created", tenant=tenant, actor=user, target=tenant.name,
                                  ip=client_ip(request))
        return user
