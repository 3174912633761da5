"""Celery tasks of the optimizer: thin wrappers around service functions.

`evict_caches` and `purge_request_bodies` run on the beat schedule (leo_optima/celery.py), and
`evaluate_alerts` every minute. A `shared_task` needs no configured app to be called directly, so
without a broker it also runs
eagerly, and `python manage.py cache evict TENANT` does the same for one tenant by hand.
"""

from __future__ import annotations

import asyncio
import logging

from celery import shared_task
from django.utils import timezone

from . import alerts, cache_admin
from .models import RequestBody

log = logging.getLogger(__name__)


@shared_task(name="optimizer.tasks.evict_caches", ignore_result=True, soft_time_limit=600, time_limit=660)
def evict_caches() -> dict[int, int]:
    """Drop expired cache entries and, above each tenant's size cap, the least recently used ones."""
    evicted = asyncio.run(cache_admin.evict_all())
    total = sum(evicted.values())
    if total:
        log.info("cache eviction dropped %d entries", total, extra={"tenants": len(evicted)})
    return evicted


@shared_task(name="optimizer.tasks.evaluate_alerts", ignore_result=True, soft_time_limit=50, time_limit=55)
def evaluate_alerts() -> int:
    """Evaluate every enabled alert (optimizer/alerts.py); returns how many crossed (and mailed) now."""
    crossed = sum(1 for outcome in alerts.evaluate_all() if outcome.crossed)
    if crossed:
        log.info("alerts crossed", extra={"alerts": crossed})
    return crossed


PURGE_BATCH = 5000


@shared_task(name="optimizer.tasks.purge_request_bodies", ignore_result=True, soft_time_limit=600, time_limit=660)
def purge_request_bodies() -> int:
    """Delete stored request bodies past their retention (OptimizerSettings.body_retention_days).

    In batches, so a large backlog never holds one long transaction or lock on the table."""
    now = timezone.now()
    total = 0
    while True:
        ids = list(RequestBody.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:PURGE_BATCH])
        if not ids:
            break
        deleted, _ = RequestBody.objects.filter(pk__in=ids).delete()
        total += deleted
    if total:
        log.info("purged %d expired request bodies", total)
    return total
