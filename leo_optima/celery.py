"""The Celery app: Redis broker in production, eager in-process tasks when no broker is configured.

Settings come from Django's (`CELERY_*`, see settings/base.py); tasks live in each app's tasks.py.
The beat schedule is here, in code, so it is reviewed with the tasks it runs.
"""

from __future__ import annotations

import os

from celery import Celery, signals
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leo_optima.settings.local")

app = Celery("leo_optima")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Recompute recent hours and days (and any older period with late ledger rows) every 10 minutes.
    "usage-rollups": {
        "task": "billing.tasks.rollup_recent",
        "schedule": crontab(minute="*/10"),
    },
    # Send closed days' usage to Stripe; retried with backoff while Stripe is unreachable.
    "stripe-usage-sync": {
        "task": "billing.tasks.sync_all_usage",
        "schedule": crontab(minute=20),
    },
    # Trim each tenant's cache to its cap and drop expired entries (optimizer/tasks.py).
    "evict-caches": {
        "task": "optimizer.tasks.evict_caches",
        "schedule": crontab(minute="*/15"),
    },
    # Owners' alert thresholds (optimizer/alerts.py): one email per crossing.
    "evaluate-alerts": {
        "task": "optimizer.tasks.evaluate_alerts",
        "schedule": crontab(minute="*"),
    },
    # Delete stored request bodies past their tenant's retention (optimizer/tasks.py).
    "purge-request-bodies": {
        "task": "optimizer.tasks.purge_request_bodies",
        "schedule": crontab(minute=5),
    },
    # Pick up subscription changes a lost webhook would otherwise leave stale.
    "stripe-subscription-refresh": {
        "task": "billing.tasks.refresh_subscriptions",
        "schedule": crontab(minute=40, hour="*/6"),
    },
}


@signals.celeryd_init.connect
def _install_worker_metrics(**_: object) -> None:
    """Only a worker serves metrics: its exporter is installed when a worker process starts."""
    # Imported here, not at the top, and not to dodge an import circle (there is none): this module
    # runs from leo_optima/__init__.py, before any settings module, so before leo_optima/settings/env.py
    # has copied `.env` into os.environ. prometheus_client decides at import whether to write
    # multiprocess files (PROMETHEUS_MULTIPROC_DIR, which `.env` may set), so importing it from here
    # would fix every process that imports leo_optima in single-process mode
    # (tests/test_metrics.py::test_importing_the_project_leaves_prometheus_client_unimported).
    from optimizer.metrics import install_celery_worker_exporter

    install_celery_worker_exporter()
