"""A fixture for tests that drive live servers: let the servers' write-behind settle before the
test database is flushed.

Servers write ledger rows, cache entries and hit counts ~20 ms after answering. A flush
(TRUNCATE on PostgreSQL) racing one of those writes can deadlock, failing the test's teardown, so
tests importing this fixture wait until the row counts stop changing first (at most 3 s).
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


@pytest.fixture(autouse=True)
def writes_settled(transactional_db: None) -> Iterator[None]:
    # Depending on transactional_db makes this fixture's teardown run before the database flush.
    yield
    deadline = time.monotonic() + 3.0
    last = _counts()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _counts()
        if now == last:
            return
        last = now
