"""Prometheus metrics for the gateway: definitions, bounded labels, and the `/metrics` view.

Every metric is prefixed ``leo_``. The pipeline calls the small ``observe_*`` helpers below and never
touches a metric object directly, so label hygiene lives in one place.

Label cardinality is bounded on purpose; a time series per API key or per request id would
exhaust Prometheus within days:

- ``tenant``: the tenant slug, sanitised (``[a-z0-9_-]``, at most 64 chars). Each process tracks at
  most ``LEO_METRICS_MAX_TENANTS`` (default 1000) distinct slugs; later ones are counted as
  ``"other"``. So the series count is bounded by that cap times the number of processes.
- ``model``: a name in the known-model set (seeded below, and extended with every active
  ``ModelPrice`` row each time ``pipeline.pricing`` loads the price table, via ``register_models``);
  anything else is ``"other"``.
- ``technique``: one of ``TECHNIQUES``; anything else is ``"other"``.
- ``status``: common HTTP codes as themselves, any other code as its class (``"4xx"``).
- ``provider`` / ``kind``: short sanitised slugs capped like tenants, or fixed enums.

No label ever carries an API key, a prompt, a user id or a request id.

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set *before* ``prometheus_client`` is first
imported (the container environment and ``deploy/gunicorn.conf.py`` do this), each worker writes
its samples to mmap files in that directory and ``metrics_view`` aggregates all of them with
prometheus_client's ``MultiProcessCollector`` (``scrape_registry``). django-prometheus's own metrics
go through the same files, so the single ``/metrics`` view here replaces ``django_prometheus.urls``:
it is that package's exports view plus the Celery queue depth read at scrape time.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

# In multiprocess mode prometheus_client opens its sample files as metrics are created and fails
# if the directory is missing (a fresh container running `manage.py migrate`, say).
if _mp_dir := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(_mp_dir, exist_ok=True)

__all__ = [
    "TECHNIQUES",
    "CeleryQueueDepthCollector",
    "exported_metric_names",
    "metrics_view",
    "multiprocess_dir",
    "observe_cache_lookup",
    "observe_embedding",
    "observe_quota_rejection",
    "observe_request",
    "observe_singleflight_wait",
    "observe_upstream",
    "observe_upstream_error",
    "install_celery_worker_exporter",
    "register_models",
    "render_metrics",
    "scrape_registry",
]

# --------------------------------------------------------------------------- label bounding

OTHER = "other"

#: Values of the ``X-LEO-Cache`` header, plus ``error`` for requests that failed before an answer.
TECHNIQUES: frozenset[str] = frozenset(
    {"exact", "semantic", "decomposed", "miss", "bypass", "error"}
)

#: Status codes common enough to keep as themselves; anything else collapses to its class.
_KEPT_STATUSES: frozenset[int] = frozenset(
    {200, 201, 204, 400, 401, 402, 403, 404, 408, 409, 413, 415, 422, 429, 499, 500, 502, 503, 504}
)

#: Seed of the known-model set, so a fresh process already labels the common models correctly.
#: ``pipeline.pricing.prices()`` adds every active ``ModelPrice`` model via ``register_models``.
_SEED_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4-turbo",
    "gpt-4",
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-instruct",
    "o1",
    "o1-mini",
    "o3",
    "o3-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)

_QUOTA_KINDS: frozenset[str] = frozenset(
    {"rpm", "tpm", "monthly_tokens", "monthly_spend", "concurrency"}
)
_UPSTREAM_ERROR_KINDS: frozenset[str] = frozenset(
    {"timeout", "connect", "rate_limit", "http_4xx", "http_5xx", "protocol", "auth", "cancelled"}
)
_CACHE_KINDS: frozenset[str] = frozenset({"exact", "semantic"})

_SLUG_RE = re.compile(r"[^a-z0-9_-]+")
_MAX_SLUG_LEN = 64

_lock = threading.Lock()
_known_models: set[str] = set(_SEED_MODELS)
_seen_tenants: set[str] = set()
_seen_providers: set[str] = set()


def _max_tenants() -> int:
    try:
        return max(1, int(os.environ.get("LEO_METRICS_MAX_TENANTS", "1000")))
    except ValueError:
        return 1000


_MAX_PROVIDERS = 32


def _slug(value: object) -> str:
    """Lower-case, restrict to ``[a-z0-9_-]`` and truncate; empty becomes ``"unknown"``."""
    text = _SLUG_RE.sub("-", str(value or "").strip().lower()).strip("-")[:_MAX_SLUG_LEN]
    return text or "unknown"


def _capped(value: object, seen: set[str], cap: int) -> str:
    """Return the slug of ``value`` if it is already tracked or there is room, else ``"other"``."""
    slug = _slug(value)
    if slug in seen:
        return slug
    with _lock:
        if slug in seen:
            return slug
        if len(seen) >= cap:
            return OTHER
        seen.add(slug)
        return slug


def tenant_label(tenant: object) -> str:
    """The bounded ``tenant`` label for a tenant slug (or anything with a ``slug`` attribute)."""
    return _capped(getattr(tenant, "slug", tenant), _seen_tenants, _max_tenants())


def model_label(model: object) -> str:
    """The bounded ``model`` label: a known model name, else ``"other"``."""
    name = str(model or "").strip().lower()
    return name if name in _known_models else OTHER


def technique_label(technique: object) -> str:
    """The bounded ``technique`` label."""
    name = str(technique or "").strip().lower()
    return name if name in TECHNIQUES else OTHER


def status_label(status: object) -> str:
    """The bounded ``status`` label: common codes as themselves, the rest as ``"Nxx"``."""
    try:
        code = int(status)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return OTHER
    if code in _KEPT_STATUSES:
        return str(code)
    if 100 <= code <= 599:
        return f"{code // 100}xx"
    return OTHER


def _enum_label(value: object, allowed: frozenset[str]) -> str:
    name = str(value or "").strip().lower()
    return name if name in allowed else OTHER


def register_models(names: Iterable[str]) -> None:
    """Add model names (e.g. every row of the ``ModelPrice`` table) to the known-model set.

    Called by ``pipeline.pricing.prices()`` each time it loads the price table; names are
    lower-cased. Models that were
    never registered are labelled ``"other"`` so a client cannot create series by inventing names.
    """
    cleaned = {str(n).strip().lower() for n in names if n and len(str(n)) <= 100}
    with _lock:
        _known_models.update(cleaned)


# --------------------------------------------------------------------------- metric definitions

# Buckets: upstream calls range from a cached-prefix 50 ms to multi-minute streams.
_UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
# Request latency covers both sub-millisecond cache hits and long upstream calls.
_REQUEST_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Cache lookups and embeddings are local and should stay in the millisecond range.
_LOCAL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

REQUESTS = Counter(
    "leo_requests",
    "Proxy requests by tenant, model, technique (X-LEO-Cache) and HTTP status.",
    ["tenant", "model", "technique", "status"],
)
REQUEST_LATENCY = Histogram(
    "leo_request_duration_seconds",
    "End-to-end proxy request duration by technique (time to the full answer).",
    ["technique"],
    buckets=_REQUEST_BUCKETS,
)
TOKENS_SAVED = Counter(
    "leo_tokens_saved",
    "Tokens not sent to or generated by the upstream thanks to the optimizer.",
    ["tenant", "technique"],
)
DOLLARS_SAVED = Counter(
    "leo_dollars_saved",
    "US dollars saved: counterfactual cost minus actual cost, from the ledger's figures.",
    ["tenant", "technique"],
)
UPSTREAM_LATENCY = Histogram(
    "leo_upstream_latency_seconds",
    "Duration of upstream provider calls.",
    ["provider", "model"],
    buckets=_UPSTREAM_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "leo_upstream_errors",
    "Failed upstream provider calls by provider and error kind.",
    ["provider", "kind"],
)
CACHE_LOOKUP = Histogram(
    "leo_cache_lookup_seconds",
    "Duration of cache lookups (exact or semantic).",
    ["kind"],
    buckets=_LOCAL_BUCKETS,
)
EMBEDDING = Histogram(
    "leo_embedding_seconds",
    "Duration of local embedding computations.",
    buckets=_LOCAL_BUCKETS,
)
SINGLEFLIGHT_WAITS = Counter(
    "leo_singleflight_waits",
    "Requests that waited for an identical in-flight upstream call instead of making their own.",
)
QUOTA_REJECTIONS = Counter(
    "leo_quota_rejections",
    "Requests rejected by quotas or rate limits.",
    ["tenant", "kind"],
)

CELERY_TASKS = Counter(
    "leo_celery_tasks",
    "Celery tasks finished in this worker, by task name and outcome.",
    ["task", "state"],
)

QUEUE_DEPTH_NAME = "leo_celery_queue_depth"


# --------------------------------------------------------------------------- helpers the pipeline calls


def observe_request(
    tenant: object,
    model: str,
    technique: str,
    status: int | str,
    tokens_saved: int = 0,
    dollars_saved: float = 0.0,
    *,
    latency_s: float | None = None,
) -> None:
    """Record one finished proxy request (call once per request, hits included).

    ``tokens_saved`` / ``dollars_saved`` are the ledger's figures for this request; negative values
    (routing that cost more, say) are not added, since Prometheus counters only go up. The ledger,
    not this counter, is the source of truth for billing.
    """
    t_label = tenant_label(tenant)
    tech = technique_label(technique)
    REQUESTS.labels(
        tenant=t_label, model=model_label(model), technique=tech, status=status_label(status)
    ).inc()
    if tokens_saved and tokens_saved > 0:
        TOKENS_SAVED.labels(tenant=t_label, technique=tech).inc(int(tokens_saved))
    if dollars_saved and dollars_saved > 0:
        DOLLARS_SAVED.labels(tenant=t_label, technique=tech).inc(float(dollars_saved))
    if latency_s is not None and latency_s >= 0:
        REQUEST_LATENCY.labels(technique=tech).observe(latency_s)


def observe_upstream(provider: str, model: str, seconds: float) -> None:
    """Record the duration of one upstream call (successful or not)."""
    UPSTREAM_LATENCY.labels(
        provider=_capped(provider, _seen_providers, _MAX_PROVIDERS), model=model_label(model)
    ).observe(max(0.0, seconds))


def observe_upstream_error(provider: str, kind: str) -> None:
    """Count one failed upstream call; ``kind`` is one of timeout, connect, rate_limit, http_4xx,
    http_5xx, protocol, auth, cancelled (anything else is ``"other"``)."""
    UPSTREAM_ERRORS.labels(
        provider=_capped(provider, _seen_providers, _MAX_PROVIDERS),
        kind=_enum_label(kind, _UPSTREAM_ERROR_KINDS),
    ).inc()


def observe_cache_lookup(kind: str, seconds: float) -> None:
    """Record one cache lookup; ``kind`` is ``exact`` or ``semantic``."""
    CACHE_LOOKUP.labels(kind=_enum_label(kind, _CACHE_KINDS)).observe(max(0.0, seconds))


def observe_embedding(seconds: float) -> None:
    """Record one embedding computation (a batch counts once)."""
    EMBEDDING.observe(max(0.0, seconds))


def observe_singleflight_wait() -> None:
    """Count one request that joined an in-flight identical upstream call."""
    SINGLEFLIGHT_WAITS.inc()


def observe_quota_rejection(tenant: object, kind: str) -> None:
    """Count one quota or rate-limit rejection; ``kind`` is rpm, tpm, monthly_tokens,
    monthly_spend or concurrency."""
    QUOTA_REJECTIONS.labels(tenant=tenant_label(tenant), kind=_enum_label(kind, _QUOTA_KINDS)).inc()


# --------------------------------------------------------------------------- queue depth


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
        import redis  # imported lazily: only web processes with a Redis broker need it

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


def _broker_url() -> str:
    """The Celery broker URL: Django's ``CELERY_BROKER_URL`` setting, else the environment."""
    try:
        from django.conf import settings

        if settings.configured:
            url = getattr(settings, "CELERY_BROKER_URL", "") or ""
            if url:
                return str(url)
    except ImportError:  # pragma: no cover - Django is always installed here
        pass
    return os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or ""


def _queue_names() -> list[str]:
    raw = os.environ.get("LEO_CELERY_QUEUES", "celery")
    return [q.strip() for q in raw.split(",") if q.strip()]


# --------------------------------------------------------------------------- exposition


def multiprocess_dir() -> str | None:
    """The multiprocess directory when multiprocess mode is on, else ``None``."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
    return path or None


def scrape_registry(*, queue_depth: bool = True) -> CollectorRegistry:
    """What one scrape reads, built from prometheus_client's own parts.

    Multiprocess mode: the library's documented recipe, a fresh registry with
    ``MultiProcessCollector`` (every worker's files, live and dead, summed), as
    ``django_prometheus.exports.ExportToDjangoView`` does; otherwise the process-global ``REGISTRY``
    (ours, django-prometheus's, and the process/platform collectors). The queue-depth collector is
    registered per scrape rather than globally so importing this module never talks to Redis; it is
    the one thing django-prometheus's own view could not add, which is why ``/metrics`` is ours.
    """
    if multiprocess_dir() is None and not queue_depth:
        return REGISTRY
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)  # type: ignore[arg-type]  # a registry is a collector too
    if queue_depth and (broker := _broker_url()):
        registry.register(CeleryQueueDepthCollector(broker, _queue_names()))
    return registry


def render_metrics(*, queue_depth: bool = True) -> tuple[bytes, str]:
    """The Prometheus text exposition for this process (or all workers) and its content type."""
    return generate_latest(scrape_registry(queue_depth=queue_depth)), CONTENT_TYPE_LATEST


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: correct with several gunicorn workers (see module docstring).

    Not authenticated: nginx refuses ``/metrics`` from outside and Prometheus scrapes the web
    service directly on the internal network.
    """
    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)


def exported_metric_names() -> set[str]:
    """Every sample name this module exports (``_total``, ``_bucket``, ``_count``, ``_sum``,
    ``_created`` included), plus ``leo_celery_queue_depth``. Used to check dashboards."""
    names: set[str] = set()
    for metric in (
        REQUESTS,
        REQUEST_LATENCY,
        TOKENS_SAVED,
        DOLLARS_SAVED,
        UPSTREAM_LATENCY,
        UPSTREAM_ERRORS,
        CACHE_LOOKUP,
        EMBEDDING,
        SINGLEFLIGHT_WAITS,
        QUOTA_REJECTIONS,
        CELERY_TASKS,
    ):
        for family in metric.describe():
            names.add(family.name)
            if family.type == "counter":
                names.update({family.name + "_total", family.name + "_created"})
            elif family.type == "histogram":
                names.update(family.name + s for s in ("_bucket", "_count", "_sum", "_created"))
    names.add(QUEUE_DEPTH_NAME)
    return names


# --------------------------------------------------------------------------- Celery worker exporter

_MAX_TASK_NAMES = 200
_seen_tasks: set[str] = set()
_TASK_NAME_RE = re.compile(r"[^A-Za-z0-9_.:-]+")


def _task_label(name: object) -> str:
    # Task names come from code, not clients, but cap them anyway in case of dynamic names.
    text = _TASK_NAME_RE.sub("_", str(name or "unknown"))[:120]
    if text in _seen_tasks:
        return text
    with _lock:
        if text not in _seen_tasks and len(_seen_tasks) >= _MAX_TASK_NAMES:
            return OTHER
        _seen_tasks.add(text)
    return text


def _wipe_multiprocess_dir(path: str, keep_pid: int | None = None) -> None:
    """Remove the sample files left by an earlier run (master start only)."""
    os.makedirs(path, exist_ok=True)
    for entry in os.scandir(path):
        if not entry.name.endswith(".db"):
            continue
        if keep_pid is not None and entry.name.endswith(f"_{keep_pid}.db"):
            continue
        try:
            os.remove(entry.path)
        except FileNotFoundError:
            pass


def install_celery_worker_exporter(port: int | None = None, addr: str = "0.0.0.0") -> None:
    """Serve the worker's metrics over HTTP and count finished tasks.

    Call once from ``leo_optima/celery.py``. When a worker starts (``worker_init``, in the main
    process before the pool forks) it wipes the multiprocess directory and serves
    ``http://addr:port/metrics`` (``LEO_WORKER_METRICS_PORT``, default 9808) from a thread; pool
    children write their samples to the multiprocess files, and ``worker_process_shutdown`` marks a
    child dead. ``beat`` and other Celery commands never fire ``worker_init``, so they stay quiet.
    """
    from celery import signals

    def _start(**_: object) -> None:
        listen = port if port is not None else int(os.environ.get("LEO_WORKER_METRICS_PORT", "9808"))
        if listen <= 0:
            return
        path = multiprocess_dir()
        if path:
            _wipe_multiprocess_dir(path, keep_pid=os.getpid())
        # The queue depth is the web's to report (it must show while every worker is down).
        start_http_server(listen, addr=addr, registry=scrape_registry(queue_depth=False))

    def _process_shutdown(pid: int | None = None, **_: object) -> None:
        if multiprocess_dir():
            mark_process_dead(pid or os.getpid())

    def _counter(state: str) -> Callable[..., None]:
        def count(sender: object = None, **_: object) -> None:
            CELERY_TASKS.labels(task=_task_label(getattr(sender, "name", sender)), state=state).inc()

        return count

    signals.worker_init.connect(_start, weak=False)
    signals.worker_process_shutdown.connect(_process_shutdown, weak=False)
    for signal, state in (
        (signals.task_success, "success"),
        (signals.task_failure, "failure"),
        (signals.task_retry, "retry"),
    ):
        signal.connect(_counter(state), weak=False)
