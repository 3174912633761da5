"""#16.3: one definition of the ledger's totals (RequestLogQuerySet.totals / totals_by), read by
/v1/analytics, the overview (rollups and live), the rollups, billing's days and the quotas.

Each reader is checked against `.totals()` on a ledger that holds a semantic hit marked wrong (it
saved nothing), and then the saving rule is changed in its one place: every reader must follow.
A reader with a rule of its own would disagree in one test or the other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import ExpressionWrapper, Value
from django.db.models import BooleanField as BooleanFieldType
from django.utils import timezone

from billing import stripe_sync
from optimizer import analytics, rollups
from optimizer.models import Feedback, LedgerTotals, RequestLog, RequestLogQuerySet, month_start
from optimizer.portal import figures
from tenants.models import ApiKey
from tests.portal_helpers import Actors, build_actors, make_ledger_row

pytestmark = pytest.mark.django_db


def _seed(actors: Actors, at: datetime) -> None:
    """A miss, a routed and prompt-optimized miss, an error, an exact hit, a semantic hit, and a
    semantic hit marked wrong, all in the hour of `at`."""
    make_ledger_row(actors.tenant, actors.key, created_at=at, technique="miss", cost_usd=Decimal("0.002"),
                    counterfactual_usd=Decimal("0.002"), prompt_tokens=100, completion_tokens=50)
    make_ledger_row(actors.tenant, actors.key, created_at=at, technique="miss", model="gpt-4o",
                    served_model="gpt-4o-mini", cost_usd=Decimal("0.001"), counterfactual_usd=Decimal("0.004"),
                    saved_usd=Decimal("0.003"), routing_saved_usd=Decimal("0.0029"), tokens_saved=12,
                    prompt_opt_tokens_saved=12, prompt_opt_saved_usd=Decimal("0.0001"))
    make_ledger_row(actors.tenant, actors.key, created_at=at, technique="error", status_code=502,
                    cost_usd=Decimal(0), counterfactual_usd=Decimal(0))
    make_ledger_row(actors.tenant, actors.key, created_at=at, technique="exact", cost_usd=Decimal(0),
                    counterfactual_usd=Decimal("0.0005"), saved_usd=Decimal("0.0005"), tokens_saved=40,
                    upstream_calls=0, prompt_tokens=0, completion_tokens=0)
    for saved, tokens, correct in (("0.003", 150, True), ("0.002", 100, False)):
        row = make_ledger_row(actors.tenant, actors.key, created_at=at, technique="semantic", cost_usd=Decimal(0),
                              counterfactual_usd=Decimal(saved), saved_usd=Decimal(saved), tokens_saved=tokens,
                              upstream_calls=0, prompt_tokens=0, completion_tokens=0, similarity=0.93)
        Feedback.objects.create(tenant=actors.tenant, request_log=row, correct=correct)


def _closed_hour(now: datetime) -> datetime:
    return rollups.period_start("hour", now) - timedelta(hours=2)


def _readers(actors: Actors, now: datetime) -> dict[str, LedgerTotals]:
    """What each reader says about the tenant's ledger (all of it lies in one closed hour)."""
    tid = actors.tenant.pk
    hour = _closed_hour(now)
    day = rollups.period_start("day", hour)
    live = figures.overview(tid, hour, now, now)  # before any rollup: all read from the ledger
    for period, start in (("hour", hour), ("day", day)):
        rollups.rollup(tid, period, start)
    rolled = figures.overview(tid, hour, now, now)
    assert live.live_from == hour and rolled.live_from > hour
    summary = analytics.summary(tid, None, None)
    billed = stripe_sync._day_totals(tid, day.date(), day.date())
    return {
        "analytics": LedgerTotals(requests=summary["requests"], tokens_saved=summary["tokens_saved"],
                                  saved_usd=Decimal(str(summary["saved_usd"])), cost_usd=Decimal(str(summary["cost_usd"])),
                                  errors=summary["errors"], prompt_tokens=summary["prompt_tokens"],
                                  completion_tokens=summary["completion_tokens"]),
        "overview_rolled": rolled.totals,
        "overview_live": live.totals,
        "rollup_day": rollups.daily_totals(tid, day, day + timedelta(days=1))[day],
        "billing_day": LedgerTotals(tokens_saved=billed[day.date()]),
    }


def _assert_agree(actors: Actors, now: datetime, want: LedgerTotals) -> None:
    for reader, got in _readers(actors, now).items():
        assert got.tokens_saved == want.tokens_saved, reader
        if reader == "billing_day":
            continue
        assert (got.requests, got.errors) == (want.requests, want.errors), reader
        assert got.saved_usd == pytest.approx(want.saved_usd, abs=Decimal("1e-8")), reader
        assert got.cost_usd == pytest.approx(want.cost_usd, abs=Decimal("1e-8")), reader


def test_every_reader_agrees_with_totals_on_a_wrong_semantic_hit() -> None:
    actors = build_actors()
    actors.log.delete()
    now = timezone.now()
    _seed(actors, _closed_hour(now) + timedelta(minutes=5))
    want = RequestLog.objects.for_tenant(actors.tenant.pk).totals()
    # The semantic hit marked wrong counts as a request, not as a saving.
    assert want.requests == 6 and want.errors == 1 and want.hits == 3 and want.routed_requests == 1
    assert want.tokens_saved == 12 + 40 + 150
    assert want.saved_usd == Decimal("0.0065")
    _assert_agree(actors, now, want)
    summary = analytics.summary(actors.tenant.pk, None, None)
    assert summary["by_technique"]["semantic"] == {"requests": 2, "tokens_saved": 150, "saved_usd": 0.003}
    assert summary["by_technique"]["routing"]["saved_usd"] == pytest.approx(0.0029)
    overview = {row["technique"]: row for row in figures.overview(
        actors.tenant.pk, _closed_hour(now), now, now).by_technique}
    for technique, figs in summary["by_technique"].items():
        assert overview[technique]["tokens_saved"] == figs["tokens_saved"], technique
        assert float(overview[technique]["saved_usd"]) == pytest.approx(figs["saved_usd"]), technique


def test_the_saving_rule_changed_in_its_one_place_changes_every_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were any reader to sum savings by a rule of its own, it would keep counting them here."""
    actors = build_actors()
    actors.log.delete()
    now = timezone.now()
    _seed(actors, _closed_hour(now) + timedelta(minutes=5))

    def nothing_counts(self: RequestLogQuerySet) -> RequestLogQuerySet:
        return self.annotate(saving_counts=ExpressionWrapper(Value(False), output_field=BooleanFieldType()))

    monkeypatch.setattr(RequestLogQuerySet, "with_saving_rule", nothing_counts)
    want = RequestLog.objects.for_tenant(actors.tenant.pk).totals()
    assert want.requests == 6 and want.tokens_saved == 0 and want.saved_usd == 0
    _assert_agree(actors, now, want)


def test_quota_usage_is_the_months_tokens_and_cost() -> None:
    """What `_month_usage` / `_key_month_spend` (optimizer/pipeline/admission.py) count: this UTC month's
    tokens and cost of the tenant, or of one key; other months, tenants and keys left out."""
    actors = build_actors()
    actors.log.delete()
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    other_key, _ = ApiKey.issue(actors.tenant, name="other")
    make_ledger_row(actors.tenant, actors.key, created_at=month_start(now), prompt_tokens=100, completion_tokens=20,
                    cost_usd=Decimal("0.25"))
    make_ledger_row(actors.tenant, other_key, created_at=now, prompt_tokens=7, completion_tokens=3,
                    cost_usd=Decimal("0.5"))
    make_ledger_row(actors.tenant, actors.key, created_at=month_start(now) - timedelta(microseconds=1),
                    prompt_tokens=1000, cost_usd=Decimal("9"))  # last month
    make_ledger_row(actors.outsider_tenant, None, created_at=now, prompt_tokens=1000, cost_usd=Decimal("9"))
    make_ledger_row(actors.tenant, actors.key, created_at=now, cost_usd=None, prompt_tokens=5, completion_tokens=5)
    tenant = RequestLog.objects.for_tenant(actors.tenant.pk).this_month(now).usage()
    assert tenant == (140, Decimal("0.75"))  # the unpriced row's tokens count, its unknown cost does not
    key = RequestLog.objects.for_key(actors.key.pk).this_month(now).usage()
    assert key.tokens == 130 and key.cost_usd == Decimal("0.25")
    totals = RequestLog.objects.for_tenant(actors.tenant.pk).this_month(now).totals()
    assert (totals.tokens, totals.cost_usd, totals.unpriced_requests) == (140, Decimal("0.75"), 1)
    # On an empty month: zeros, not None.
    assert RequestLog.objects.for_key(other_key.pk).this_month(now + timedelta(days=30)).usage() == (0, Decimal(0))
