from __future__ import annotations

from django.apps import AppConfig


class OptimizerConfig(AppConfig):
    name = "optimizer"
    verbose_name = "Optimizer and ledger"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import rollups  # noqa: F401 (connects the receiver that re-rolls a period after feedback)
        from .observers import observe
        from .pipeline.ledger import add_observer
        from .providers import freshness  # noqa: F401 (connects the credential-change receivers)

        add_observer(observe)
