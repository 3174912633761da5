"""#15.9: numbers print as numbers: the CSV export and the chart axes use fixed point."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from optimizer.portal import charts
from tests.portal_helpers import Actors, build_actors, make_ledger_row

pytestmark = pytest.mark.django_db
SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")


def test_csv_has_no_scientific_notation() -> None:
    actors: Actors = build_actors()
    make_ledger_row(actors.tenant, actors.key, technique="exact", cost_usd=Decimal(0),
                    counterfactual_usd=Decimal("0.000099"), saved_usd=Decimal("0.000099"), similarity=0.00001,
                    latency_ms=0.00002)
    client = Client()
    client.force_login(actors.owner)
    body = b"".join(client.get("/portal/requests/export.csv").streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    exact = next(r for r in rows if r["technique"] == "exact")
    assert exact["cost_usd"] == "0" and exact["saved_usd"] == "0.000099"
    assert exact["similarity"] == "0.00001" and exact["latency_ms"] == "0.00002"
    numbers = [v for r in rows for k, v in r.items() if k not in ("request_id", "created_at", "key_prefix")]
    assert not [v for v in numbers if SCIENTIFIC.search(v or "")]  # request ids are hex: "6e8" is no number
    for r in rows:
        for name in ("cost_usd", "counterfactual_usd", "saved_usd"):
            Decimal(r[name])  # parses as a plain number


@pytest.mark.parametrize("value, text", [(0, "$0"), (9.9e-05, "$0.0000990"), (0.0025, "$0.00250"),
                                         (0.5, "$0.500"), (12.3, "$12.30"), (1234.5, "$1,234.50")])
def test_dollar_axis_labels(value: float, text: str) -> None:
    assert charts.dollars(value) == text


def test_chart_axes_print_fixed_point() -> None:
    now = timezone.now()
    times = [now - timedelta(hours=2), now - timedelta(hours=1), now]
    svg = charts.spend_vs_saved(times, [Decimal("0.000099"), Decimal(0), Decimal("0.00005")],
                                [Decimal(0)] * 3, timedelta(hours=1))
    labels = re.findall(r'text-anchor="end">([^<]*)<', svg)
    assert labels == ["$0", "$0.0000495", "$0.0000990"]
    assert not any(SCIENTIFIC.search(label) for label in labels)
