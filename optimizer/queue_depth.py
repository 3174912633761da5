"""The Celery queue depth, read from the broker at scrape time (``leo_celery_queue_depth``).

``optimizer.metrics.scrape_registry`` registers a ``CeleryQueueDepthCollector`` for each scrape of
the web's ``/metrics``; a worker's own exporter leaves it out, since the figure must show while
every worker is down.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import redis
from django.conf import settings
from prometheus_client.core import GaugeMetricFamily, Metric

QUEUE_DEPTH_NAME = "leo_celery_queue_depth"


class CeleryQueueDepthCollector:
    """Reads the length of Celery's Redis queues at scrape time and exports ``leo_celery_queue_depth``.

    Reading at scrape time (instead of a gauge a worker sets) means the figure is right even when
    every worker is down, which is exactly when it matters, and needs no multiprocess gauge mode.
    Celery's Redis transport keeps each queue as a list under the queue's name (priority variants
    use ``name`` + ``\\x06\\x16`` + priority), so all of them are summed. Only Redis brokers are
    supported; with any other broker, or when Redis does not answer within the timeout, the
    metric is simply absent from that scrape.
    """

    _PRIORITY_SEP = "\x06\x16"

    def __init__(self, broker_url: str, queues: Iterable[str] = ("celery",), timeout: float = 0.5):
        self.broker_url = broker_url
        self.queues = tuple(q for q in queues if q)
        self.timeout = timeout

    def describe(self) -> Iterator[Metric]:
        """Describe without touching Redis, so registering the collector never blocks."""
        yield GaugeMetricFamily(QUEUE_DEPTH_NAME, self._doc(), labels=["queue"])

    @staticmethod
    def _doc() -> str:
        return "Messages waiting in each Celery queue (Redis list length, read at scrape time)."

    def collect(self) -> Iterator[Metric]:
        scheme = urlsplit(self.broker_url).scheme
        if scheme not in {"redis", "rediss", "unix"} or not self.queues:
            return
        try:
            client = redis.Redis.from_url(
                self.broker_url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
            )
            try:
                pipe = client.pipeline(transaction=False)
                for queue in self.queues:
                    pipe.llen(queue)
                    for priority in range(1, 10):
                        pipe.llen(f"{queue}{self._PRIORITY_SEP}{priority}")
                lengths = pipe.execute()
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return
        family = GaugeMetricFamily(QUEUE_DEPTH_NAME, self._doc(), labels=["queue"])
        per_queue = 10
        for i, queue in enumerate(self.queues):
            family.add_metric([queue], float(sum(lengths[i * per_queue : (i + 1) * per_queue])))
        yield family


def broker_url() -> str:
    """The Celery broker URL: Django's ``CELERY_BROKER_URL`` setting, else the environment."""
    # `configured` is false until the settings are loaded (and in a bare script without any): the
    # environment serves then, instead of loading or failing on settings here.
    if settings.configured and (url := getattr(settings, "CELERY_BROKER_URL", "") or ""):
        return str(url)
    return os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or ""


def queue_names() -> list[str]:
    """The queues to report: ``LEO_CELERY_QUEUES``, comma-separated (default ``celery``)."""
    raw = os.environ.get("LEO_CELERY_QUEUES", "celery")
    return [q.strip() for q in raw.split(",") if q.strip()]
