"""Seed the Free plan and two paid plans; staff change prices and limits in the admin."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import migrations

PLANS: list[dict[str, Any]] = [
    {"slug": "free", "name": "Free", "sort_order": 0, "description": "Try LEO: limited volume, no card.",
     "monthly_base_cents": 0, "price_per_million_saved": Decimal("0"),
     "monthly_token_quota": 1_000_000, "monthly_spend_quota_usd": Decimal("5"),
     "requests_per_minute": 60, "tokens_per_minute": 100_000},
    {"slug": "pro", "name": "Pro", "sort_order": 10, "description": "Production traffic, pay for what LEO saves.",
     "monthly_base_cents": 4900, "price_per_million_saved": Decimal("2.0000"),
     "monthly_token_quota": None, "monthly_spend_quota_usd": None,
     "requests_per_minute": 3000, "tokens_per_minute": None},
    {"slug": "scale", "name": "Scale", "sort_order": 20, "description": "High volume, lower price per token saved.",
     "monthly_base_cents": 19900, "price_per_million_saved": Decimal("1.5000"),
     "monthly_token_quota": None, "monthly_spend_quota_usd": None,
     "requests_per_minute": None, "tokens_per_minute": None},
]


def seed(apps: Any, schema_editor: Any) -> None:
    Plan = apps.get_model("billing", "Plan")
    for fields in PLANS:
        Plan.objects.get_or_create(slug=fields["slug"], defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
