"""`python manage.py cache stats|purge|delete|evict TENANT [--model M] [--older-than SECONDS] [--id N]`.

The same operations as `GET/DELETE /v1/cache` and `DELETE /v1/cache/<id>` (optimizer.cache_admin),
for operators. TENANT is an id or a slug. With Redis configured the stored answers are removed
from the shared exact cache at once; without it (the embedded default), a running server keeps
its own in-memory copies until their TTL, so purge through the API there (see docs/caching.md).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from optimizer import cache_admin
from optimizer.pipeline.config import get_settings_row
from tenants.management.commands._lookup import tenant_by_ref


class Command(BaseCommand):
    help = "Show a tenant's cache stats, purge it (all, by model, by age), delete one entry, or evict."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["stats", "purge", "delete", "evict"])
        parser.add_argument("tenant", help="tenant id or slug")
        parser.add_argument("--model", help="purge: only this model's entries")
        parser.add_argument("--older-than", type=int, metavar="SECONDS",
                            help="purge: only entries created more than SECONDS ago")
        parser.add_argument("--id", type=int, dest="entry_id", help="delete: the entry's id")

    def handle(self, *args: Any, action: str, tenant: str, model: str | None, older_than: int | None,
               entry_id: int | None, **options: Any) -> None:
        t = tenant_by_ref(tenant)
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must be a number of seconds, 0 or more")
        if action == "stats":
            self.stdout.write(json.dumps(cache_admin.stats(t.pk), indent=2, default=str))
            return
        if action == "delete":
            if entry_id is None:
                raise CommandError("delete needs --id N")
            if not asyncio.run(cache_admin.delete_entry(t.pk, entry_id)):
                raise CommandError(f"no cache entry {entry_id} for tenant {t.slug}")
            self.stdout.write(f"deleted entry {entry_id} of tenant {t.slug}")
        elif action == "purge":
            deleted = asyncio.run(cache_admin.purge(t.pk, model=model, older_than_seconds=older_than))
            self.stdout.write(f"deleted {deleted} entries of tenant {t.slug}")
        else:
            deleted = asyncio.run(cache_admin.evict(t.pk, get_settings_row(t.pk).cache_max_entries))
            self.stdout.write(f"evicted {deleted} entries of tenant {t.slug}")
        if not settings.REDIS_URL:
            self.stderr.write("note: no REDIS_URL, so a running server keeps its in-memory copies of exact-cache "
                              "answers until their TTL; DELETE /v1/cache clears them at once.")
