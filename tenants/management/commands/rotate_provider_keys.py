from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from tenants import crypto
from tenants.models import AuditEvent, ProviderCredential


class Command(BaseCommand):
    help = ("Re-encrypt every stored provider key with the first of LEO_ENCRYPTION_KEYS. Run it after putting a "
            "new key in front; once it finishes, the old keys can be removed.")

    def handle(self, *args: Any, **options: Any) -> None:
        done = 0
        with transaction.atomic():
            for cred in ProviderCredential.objects.select_for_update().only("id", "encrypted_key", "tenant_id"):
                cred.encrypted_key = crypto.rotate(cred.encrypted_key)
                cred.save(update_fields=["encrypted_key"])
                done += 1
        AuditEvent.record("provider_keys.rotated", target=str(done), via="cli")
        self.stdout.write(f"Re-encrypted {done} provider key(s) with the current encryption key.")
