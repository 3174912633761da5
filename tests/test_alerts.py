"""Alerts (#15.5): owners set thresholds; one email per crossing to the owners; the overview shows
an active alert; back under the threshold clears it. Figures come from the ledger, written here by
a real server (error rate) or as ledger rows (budget, feedback)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import openai
import pytest
from django.test import Client

from leo_optima.celery import app as celery_app
from optimizer import alerts
from optimizer.models import Alert, Feedback, RequestLog
from optimizer.tasks import evaluate_alerts
from tenants.models import AuditEvent, Membership, Role
from tests.conftest import wait_for_rows
from tests.portal_helpers import Actors, build_actors, make_ledger_row, verified_user


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _banner(user: object) -> str:
    body = _client(user).get("/portal/").content.decode()
    return body.split('id="active-alerts"', 1)[1].split("</ul>", 1)[0] if 'id="active-alerts"' in body else ""


def test_error_rate_alert_mails_owners_once_per_crossing_and_clears(make_tenant, mailoutbox) -> None:
    kit = make_tenant("Alerting")
    admin = verified_user(f"admin-{uuid.uuid4().hex[:8]}@example.com")
    Membership.objects.create(user=admin, tenant=kit.tenant, role=Role.ADMIN)
    co_owner = verified_user(f"co-owner-{uuid.uuid4().hex[:8]}@example.com")
    Membership.objects.create(user=co_owner, tenant=kit.tenant, role=Role.OWNER)
    Alert.objects.create(tenant=kit.tenant, kind=Alert.Kind.ERROR_RATE, threshold_percent=Decimal("20"),
                         window_minutes=60)
    client = kit.client()

    def calls(ok: int, bad: int) -> None:
        for _ in range(ok):
            client.chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                           messages=[{"role": "user", "content": uuid.uuid4().hex}])
        for _ in range(bad):
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model="no-such-model", max_tokens=5,
                                               messages=[{"role": "user", "content": "x"}])

    calls(15, 5)  # 25 % errors over 20 requests
    wait_for_rows(RequestLog, 20, tenant=kit.tenant)
    assert evaluate_alerts.apply().get() == 1  # the beat task, run here
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == sorted([kit.owner.email, co_owner.email])  # owners only, not the admin
    assert "Error rate is 25.0%" in mail.body and "threshold 20%" in mail.body
    assert kit.key not in mail.body
    assert "Error rate is 25.0%" in _banner(kit.owner)

    evaluate_alerts.apply()  # still above: no second email
    assert len(mailoutbox) == 1

    calls(20, 0)  # 5 of 40: 12.5 %, back under
    wait_for_rows(RequestLog, 40, tenant=kit.tenant)
    evaluate_alerts.apply()
    assert not Alert.objects.get(tenant=kit.tenant).active
    assert _banner(kit.owner) == ""

    calls(0, 10)  # 15 of 50: 30 %, a second crossing
    wait_for_rows(RequestLog, 50, tenant=kit.tenant)
    evaluate_alerts.apply()
    assert len(mailoutbox) == 2


@pytest.fixture
def actors(db: None) -> Actors:
    return build_actors()


def test_budget_share_alert(actors: Actors, mailoutbox) -> None:
    actors.tenant.monthly_spend_quota_usd = Decimal("1.00")
    actors.tenant.save()
    alert = Alert.objects.create(tenant=actors.tenant, kind=Alert.Kind.BUDGET_SHARE, threshold_percent=Decimal("80"))
    make_ledger_row(actors.tenant, actors.key, cost_usd=Decimal("0.70"))
    assert not alerts.evaluate(alert).crossed and len(mailoutbox) == 0
    make_ledger_row(actors.tenant, actors.key, cost_usd=Decimal("0.15"))
    outcome = alerts.evaluate(alert)
    assert outcome.crossed and outcome.value is not None and round(outcome.value) == 85
    assert [m.to for m in mailoutbox] == [[actors.owner.email]]
    assert "Share of the monthly budget spent is 85.0%" in _banner(actors.member)  # every role sees it
    assert "Share of the monthly budget" not in _banner(actors.outsider)


def test_wrong_feedback_rate_needs_enough_verdicts(actors: Actors, mailoutbox) -> None:
    alert = Alert.objects.create(tenant=actors.tenant, kind=Alert.Kind.WRONG_FEEDBACK_RATE,
                                 threshold_percent=Decimal("30"), window_minutes=30)
    for correct in (False, False, True):
        Feedback.objects.create(tenant=actors.tenant, request_log=make_ledger_row(actors.tenant), correct=correct)
    assert alerts.evaluate(alert).value is None  # 3 verdicts say too little
    for correct in (True, True, True):
        Feedback.objects.create(tenant=actors.tenant, request_log=make_ledger_row(actors.tenant), correct=correct)
    outcome = alerts.evaluate(alert)
    assert outcome.crossed and round(outcome.value or 0) == 33
    assert len(mailoutbox) == 1


def test_two_overlapping_evaluations_send_one_email(actors: Actors, mailoutbox) -> None:
    """Two beat runs that both loaded the alert as inactive: the crossing is claimed once."""
    actors.tenant.monthly_spend_quota_usd = Decimal("1.00")
    actors.tenant.save()
    Alert.objects.create(tenant=actors.tenant, kind=Alert.Kind.BUDGET_SHARE, threshold_percent=Decimal("50"))
    make_ledger_row(actors.tenant, actors.key, cost_usd=Decimal("0.60"))
    first, second = Alert.objects.get(tenant=actors.tenant), Alert.objects.get(tenant=actors.tenant)
    assert alerts.evaluate(first).crossed
    assert not alerts.evaluate(second).crossed
    assert len(mailoutbox) == 1


def test_owner_sets_thresholds_on_the_settings_page(actors: Actors) -> None:
    owner = _client(actors.owner)
    page = owner.get("/portal/settings/alerts/")
    assert page.status_code == 200 and b"Wrong-answer feedback rate" in page.content
    assert b'href="/portal/settings/alerts/"' in owner.get("/portal/settings/").content  # the settings tab
    response = owner.post("/portal/settings/alerts/", {
        "error_rate-enabled": "on", "error_rate-threshold_percent": "5", "error_rate-window_minutes": "15",
        "wrong_feedback_rate-threshold_percent": "20", "wrong_feedback_rate-window_minutes": "60",
        "budget_share-threshold_percent": "80"})
    assert response.status_code == 302
    row = Alert.objects.get(tenant=actors.tenant)  # disabled kinds without a row create none
    assert (row.kind, row.enabled, row.threshold_percent, row.window_minutes) == ("error_rate", True, 5, 15)
    assert AuditEvent.objects.filter(tenant=actors.tenant, action="alerts.changed").count() == 1
    # Bad input: form errors, nothing saved.
    for bad in ({"error_rate-threshold_percent": "150"}, {"error_rate-threshold_percent": "abc"},
                {"error_rate-window_minutes": "1"}, {"budget_share-enabled": "on"}):
        data = {"error_rate-enabled": "on", "error_rate-threshold_percent": "7", "error_rate-window_minutes": "15",
                "wrong_feedback_rate-threshold_percent": "20", "wrong_feedback_rate-window_minutes": "60",
                "budget_share-threshold_percent": "80", **bad}
        response = owner.post("/portal/settings/alerts/", data)
        assert response.status_code == 400, bad
        assert b"errorlist" in response.content
    row.refresh_from_db()
    assert row.threshold_percent == 5
    assert b"no monthly spend quota" in owner.post("/portal/settings/alerts/", {
        "budget_share-enabled": "on", "budget_share-threshold_percent": "80",
        "error_rate-threshold_percent": "5", "error_rate-window_minutes": "15",
        "wrong_feedback_rate-threshold_percent": "20", "wrong_feedback_rate-window_minutes": "60"}).content


def test_only_owners_change_alerts(actors: Actors) -> None:
    data = {"error_rate-enabled": "on", "error_rate-threshold_percent": "5", "error_rate-window_minutes": "15",
            "wrong_feedback_rate-threshold_percent": "20", "wrong_feedback_rate-window_minutes": "60",
            "budget_share-threshold_percent": "80"}
    for user in (actors.admin, actors.member):
        assert _client(user).get("/portal/settings/alerts/").status_code == 200  # read-only view
        assert _client(user).post("/portal/settings/alerts/", data).status_code == 403
    assert _client(actors.nobody).get("/portal/settings/alerts/").status_code == 404
    assert not Alert.objects.filter(tenant=actors.tenant).exists()
    _client(actors.outsider).post("/portal/settings/alerts/", data)  # sets the outsider's own tenant's
    assert not Alert.objects.filter(tenant=actors.tenant).exists()
    assert Alert.objects.filter(tenant=actors.outsider_tenant).exists()


def test_beat_runs_the_evaluation_every_minute() -> None:
    entry = next(e for e in celery_app.conf.beat_schedule.values() if e["task"] == "optimizer.tasks.evaluate_alerts")
    assert entry["schedule"].minute == set(range(60))
