"""The alerts settings page: owners set thresholds; everyone in the tenant sees them and their state.

Evaluation and email live in optimizer/alerts.py; this module only edits `Alert` rows. One form per
kind (prefixed by the kind), all saved together.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from optimizer import alerts
from optimizer.models import Alert
from tenants.models import AuditEvent, Tenant
from tenants.portal import portal_view, render_portal, require_owner

DEFAULTS = {Alert.Kind.BUDGET_SHARE: Decimal("80"), Alert.Kind.ERROR_RATE: Decimal("10"),
            Alert.Kind.WRONG_FEEDBACK_RATE: Decimal("20")}


class AlertForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="On")
    threshold_percent = forms.DecimalField(min_value=Decimal("0.01"), max_value=Decimal("1000"), max_digits=6,
                                           decimal_places=2, label="Threshold (%)")
    window_minutes = forms.IntegerField(min_value=5, max_value=10080, initial=60, label="Window (minutes)")

    def __init__(self, *args: Any, kind: str, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, prefix=kind, **kwargs)
        self.kind = kind
        self.tenant = tenant
        if kind == Alert.Kind.BUDGET_SHARE:
            # The budget share is of the month so far; a window would mean nothing.
            self.fields["window_minutes"].required = False
            self.fields["window_minutes"].widget = forms.HiddenInput()
        else:
            self.fields["threshold_percent"] = forms.DecimalField(
                min_value=Decimal("0.01"), max_value=Decimal("100"), max_digits=5, decimal_places=2,
                label="Threshold (%)")

    @property
    def label(self) -> str:
        return Alert.Kind(self.kind).label

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if (self.kind == Alert.Kind.BUDGET_SHARE and data.get("enabled")
                and self.tenant.monthly_spend_quota_usd is None):
            self.add_error("enabled", "This tenant has no monthly spend quota, so there is no budget to share.")
        return data


def _forms(request: HttpRequest, data: Any = None) -> list[AlertForm]:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    rows = {a.kind: a for a in Alert.objects.filter(tenant=tenant)}
    out = []
    for kind in Alert.Kind:
        row = rows.get(kind)
        initial = ({"enabled": row.enabled, "threshold_percent": row.threshold_percent,
                    "window_minutes": row.window_minutes} if row else
                   {"enabled": False, "threshold_percent": DEFAULTS[kind], "window_minutes": 60})
        form = AlertForm(data, kind=kind, tenant=tenant, initial=initial)
        form.alert = row  # type: ignore[attr-defined]
        out.append(form)
    return out


@portal_view()
def alerts_page(request: HttpRequest) -> HttpResponse:
    membership = request.membership  # type: ignore[attr-defined]
    is_owner = membership.is_owner
    if request.method == "POST":
        require_owner(membership)
        forms_ = _forms(request, request.POST)
        if all([f.is_valid() for f in forms_]):
            changed = _save(request, forms_)
            messages.success(request, "Alerts saved." if changed else "Nothing changed.")
            return redirect("optimizer_portal:alerts")
        return _render(request, forms_, is_owner, status=400)
    return _render(request, _forms(request), is_owner)


def _render(request: HttpRequest, forms_: list[AlertForm], is_owner: bool, status: int = 200) -> HttpResponse:
    if not is_owner:
        for form in forms_:
            for field in form.fields.values():
                field.disabled = True
    return render_portal(request, "optimizer/alerts.html", {
        "section": "settings", "alert_forms": forms_, "is_owner": is_owner,
        "min_requests": alerts.MIN_REQUESTS, "min_feedback": alerts.MIN_FEEDBACK}, status=status)


def _save(request: HttpRequest, forms_: list[AlertForm]) -> bool:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    changed: dict[str, Any] = {}
    with transaction.atomic():
        for form in forms_:
            data = form.cleaned_data
            row: Alert | None = form.alert  # type: ignore[attr-defined]
            if row is None and not data["enabled"]:
                continue
            new = {"enabled": data["enabled"], "threshold_percent": data["threshold_percent"],
                   "window_minutes": data.get("window_minutes") or 60}
            if row is not None and all(getattr(row, k) == v for k, v in new.items()):
                continue
            if row is None:
                row = Alert(tenant=tenant, kind=form.kind)
            threshold_moved = row.pk is None or row.threshold_percent != new["threshold_percent"]
            for name, value in new.items():
                setattr(row, name, value)
            if threshold_moved or not row.enabled:
                # A new threshold is a new question: the next evaluation says whether it is crossed (and mails).
                row.active = False
            row.save()
            changed[form.kind] = {k: str(v) for k, v in new.items()}
    if changed:
        AuditEvent.record("alerts.changed", tenant=tenant, actor=request.user, target="alerts",
                          ip=request.META.get("REMOTE_ADDR"), changed=changed)
    return bool(changed)
