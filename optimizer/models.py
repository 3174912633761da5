"""The ledger, the cache's source of truth, model prices and per-tenant optimizer settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import models
from django.db.models import Aggregate, Count, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet, Sum
from django.db.models.expressions import Combinable
from django.utils import timezone

from leo_optima.core.db import refuse_nul
from tenants.models import ApiKey, Tenant

from .semantic.policy import DEFAULT_MARGIN, DEFAULT_THRESHOLD, DEFAULT_WRONG_RATE_BOUND


class Technique(models.TextChoices):
    """How a request was served. Prompt optimization and routing are recorded beside it."""

    MISS = "miss", "Upstream (miss)"
    EXACT = "exact", "Exact cache"
    SEMANTIC = "semantic", "Semantic cache"
    DEDUP = "dedup", "In-flight deduplication"
    DECOMPOSED = "decomposed", "Query decomposition"
    BYPASS = "bypass", "Cache bypassed"
    ERROR = "error", "Error"


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


class CacheEntry(models.Model):
    """A stored answer. The source of truth for the semantic index; the exact cache mirrors it in Redis."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="cache_entries")
    scope_hash = models.CharField(max_length=64)
    key_hash = models.CharField(max_length=64)
    model = models.CharField(max_length=120)
    namespace = models.CharField(max_length=100, blank=True, default="")
    request_text = models.TextField()
    embedding = models.BinaryField(null=True, blank=True)
    response = models.JSONField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    is_part = models.BooleanField(default=False, help_text="One part of a decomposed question.")
    hits = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_hit_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "key_hash"]),
            models.Index(fields=["tenant", "last_hit_at"]),
            models.Index(fields=["expires_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.request_text[:60]}"


# Requests served from a cache of any kind: what the hit rate counts.
CACHE_TECHNIQUES = (Technique.EXACT, Technique.SEMANTIC, Technique.DEDUP, Technique.DECOMPOSED)

# The ledger columns that say what a request saved. A semantic hit marked wrong saved nothing: its
# answer did not fit the question, so the caller had to ask again (docs/savings.md).
SAVING_FIELDS = ("saved_usd", "tokens_saved", "prompt_opt_tokens_saved", "prompt_opt_saved_usd", "routing_saved_usd")
# Every ledger total, by name: counts, then sums. LedgerTotals has one attribute per name, the
# rollups store most of them (optimizer/rollups.py), /v1/analytics and the overview show them.
COUNT_TOTALS = ("requests", "errors", "hits", "routed_requests", "unpriced_requests", "prompt_optimized_requests")
INT_TOTALS = COUNT_TOTALS + ("upstream_calls", "prompt_tokens", "completion_tokens", "tokens_saved",
                             "prompt_opt_tokens_saved")
USD_TOTALS = ("cost_usd", "counterfactual_usd", "saved_usd", "prompt_opt_saved_usd", "routing_saved_usd")
TOTALS = INT_TOTALS + USD_TOTALS


def month_start(now: datetime) -> datetime:
    """The start of the UTC month holding `now`: monthly quotas, budgets and their alerts reset then."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass
class LedgerTotals:
    """Totals over a set of ledger rows (or of rollup rows, which hold the same sums).

    Read from the ledger with `RequestLog.objects.....totals()` / `totals_by()`; added up with `+`
    (the overview adds rollup rows and live rows). Totals that a source does not hold read 0.
    """

    requests: int = 0
    errors: int = 0
    hits: int = 0
    routed_requests: int = 0
    unpriced_requests: int = 0  # cost unknown: a tenant's provider served a model that has no price
    prompt_optimized_requests: int = 0
    upstream_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_saved: int = 0
    prompt_opt_tokens_saved: int = 0
    cost_usd: Decimal = Decimal(0)
    counterfactual_usd: Decimal = Decimal(0)
    saved_usd: Decimal = Decimal(0)
    prompt_opt_saved_usd: Decimal = Decimal(0)
    routing_saved_usd: Decimal = Decimal(0)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LedgerTotals:
        """From an aggregate's (or a `values()` row's) totals, by name; a NULL sum (no rows) is 0."""
        return cls(**{name: int(row[name] or 0) for name in INT_TOTALS if name in row},
                   **{name: Decimal(row[name] or 0) for name in USD_TOTALS if name in row})

    def __add__(self, other: LedgerTotals) -> LedgerTotals:
        return LedgerTotals(**{name: getattr(self, name) + getattr(other, name) for name in TOTALS})

    @property
    def tokens(self) -> int:
        """Tokens billed upstream: what the monthly token quota counts."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def hit_rate(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    @property
    def saved_percent(self) -> float:
        return float(self.saved_usd / self.counterfactual_usd * 100) if self.counterfactual_usd else 0.0

    # A cache hit's saving includes what prompt optimization and routing saved on the same rows;
    # a cache technique's own share is net of those, so that the by-technique split adds up.
    @property
    def own_tokens_saved(self) -> int:
        return self.tokens_saved - self.prompt_opt_tokens_saved

    @property
    def own_saved_usd(self) -> Decimal:
        return self.saved_usd - self.prompt_opt_saved_usd - self.routing_saved_usd


class Usage(NamedTuple):
    """What the monthly quotas and key budgets count: tokens billed and their cost."""

    tokens: int
    cost_usd: Decimal


# Served by another model than the one asked for (model routing).
ROUTED = ~Q(served_model=F("model")) & ~Q(served_model="")


def _aggregates(names: Iterable[str]) -> dict[str, Aggregate]:
    """The one definition of each ledger total. Savings count by the saving rule (the queryset
    needs `with_saving_rule()`). Counts come first: their filters name columns that the sums
    after them take as aliases."""
    counted = Q(saving_counts=True)
    every: dict[str, Aggregate] = {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status_code__gte=400)),
        "hits": Count("id", filter=Q(technique__in=CACHE_TECHNIQUES)),
        "routed_requests": Count("id", filter=ROUTED),
        "unpriced_requests": Count("id", filter=Q(cost_usd__isnull=True)),
        "prompt_optimized_requests": Count("id", filter=Q(prompt_opt_tokens_saved__gt=0)),
        **{name: Sum(name) for name in ("upstream_calls", "prompt_tokens", "completion_tokens", "cost_usd",
                                        "counterfactual_usd")},
        **{name: Sum(name, filter=counted) for name in SAVING_FIELDS},
    }
    wanted = set(names)
    return {name: agg for name, agg in every.items() if name in wanted}


class RequestLogQuerySet(models.QuerySet["RequestLog"]):
    """The ledger's rules: which rows count as savings, and every total, defined once here and
    used by /v1/analytics, the overview, the rollups (and through them billing) and the quotas."""

    def for_tenant(self, tenant_id: int) -> RequestLogQuerySet:
        return self.filter(tenant_id=tenant_id)

    def for_key(self, api_key_id: int) -> RequestLogQuerySet:
        return self.filter(api_key_id=api_key_id)

    def between(self, start: datetime | None, end: datetime | None) -> RequestLogQuerySet:
        """Rows created in [start, end); either bound may be None (open)."""
        qs = self
        if start is not None:
            qs = qs.filter(created_at__gte=start)
        if end is not None:
            qs = qs.filter(created_at__lt=end)
        return qs

    def this_month(self, now: datetime | None = None) -> RequestLogQuerySet:
        """Rows of the UTC month so far (the period of monthly quotas and budgets)."""
        return self.filter(created_at__gte=month_start(now or timezone.now()))

    def marked_wrong(self) -> RequestLogQuerySet:
        """Semantic hits whose answer someone marked wrong: they count as requests, not as savings."""
        return self.filter(technique=Technique.SEMANTIC, feedback__correct=False)

    def with_saving_rule(self) -> RequestLogQuerySet:
        """Annotate `saving_counts`: False for a semantic hit marked wrong, True otherwise."""
        if "saving_counts" in self.query.annotations:
            return self
        wrong = Feedback.objects.filter(request_log=OuterRef("pk"), correct=False)
        return self.annotate(saving_counts=ExpressionWrapper(~Q(technique=Technique.SEMANTIC) | ~Exists(wrong),
                                                             output_field=models.BooleanField()))

    @staticmethod
    def counted_sum(expression: str | Combinable) -> Sum:
        """Sum one of SAVING_FIELDS (or an expression of them) over rows whose saving counts;
        the queryset needs `with_saving_rule()`."""
        return Sum(expression, filter=Q(saving_counts=True))

    def _for_totals(self, names: Iterable[str]) -> RequestLogQuerySet:
        # The saving rule costs a subquery per row: only totals of savings need it.
        return self.with_saving_rule() if set(names) & set(SAVING_FIELDS) else self

    def totals(self, *names: str) -> LedgerTotals:
        """The totals of these rows, in one query: all of TOTALS, or only `names` (the rest read 0)."""
        names = names or TOTALS
        return LedgerTotals.from_row(self._for_totals(names).aggregate(**_aggregates(names)))

    def totals_by(self, *fields: str, names: Iterable[str] = TOTALS) -> QuerySet[RequestLog, dict[str, Any]]:
        """`values(*fields)` rows, each with the totals of its group by name (read them with
        `LedgerTotals.from_row`); unordered, so the caller may order and slice."""
        names = tuple(names)
        return self._for_totals(names).values(*fields).annotate(**_aggregates(names)).order_by()

    def usage(self) -> Usage:
        """Tokens and cost of these rows; `for_tenant(t).this_month().usage()` is what the
        tenant's monthly quotas have used, `for_key(k).this_month().usage()` the key's budget."""
        totals = self.totals("prompt_tokens", "completion_tokens", "cost_usd")
        return Usage(totals.tokens, totals.cost_usd)


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
