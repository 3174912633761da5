"""A provider credential saved or deleted anywhere is used by the next request in every worker.

registry.py keeps each tenant's upstreams in a per-process cache. Saving or deleting a
`ProviderCredential` (portal, admin, shell) bumps a per-tenant version in the shared state
(Redis when configured, shared by every worker; process memory otherwise), once the change is
committed; `changed_since_last_look` compares it with the version this worker last saw, so the
registry reloads the tenant's upstreams before the next request instead of after its TTL. With the
shared state unreachable the registry's short TTL still bounds how long an old list is used.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from leo_optima.core.state import StateUnavailable, get_state
from tenants.models import ProviderCredential

# Long enough to outlive any cached list; if it expires, the next look differs and reloads once.
_VERSION_TTL = 7 * 24 * 3600.0
_seen: dict[int, bytes | None] = {}


def _key(tenant_id: int) -> str:
    return f"leo:providers:v:{tenant_id}"


async def bump(tenant_id: int) -> None:
    try:
        await get_state().add(_key(tenant_id), 1, _VERSION_TTL)
    except StateUnavailable:
        pass  # the registry's TTL bounds the delay


async def changed_since_last_look(tenant_id: int) -> bool:
    """True when the tenant's credentials changed since this worker last looked (or on its first look)."""
    try:
        version = await get_state().get(_key(tenant_id))
    except StateUnavailable:
        return False
    if tenant_id in _seen and _seen[tenant_id] == version:
        return False
    _seen[tenant_id] = version
    return True


@receiver(post_save, sender=ProviderCredential, dispatch_uid="leo_providers_changed_save")
@receiver(post_delete, sender=ProviderCredential, dispatch_uid="leo_providers_changed_delete")
def _credential_changed(sender: type[ProviderCredential], instance: ProviderCredential, **kwargs: Any) -> None:
    tenant_id = instance.tenant_id
    # After commit: a worker that reloads on the bump must read the committed rows.
    transaction.on_commit(lambda: async_to_sync(bump)(tenant_id))
