"""Model prices and each tenant's optimizer settings."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from leo_optima.core.db import refuse_nul
from tenants.models import Tenant

from ..semantic.policy import DEFAULT_MARGIN, DEFAULT_THRESHOLD, DEFAULT_WRONG_RATE_BOUND


class ModelPrice(models.Model):
    """List price per million tokens, used for cost and for the counterfactual (what it would have cost)."""

    class Kind(models.TextChoices):
        CHAT = "chat", "Chat"
        EMBEDDING = "embedding", "Embedding"
        COMPLETION = "completion", "Completion"

    model = models.CharField(max_length=120, unique=True)
    provider = models.CharField(max_length=60, default="openai")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.CHAT)
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    active = models.BooleanField(default=True, help_text="Listed in /v1/models and callable.")

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model


class OptimizerSettings(models.Model):
    """A tenant's optimizer switches and thresholds (one row per tenant, created on first use)."""

    class PromptMode(models.TextChoices):
        OFF = "off", "Off"
        LOSSLESS = "lossless", "Lossless"
        AGGRESSIVE = "aggressive", "Aggressive"

    class NonDeterministic(models.TextChoices):
        # temperature > 0 or n > 1: the upstream would answer differently each time.
        CACHE = "cache", "Cache them like any other request"
        BYPASS = "bypass", "Never cache them"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="optimizer_settings")
    exact_cache = models.BooleanField(default=True)
    semantic_cache = models.BooleanField(default=True)
    dedup = models.BooleanField(default=True)
    decomposition = models.BooleanField(default=True)
    prompt_mode = models.CharField(max_length=12, choices=PromptMode.choices, default=PromptMode.LOSSLESS)
    routing = models.BooleanField(default=False)
    routing_rules = models.JSONField(
        default=list, blank=True, validators=[refuse_nul],
        help_text='[{"from_model": "gpt-4o", "to_model": "gpt-4o-mini", "max_prompt_tokens": 200}]')
    non_deterministic = models.CharField(max_length=10, choices=NonDeterministic.choices,
                                         default=NonDeterministic.CACHE)
    cache_ttl_seconds = models.PositiveIntegerField(default=7 * 24 * 3600)
    cache_max_entries = models.PositiveIntegerField(default=100_000)
    semantic_threshold = models.FloatField(default=DEFAULT_THRESHOLD)
    semantic_margin = models.FloatField(default=DEFAULT_MARGIN)
    max_wrong_rate = models.FloatField(default=DEFAULT_WRONG_RATE_BOUND)
    adaptive_state = models.JSONField(default=dict, blank=True, editable=False)
    # Opt-in (owners only, see docs/portal.md): keep prompts and answers, secrets redacted, for
    # `body_retention_days`; `optimizer.tasks.purge_request_bodies` deletes them after that.
    store_bodies = models.BooleanField(default=False, verbose_name="Store request and response bodies")
    body_retention_days = models.PositiveSmallIntegerField(default=7, verbose_name="Keep bodies for (days)")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "optimizer settings"

    def __str__(self) -> str:
        return f"settings of {self.tenant}"
