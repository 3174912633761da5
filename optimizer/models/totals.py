"""The ledger's rules: how a request was served, which rows count as savings, and every total of
the ledger, defined once on `RequestLogQuerySet` (the manager of `RequestLog`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.apps import apps
from django.db import models
from django.db.models import Aggregate, Count, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet, Sum
from django.db.models.expressions import Combinable
from django.utils import timezone


class Technique(models.TextChoices):
    """How a request was served. Prompt optimization and routing are recorded beside it."""

    MISS = "miss", "Upstream (miss)"
    EXACT = "exact", "Exact cache"
    SEMANTIC = "semantic", "Semantic cache"
    DEDUP = "dedup", "In-flight deduplication"
    DECOMPOSED = "decomposed", "Query decomposition"
    BYPASS = "bypass", "Cache bypassed"
    ERROR = "error", "Error"



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


# Typed over Any: RequestLog is defined in .ledger, which imports this module.
class RequestLogQuerySet(models.QuerySet[Any]):
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
        # Feedback is defined beside RequestLog, whose module imports this one.
        feedback = apps.get_model("optimizer", "Feedback")
        wrong = feedback.objects.filter(request_log=OuterRef("pk"), correct=False)
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

    def totals_by(self, *fields: str, names: Iterable[str] = TOTALS) -> QuerySet[Any, dict[str, Any]]:
        """`values(*fields)` rows, each with the totals of its group by name (read them with
        `LedgerTotals.from_row`); unordered, so the caller may order and slice."""
        names = tuple(names)
        return self._for_totals(names).values(*fields).annotate(**_aggregates(names)).order_by()

    def usage(self) -> Usage:
        """Tokens and cost of these rows; `for_tenant(t).this_month().usage()` is what the
        tenant's monthly quotas have used, `for_key(k).this_month().usage()` the key's budget."""
        totals = self.totals("prompt_tokens", "completion_tokens", "cost_usd")
        return Usage(totals.tokens, totals.cost_usd)
