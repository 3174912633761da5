"""Pre-aggregated ledger figures (usage and latency per hour or day) and owners' alerts on them."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from tenants.models import Tenant

from .totals import Technique


class UsageRollup(models.Model):
    """Ledger totals per tenant, period (hour or day) and technique, recomputed idempotently.

    It lives here, beside the ledger, because both the portal's overview (this app) and billing
    (which imports this app) read it; billing keeps its Stripe sync state in its own models.
    Rerunning a period replaces its rows, so late ledger rows are picked up.
    """

    class Period(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_rollups")
    period = models.CharField(max_length=4, choices=Period.choices)
    start = models.DateTimeField()
    technique = models.CharField(max_length=12, choices=Technique.choices)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    upstream_calls = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    tokens_saved = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=Decimal("0"))
    counterfactual_usd = models.DecimalField(max_digits=16, decimal_places=8, default=Decimal("0"))
    saved_usd = models.DecimalField(max_digits=16, decimal_places=8, default=Decimal("0"))
    prompt_opt_tokens_saved = models.BigIntegerField(default=0)
    prompt_opt_saved_usd = models.DecimalField(max_digits=16, decimal_places=8, default=Decimal("0"))
    routing_saved_usd = models.DecimalField(max_digits=16, decimal_places=8, default=Decimal("0"))
    routed_requests = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "period", "start", "technique"],
                                               name="one_rollup_per_period_and_technique")]
        indexes = [models.Index(fields=["tenant", "period", "start"])]

    def __str__(self) -> str:
        return f"{self.tenant} {self.period} {self.start:%Y-%m-%d %H:00} {self.technique}"


class Alert(models.Model):
    """An owner's threshold on one of the tenant's figures, evaluated every minute (optimizer/alerts.py).

    `active` says whether the figure is at or above the threshold now; the move from inactive to
    active is a crossing, and each crossing sends one email to the tenant's owners. The figure
    falling back under the threshold clears it, so the next crossing mails again.
    """

    class Kind(models.TextChoices):
        BUDGET_SHARE = "budget_share", "Share of the monthly budget spent"
        ERROR_RATE = "error_rate", "Error rate"
        WRONG_FEEDBACK_RATE = "wrong_feedback_rate", "Wrong-answer feedback rate"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    threshold_percent = models.DecimalField(max_digits=6, decimal_places=2)
    # Rates are measured over the last `window_minutes`; the budget share over the UTC month so far.
    window_minutes = models.PositiveIntegerField(default=60)
    active = models.BooleanField(default=False)
    value_percent = models.FloatField(null=True, blank=True, help_text="The figure at the last evaluation.")
    last_crossed_at = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="one_alert_per_tenant_and_kind")]
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.tenant} {self.kind} >= {self.threshold_percent}%"


class LatencyRollup(models.Model):
    """Request latency of a tenant's hour or day as a log-bucket histogram (optimizer/latency.py),
    recomputed with that period's UsageRollup rows, so percentiles can be read for any set of
    periods without the ledger. One row per period, not per technique: the overview reads
    hundreds of these per render, and it shows latency over all techniques."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=4, choices=UsageRollup.Period.choices)
    start = models.DateTimeField()
    histogram = models.JSONField(default=dict, help_text="bucket -> requests")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "period", "start"],
                                               name="one_latency_rollup_per_period")]

    def __str__(self) -> str:
        return f"latency of {self.tenant} {self.period} {self.start:%Y-%m-%d %H:00}"
