"""Seed ModelPrice with public list prices (optimizer/prices_seed.py)."""

from __future__ import annotations

from django.db import migrations

from optimizer import prices_seed

def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    prices_seed.seed(apps.get_model("optimizer", "ModelPrice"))

def unseed(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("optimizer", "ModelPrice").objects.filter(model__in=[p[0] for p in prices_seed.PRICES]).delete()

class Migration(migrations.Migration):
    dependencies = [("optimizer", "0002_initial")]
    operations = [migrations.RunPython(seed, unseed)]
