"""allauth adapters: a sign-up creates the user's tenant (the user its owner); MFA secrets are
encrypted at rest."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django.db import transaction
from django.http import HttpRequest

from . import crypto
from .models import AuditEvent, Membership, Role, Tenant
from .signals import VIA_SIGNUP, send_tenant_created


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
                send_tenant_created(tenant, VIA_SIGNUP)
        return user


ENCRYPTED = "fernet:"
"""Marks an MFA secret encrypted by ``MFAAdapter``; values without it were stored in the clear
before the adapter existed and are read as they are (``rotate_provider_keys`` encrypts them)."""


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds encrypted with ``LEO_ENCRYPTION_KEYS`` (the provider
    keys' MultiFernet), where allauth's default stores them in the clear: a database dump alone
    then yields no second factor."""

    def encrypt(self, text: str) -> str:
        return ENCRYPTED + crypto.encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        if encrypted_text.startswith(ENCRYPTED):
            return crypto.decrypt(encrypted_text[len(ENCRYPTED):])
        return encrypted_text

    def rotate(self, stored: str) -> str:
        """A stored secret re-encrypted with the current key (one stored in the clear, encrypted)."""
        if stored.startswith(ENCRYPTED):
            return ENCRYPTED + crypto.rotate(stored[len(ENCRYPTED):])
        return self.encrypt(stored)
