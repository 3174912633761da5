"""Benchmark: the portal overview's server time with 1M ledger rows for one tenant.

    python -m tests.bench.overview [--rows 1000000] [--days 30] [--renders 7]

Uses a fresh SQLite file in a temporary directory, or the database in DATABASE_URL when set (a
scratch database: the tables are created there, the benchmark tenant's rows are deleted at the
end). Steps, each timed and printed:

1. seed N RequestLog rows for one tenant, spread evenly over the last D days up to now, with a
   realistic technique mix (bulk: executemany on SQLite, COPY on PostgreSQL);
2. compute the hourly rollups with `optimizer.rollups.rollup_range` (what the scheduled job does);
3. render GET /portal/?period=... in-process through the whole Django stack (middleware, session,
   auth, view, template), `--renders` times per period, and print the median and the worst;
4. the same for the breakdown page (/portal/breakdown/), which groups the ledger itself.

The overview reads closed hours from the rollups and only the open hour from the ledger, so its
time depends on the number of hours in the period, not on the number of ledger rows. For contrast
the 30-day overview is also rendered once with no rollups (every row read live).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

COLUMNS = ["request_id", "created_at", "tenant_id", "api_key_id", "endpoint", "model", "served_model", "provider",
           "stream", "status_code", "error_code", "technique", "prompt_tokens", "completion_tokens", "cost_usd",
           "counterfactual_usd", "saved_usd", "tokens_saved", "prompt_opt_tokens_saved", "prompt_opt_saved_usd",
           "routing_saved_usd", "upstream_calls", "similarity", "latency_ms", "upstream_latency_ms", "overhead_ms",
           "end_user", "tags", "cache_key", "trail"]
TEAMS = ("search", "ads", "support", "growth")
# (technique, weight): roughly what a support-bot workload looks like after warm-up.
MIX = [("miss", 50), ("exact", 25), ("semantic", 15), ("dedup", 3), ("decomposed", 3), ("bypass", 2), ("error", 2)]
PRICE_IN, PRICE_OUT = Decimal("0.15") / 1_000_000, Decimal("0.60") / 1_000_000


class _NoMigrations(dict):  # type: ignore[type-arg]
    def __contains__(self, item: object) -> bool:
        return True

    def __getitem__(self, item: str) -> None:
        return None


def setup_django(workdir: Path) -> bool:
    configured = "DATABASE_URL" in os.environ
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'overview.sqlite3'}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "leo_optima.settings.test"
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    django.setup()
    logging.getLogger("leo.access").setLevel(logging.WARNING)
    logging.getLogger("django.request").setLevel(logging.ERROR)
    setup_test_environment()  # the test client's host, locmem mail
    # Tables straight from the models, as the test run does: replaying migrations takes minutes.
    settings.MIGRATION_MODULES = _NoMigrations()
    call_command("migrate", run_syncdb=True, interactive=False, verbosity=0)
    return configured


def rows(tenant_id: int, key_id: int, n: int, start: datetime, end: datetime, seed: int = 7) -> Any:
    rng = random.Random(seed)
    techniques = [t for t, w in MIX for _ in range(w)]
    span = (end - start).total_seconds()
    batch = uuid.uuid4().hex[:6]
    for i in range(n):
        at = start + timedelta(seconds=span * i / n)
        technique = techniques[rng.randrange(len(techniques))]
        p, c = rng.randint(20, 900), rng.randint(10, 400)
        counterfactual = p * PRICE_IN + c * PRICE_OUT
        upstream = technique in ("miss", "bypass", "error")
        cost = counterfactual if upstream and technique != "error" else Decimal(0)
        saved = counterfactual - cost if technique != "error" else Decimal(0)
        if technique == "error":
            counterfactual = Decimal(0)
        overhead = round(rng.uniform(0.5, 6.0), 3)
        upstream_ms = round(rng.lognormvariate(6.0, 0.5), 3) if upstream else 0.0
        tags = '{"team": "%s", "env": "prod"}' % TEAMS[i % len(TEAMS)]
        yield (f"b{batch}{i:09d}", at, tenant_id, key_id, "chat.completions", "gpt-4o-mini", "gpt-4o-mini", "default",
               False, 502 if technique == "error" else 200, "upstream_error" if technique == "error" else "",
               technique, p if upstream else 0, c if upstream else 0, cost, counterfactual, saved,
               0 if upstream else p + c, 0, Decimal(0), Decimal(0), 1 if upstream else 0,
               0.93 if technique == "semantic" else None, upstream_ms + overhead, upstream_ms, overhead,
               f"user-{i % 50}", tags, "" if upstream else f"{i % 5000:064x}", '{"stages": []}')


def seed(tenant_id: int, key_id: int, n: int, start: datetime, end: datetime) -> None:
    from django.db import connection, transaction

    from optimizer.models import RequestLog

    table = RequestLog._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows(tenant_id, key_id, n, start, end):
                    copy.write_row(row)
        else:
            sql = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
            chunk: list[tuple[Any, ...]] = []
            for row in rows(tenant_id, key_id, n, start, end):
                chunk.append(tuple(str(v) if isinstance(v, Decimal) else v for v in row))
                if len(chunk) == 50_000:
                    cursor.executemany(sql, chunk)
                    chunk = []
            if chunk:
                cursor.executemany(sql, chunk)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")


def render_times(client: Any, query: str, renders: int, path: str = "/portal/",
                 marker: bytes = b'id="figures"') -> list[float]:
    times = []
    for _ in range(renders):
        t0 = time.perf_counter()
        response = client.get(f"{path}?{query}")
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code
        assert marker in response.content
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--renders", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leo-bench-overview-") as tmp:
        configured = setup_django(Path(tmp))
        from django.db import connection
        from django.test import Client

        from optimizer.models import RequestLog, UsageRollup
        from optimizer.rollups import rollup_range
        from tenants.models import ApiKey, Membership, Role, Tenant, User

        tenant = Tenant.create(f"Bench {uuid.uuid4().hex[:6]}")
        user = User.objects.create_user(f"bench-{tenant.pk}-{uuid.uuid4().hex[:6]}@example.com", "x")
        Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
        key, _ = ApiKey.issue(tenant, name="bench")
        end = datetime.now(UTC)
        start = end - timedelta(days=args.days)
        print(f"database: {connection.vendor} ({'DATABASE_URL' if configured else 'temporary SQLite file'})")
        try:
            t0 = time.perf_counter()
            seed(tenant.pk, key.pk, args.rows, start, end)
            print(f"seeded {RequestLog.objects.filter(tenant=tenant).count():,} ledger rows over {args.days} days "
                  f"in {time.perf_counter() - t0:.1f} s")
            client = Client()
            client.force_login(user)
            live = render_times(client, "period=30d", 1)[0]
            print(f"overview 30d with NO rollups (every row read live): {live:.0f} ms")
            t0 = time.perf_counter()
            periods = rollup_range("hour", start, end + timedelta(hours=1), [tenant.pk])
            print(f"hourly rollups: {periods} hours, {UsageRollup.objects.filter(tenant=tenant).count():,} rows, "
                  f"in {time.perf_counter() - t0:.1f} s")
            render_times(client, "period=7d", 2)  # warm caches, templates, connections
            print(f"overview server time, median (worst) of {args.renders} renders:")
            for query in ("period=24h", "period=7d", "period=30d", "period=90d"):
                times = render_times(client, query, args.renders)
                print(f"  {query:<12} {statistics.median(times):7.1f} ms ({max(times):.1f} ms)")
            # The breakdown page reads the ledger itself (grouped in the database), not the rollups.
            print(f"breakdown page server time, median (worst) of {args.renders} renders:")
            for query in ("group_by=model&period=24h", "group_by=tag&tag=team&period=24h",
                          "group_by=user&period=7d", "group_by=model&period=30d"):
                times = render_times(client, query, args.renders, path="/portal/breakdown/", marker=b'id="breakdown"')
                print(f"  {query:<36} {statistics.median(times):7.1f} ms ({max(times):.1f} ms)")
        finally:
            if configured:  # leave a configured database as we found it
                RequestLog.objects.filter(tenant=tenant).delete()
                tenant.delete()
                user.delete()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
