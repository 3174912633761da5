from __future__ import annotations

from typing import Any

from allauth.mfa.models import Authenticator
from django.core.management.base import BaseCommand
from django.db import transaction

from tenants import crypto
from tenants.adapters import MFAAdapter
from tenants.models import AuditEvent, ProviderCredential

# Where allauth keeps the values it passes through the MFA adapter's encrypt().
MFA_SECRET_FIELDS = ("secret", "seed")


class Command(BaseCommand):
    help = ("Re-encrypt every stored provider key and MFA secret with the first of LEO_ENCRYPTION_KEYS (MFA "
            "secrets stored in the clear are encrypted). Run it after putting a new key in front; once it "
            "finishes, the old keys can be removed.")

    def handle(self, *args: Any, **options: Any) -> None:
        keys = secrets = 0
        adapter = MFAAdapter()
        with transaction.atomic():
            for cred in ProviderCredential.objects.select_for_update().only("id", "encrypted_key", "tenant_id"):
                cred.encrypted_key = crypto.rotate(cred.encrypted_key)
                cred.save(update_fields=["encrypted_key"])
                keys += 1
            for auth in Authenticator.objects.select_for_update():
                changed = False
                for field in MFA_SECRET_FIELDS:
                    value = auth.data.get(field)
                    if isinstance(value, str):
                        auth.data[field] = adapter.rotate(value)
                        changed = True
                if changed:
                    auth.save(update_fields=["data"])
                    secrets += 1
        AuditEvent.record("provider_keys.rotated", target=str(keys), via="cli", mfa_secrets=secrets)
        self.stdout.write(f"Re-encrypted {keys} provider key(s) and {secrets} MFA authenticator(s) "
                          "with the current encryption key.")
