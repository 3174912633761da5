"""A fixture for tests that drive live servers: let the servers' write-behind settle before the
test database is flushed.

Servers write ledger rows, cache entries and hit counts ~20 ms after answering. A flush
(TRUNCATE on PostgreSQL) racing one of those writes can deadlock, failing the test's teardown, so
tests importing this fixture (and every test using conftest's `make_tenant`) wait until the row
counts stop changing first (at most 5 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest


def _counts() -> tuple[int, int, int]:
    from django.db.models import Sum

    from optimizer.models import CacheEntry, RequestLog

    hits = CacheEntry.objects.aggregate(h=Sum("hits"))["h"] or 0
    return RequestLog.objects.count(), CacheEntry.objects.count(), int(hits)


def wait_settled(quiet: float = 0.25, timeout: float = 5.0) -> None:
    """Return once the counts have not changed for `quiet` seconds (or after `timeout`)."""
    deadline = time.monotonic() + timeout
    last = _counts()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = _counts()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            return


@pytest.fixture(autouse=True)
def writes_settled(transactional_db: None) -> Iterator[None]:
    # Depending on transactional_db makes this fixture's teardown run before the database flush.
    yield
    wait_settled()
