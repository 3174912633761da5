"""Bounded label values for the gateway's Prometheus metrics (``optimizer.metrics``).

A time series per API key or per request id would exhaust Prometheus within days, so every label
value goes through one of these functions, and each returns a value from a bounded set (the rules
are listed in ``optimizer.metrics``' docstring). Unknown values become ``"other"``. The sets of
tenants, providers and task names seen are per process and capped.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable

OTHER = "other"

#: The ledger's ``Technique`` values (``optimizer.models`` cannot be imported here: this module loads
#: before the app registry); tests/test_metrics_labels.py checks the two stay the same set.
TECHNIQUES: frozenset[str] = frozenset(
    {"exact", "semantic", "dedup", "decomposed", "miss", "bypass", "error"}
)

#: Status codes common enough to keep as themselves; anything else collapses to its class.
_KEPT_STATUSES: frozenset[int] = frozenset(
    {200, 201, 204, 400, 401, 402, 403, 404, 408, 409, 413, 415, 422, 429, 499, 500, 502, 503, 504}
)

#: Seed of the known-model set, so a fresh process already labels the common models correctly.
#: ``optimizer.pricing.prices()`` adds every active ``ModelPrice`` model via ``register_models``.
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

#: The ``kind`` values of quota rejections, upstream errors and cache lookups.
QUOTA_KINDS: frozenset[str] = frozenset(
    {"rpm", "tpm", "monthly_tokens", "monthly_spend", "concurrency"}
)
UPSTREAM_ERROR_KINDS: frozenset[str] = frozenset(
    {"timeout", "connect", "rate_limit", "http_4xx", "http_5xx", "protocol", "auth", "cancelled"}
)
CACHE_KINDS: frozenset[str] = frozenset({"exact", "semantic"})

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


def enum_label(value: object, allowed: frozenset[str]) -> str:
    """``value`` lower-cased when it is one of ``allowed`` (the ``*_KINDS`` sets), else ``"other"``."""
    name = str(value or "").strip().lower()
    return name if name in allowed else OTHER


def register_models(names: Iterable[str]) -> None:
    """Add model names (e.g. every row of the ``ModelPrice`` table) to the known-model set.

    Called by ``optimizer.pricing.prices()`` each time it loads the price table; names are
    lower-cased. Models that were never registered are labelled ``"other"`` so a client cannot
    create series by inventing names.
    """
    cleaned = {str(n).strip().lower() for n in names if n and len(str(n)) <= 100}
    with _lock:
        _known_models.update(cleaned)


def provider_label(provider: object) -> str:
    """The bounded ``provider`` label: a short slug, capped like tenants (at most 32 a process)."""
    return _capped(provider, _seen_providers, _MAX_PROVIDERS)


# Celery task names come from code, not clients, but are capped anyway in case of dynamic names.
_MAX_TASK_NAMES = 200
_TASK_NAME_RE = re.compile(r"[^A-Za-z0-9_.:-]+")
_seen_tasks: set[str] = set()


def task_label(name: object) -> str:
    """The bounded ``task`` label of a Celery task name."""
    text = _TASK_NAME_RE.sub("_", str(name or "unknown"))[:120]
    if text in _seen_tasks:
        return text
    with _lock:
        if text not in _seen_tasks and len(_seen_tasks) >= _MAX_TASK_NAMES:
            return OTHER
        _seen_tasks.add(text)
    return text

