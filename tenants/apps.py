from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the audit receivers)
        from .portal import invites  # noqa: F401  (connects the receiver that signs invitees in)
        from .portal.site import sync_site

        post_migrate.connect(sync_site, dispatch_uid="leo_sync_site")
