from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenants.models import ApiKey, AuditEvent, Tenant
from tenants.signals import VIA_DEMO, send_tenant_created


class Command(BaseCommand):
    help = "Create the demo tenant if missing and issue it a new API key (the last line of output)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args: Any, quiet: bool, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug="demo").first()
        if tenant is None:
            tenant = Tenant.objects.create(name="Demo", slug="demo")
            send_tenant_created(tenant, VIA_DEMO)
        key, plaintext = ApiKey.issue(tenant, name="demo")
        AuditEvent.record("api_key.created", tenant=tenant, target=key.prefix, via="demo")
        if not quiet:
            self.stdout.write(f"Demo tenant {tenant.slug} (id {tenant.pk}); new key {key.prefix}…")
        self.stdout.write(plaintext)
