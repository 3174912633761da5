"""Shared lookup for the key commands: a tenant by id or slug."""

from __future__ import annotations

from django.core.management.base import CommandError

from tenants.models import Tenant


def tenant_by_ref(ref: str) -> Tenant:
    query = {"pk": int(ref)} if ref.isdigit() else {"slug": ref}
    try:
        return Tenant.objects.get(**query)
    except Tenant.DoesNotExist:
        raise CommandError(f"no tenant with id or slug {ref!r}") from None
