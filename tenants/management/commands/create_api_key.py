from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from tenants.models import ApiKey, AuditEvent

from ._lookup import tenant_by_ref


class Command(BaseCommand):
    help = "Create an API key for a tenant (id or slug). The plaintext key is the last line; it is shown only once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant")
        parser.add_argument("--name", default="default")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args: Any, tenant: str, name: str, expires_days: int | None, **options: Any) -> None:
        t = tenant_by_ref(tenant)
        expires = timezone.now() + timedelta(days=expires_days) if expires_days else None
        key, plaintext = ApiKey.issue(t, name=name, expires_at=expires)
        AuditEvent.record("api_key.created", tenant=t, target=key.prefix, via="cli", name=name)
        self.stdout.write(f"Created key {key.prefix}… ({name}) for tenant {t.slug}. "
                          "Store it now: it is not shown again.")
        self.stdout.write(plaintext)
