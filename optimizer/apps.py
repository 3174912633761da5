from __future__ import annotations

from django.apps import AppConfig

from tenants.nav import NavEntry


class OptimizerConfig(AppConfig):
    name = "optimizer"
    verbose_name = "Optimizer and ledger"
    default_auto_field = "django.db.models.BigAutoField"
    # The optimizer's portal pages in the portal's side navigation (tenants/nav.py).
    portal_nav = (
        NavEntry("Overview", "optimizer_portal:overview", section="overview", order=10),
        NavEntry("Requests", "optimizer_portal:requests", section="requests", order=20),
        NavEntry("Breakdowns", "optimizer_portal:breakdown", section="breakdown", order=30),
        NavEntry("Cache", "optimizer_portal:cache", section="cache", order=40),
        NavEntry("Settings", "optimizer_portal:settings", section="settings", order=70),
    )

    def ready(self) -> None:
        from . import rollups  # noqa: F401 (connects the receiver that re-rolls a period after feedback)
        from .observers import observe
        from .pipeline.ledger import add_observer
        from .providers import freshness  # noqa: F401 (connects the credential-change receivers)

        add_observer(observe)
