from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenants.models import AuditEvent, Membership, Role, Tenant, User
from tenants.signals import VIA_CLI, send_tenant_created


class Command(BaseCommand):
    help = "Create a tenant and print its id (last line)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--owner", help="email of an existing or new user to make owner")

    def handle(self, *args: Any, name: str, owner: str | None, **options: Any) -> None:
        tenant = Tenant.create(name)
        AuditEvent.record("tenant.created", tenant=tenant, target=tenant.slug, via="cli")
        send_tenant_created(tenant, VIA_CLI)
        if owner:
            user, _ = User.objects.get_or_create(email=owner.lower())
            Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
        self.stdout.write(f"Created tenant {tenant.name!r} (slug {tenant.slug})")
        self.stdout.write(str(tenant.pk))
