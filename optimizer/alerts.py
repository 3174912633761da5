"""Owners' alerts: evaluate each threshold against the ledger, mail the owners once per crossing.

Figures, in percent:
- budget_share: the tenant's spend this UTC month over its monthly spend quota (no quota: none);
- error_rate: requests answered with a status of 400 or more over all requests in the window;
- wrong_feedback_rate: "wrong" verdicts over all verdicts received in the window.
A rate over too few events says little (one failed request of two is 50 %), so it needs at least
MIN_REQUESTS requests or MIN_FEEDBACK verdicts in the window; below that the figure is unknown and
the alert keeps its state.

A crossing is the move from inactive to active. It is claimed with a conditional UPDATE
(`active=False` -> `True`), so two overlapping evaluations (a slow beat run, a second beat) send
one email, not two. Falling back under the threshold clears the alert, and the next crossing mails
again. Celery beat runs `evaluate_all` every minute (optimizer/tasks.py, leo_optima/celery.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Count, Q
from django.utils import timezone

from tenants.models import Membership, Tenant

from .models import Alert, Feedback, RequestLog

log = logging.getLogger(__name__)

MIN_REQUESTS = 20
MIN_FEEDBACK = 5


@dataclass(frozen=True)
class Outcome:
    alert: Alert
    value: float | None
    crossed: bool  # became active in this evaluation (and mailed)
    cleared: bool


def figure(alert: Alert, now: datetime) -> float | None:
    """The alert's figure now, in percent, or None when it cannot be told."""
    tenant: Tenant = alert.tenant
    if alert.kind == Alert.Kind.BUDGET_SHARE:
        budget = tenant.monthly_spend_quota_usd
        if not budget:
            return None
        # The same spend as the quota counts (RequestLogQuerySet.usage).
        spent = RequestLog.objects.for_tenant(tenant.pk).this_month(now).usage().cost_usd
        return float(spent * 100 / Decimal(budget))
    since = now - timedelta(minutes=alert.window_minutes)
    if alert.kind == Alert.Kind.ERROR_RATE:
        totals = RequestLog.objects.for_tenant(tenant.pk).between(since, None).totals("requests", "errors")
        if totals.requests < MIN_REQUESTS:
            return None
        return totals.errors * 100 / totals.requests
    agg = Feedback.objects.filter(tenant=tenant, created_at__gte=since).aggregate(
        total=Count("id"), wrong=Count("id", filter=Q(correct=False)))
    if agg["total"] < MIN_FEEDBACK:
        return None
    return agg["wrong"] * 100 / agg["total"]


def evaluate(alert: Alert, now: datetime | None = None) -> Outcome:
    """Evaluate one alert, record its state, and mail the owners if it crossed just now."""
    now = now or timezone.now()
    value = figure(alert, now)
    Alert.objects.filter(pk=alert.pk).update(value_percent=value, last_evaluated_at=now)
    alert.value_percent, alert.last_evaluated_at = value, now
    if value is None:
        return Outcome(alert, None, False, False)
    if value >= float(alert.threshold_percent):
        claimed = Alert.objects.filter(pk=alert.pk, active=False).update(active=True, last_crossed_at=now)
        if claimed:
            alert.active, alert.last_crossed_at = True, now
            _mail_owners(alert, value)
        return Outcome(alert, value, bool(claimed), False)
    cleared = Alert.objects.filter(pk=alert.pk, active=True).update(active=False)
    alert.active = False
    return Outcome(alert, value, False, bool(cleared))


def evaluate_all(now: datetime | None = None) -> list[Outcome]:
    now = now or timezone.now()
    alerts = Alert.objects.filter(enabled=True, tenant__is_active=True).select_related("tenant")
    return [evaluate(alert, now) for alert in alerts]


def describe(alert: Alert, value: float | None = None) -> str:
    """One line for the banner and the email, e.g. "Error rate is 12.5% (threshold 10%, last 60 minutes)"."""
    shown = alert.value_percent if value is None else value
    where = "this month" if alert.kind == Alert.Kind.BUDGET_SHARE else f"last {alert.window_minutes} minutes"
    now_part = f" is {shown:.1f}%" if shown is not None else ""
    return f"{alert.get_kind_display()}{now_part} (threshold {alert.threshold_percent.normalize():f}%, {where})"


def _mail_owners(alert: Alert, value: float) -> None:
    owners = list(Membership.objects.owners().filter(tenant=alert.tenant, user__is_active=True)
                  .values_list("user__email", flat=True))
    if not owners:
        return
    base = str(settings.LEO_BASE_URL).rstrip("/")
    send_mail(f"[LEO Optima] Alert on {alert.tenant.name}: {alert.get_kind_display().lower()}",
              f"{describe(alert, value)}.\n\nThis alert stays active until the figure is back under the "
              f"threshold; you get one email per crossing.\nThresholds: {base}/portal/settings/alerts/\n",
              None, owners, fail_silently=False)
    log.info("alert crossed", extra={"tenant": alert.tenant_id, "kind": alert.kind, "recipients": len(owners)})


def active_alerts(tenant: Tenant) -> list[Alert]:
    return list(Alert.objects.filter(tenant=tenant, enabled=True, active=True))
