from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import keys
from tenants.models import ApiKey, AuditEvent


class Command(BaseCommand):
    help = "Revoke an API key, given its prefix (e.g. leo_AbCdEfGh) or the whole key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")

    def handle(self, *args: Any, key: str, **options: Any) -> None:
        prefix = key[: keys.PREFIX_LENGTH]
        try:
            row = ApiKey.objects.get(prefix=prefix)
        except ApiKey.DoesNotExist:
            raise CommandError(f"no key with prefix {prefix}") from None
        row.revoke()
        AuditEvent.record("api_key.revoked", tenant=row.tenant, target=row.prefix, via="cli")
        self.stdout.write(f"Revoked {row.prefix}… ({row.name}) of tenant {row.tenant.slug}")
