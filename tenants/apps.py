from __future__ import annotations

from operator import attrgetter

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from .nav import NavEntry


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and keys"
    default_auto_field = "django.db.models.BigAutoField"
    # The portal's identity pages, placed among the other apps' (tenants/nav.py).
    portal_nav = (
        NavEntry("API keys", "portal:keys", section="keys", order=50),
        NavEntry("Members", "portal:members", section="members", order=60),
        NavEntry("Quick start", "portal:setup", section="setup", order=80),
        NavEntry("Audit log", "portal:audit", section="audit", order=90, visible=attrgetter("is_owner")),
    )

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the audit receivers)
        from .portal import invites  # noqa: F401  (connects the receiver that signs invitees in)
        from .portal.site import sync_site

        post_migrate.connect(sync_site, dispatch_uid="leo_sync_site")
