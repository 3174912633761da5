"""The usage ledger: one row per request, its stored body (opt-in) and its feedback."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from tenants.models import ApiKey, Tenant

from .totals import RequestLogQuerySet, Technique


class RequestLog(models.Model):
    """The usage ledger: one row for every authenticated request, success or error, hits included.

    saved_usd = counterfactual_usd - cost_usd, where the counterfactual prices the original prompt
    and the served completion at the requested model's list price. prompt_opt_* and routing_* say
    how much of that saving prompt optimization and model routing contributed. cost_usd and
    saved_usd are NULL when the cost is unknown (a tenant's own provider served a model that has
    no ModelPrice): sums then cover the priced rows, and `unpriced_requests` counts the others.
    """

    request_id = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(db_index=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="request_logs")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    endpoint = models.CharField(max_length=40)
    model = models.CharField(max_length=120, blank=True)
    served_model = models.CharField(max_length=120, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    stream = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=60, blank=True)
    technique = models.CharField(max_length=12, choices=Technique.choices)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True, default=Decimal("0"))
    counterfactual_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    saved_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True, default=Decimal("0"))
    tokens_saved = models.IntegerField(default=0)
    prompt_opt_tokens_saved = models.IntegerField(default=0)
    prompt_opt_saved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    routing_saved_usd = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    upstream_calls = models.PositiveSmallIntegerField(default=0)
    similarity = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField(default=0)
    upstream_latency_ms = models.FloatField(default=0)
    # LEO's own time: until the reply started (streams) or was complete, minus the upstream's part.
    overhead_ms = models.FloatField(default=0)
    end_user = models.CharField(max_length=256, blank=True, help_text="The request's OpenAI `user` field.")
    tags = models.JSONField(default=dict, blank=True, help_text="X-LEO-Tags and the request's `metadata`.")
    cache_key = models.CharField(max_length=64, blank=True, help_text="key_hash of the entry that served a hit.")
    trail = models.JSONField(default=dict, blank=True)

    objects = RequestLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["tenant", "technique", "created_at"]),
            # The requests page sorts one tenant's rows by latency.
            models.Index(fields=["tenant", "latency_ms"], name="ledger_tenant_latency"),
        ]

    def __str__(self) -> str:
        return self.request_id


class RequestBody(models.Model):
    """A request's prompt and answer, secrets redacted; kept only for tenants that opted in
    (`OptimizerSettings.store_bodies`) and deleted at `expires_at` by a scheduled task.

    Linked by request id, which the ledger row and this row both know before either is written
    (both are written behind, in the same batch, by optimizer/pipeline/writer.py).
    """

    request_log = models.OneToOneField(RequestLog, on_delete=models.CASCADE, to_field="request_id",
                                       related_name="body")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    prompt = models.JSONField(help_text="messages (chat) or prompt (completions), redacted.")
    response = models.JSONField(null=True, blank=True, help_text="The answer as served, redacted.")
    redactions = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"body of {self.request_log_id}"


class Feedback(models.Model):
    """A client's or user's verdict on a served answer; drives the adaptive semantic strictness."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    request_log = models.ForeignKey(RequestLog, on_delete=models.CASCADE, related_name="feedback")
    correct = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request_log"], name="one_feedback_per_request")]
