from __future__ import annotations

from operator import attrgetter

from django.apps import AppConfig

from tenants.nav import NavEntry


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"
    default_auto_field = "django.db.models.BigAutoField"
    # Billing's page in the portal's side navigation (tenants/nav.py), for those who may manage it.
    portal_nav = (NavEntry("Billing", "billing:home", section="billing", order=100,
                           visible=attrgetter("can_manage")),)

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
