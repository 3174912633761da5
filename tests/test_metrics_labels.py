"""Every priced model is its own `model` label on the metrics; an unpriced name stays "other".

The price table is the bound: a client cannot create series by inventing model names, and an
operator who adds a `ModelPrice` row sees that model in Grafana (it used to show as "other").
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from optimizer import metric_labels, metrics, pricing
from optimizer.models import ModelPrice, Technique


@pytest.mark.django_db(transaction=True)
def test_loading_the_price_table_registers_its_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metric_labels, "_known_models", set(metric_labels._SEED_MODELS))
    ModelPrice.objects.create(model="acme-llm-7b", input_per_million=Decimal("0.5"))
    ModelPrice.objects.create(model="retired-llm", input_per_million=Decimal("1"), active=False)
    assert metrics.model_label("acme-llm-7b") == "other"

    pricing.forget()
    asyncio.run(pricing.prices())

    assert metrics.model_label("acme-llm-7b") == "acme-llm-7b"
    assert metrics.model_label("retired-llm") == "other"  # inactive: not callable, not a label
    assert metrics.model_label("made-up-by-a-client") == "other"
    pricing.forget()


def test_every_ledger_technique_is_its_own_label() -> None:
    """A deduplicated request used to be counted as "other" on `leo_requests_total`."""
    assert metric_labels.TECHNIQUES == set(Technique.values)
    for technique in Technique.values:
        assert metrics.technique_label(technique) == technique
