"""`{% alert_banner %}`: the tenant's active alerts, for the overview (and any portal page)."""

from __future__ import annotations

from typing import Any

from django import template

from optimizer.alerts import active_alerts, describe

register = template.Library()


@register.inclusion_tag("optimizer/_alert_banner.html", takes_context=True)
def alert_banner(context: template.Context) -> dict[str, Any]:
    tenant = context.get("tenant")
    alerts = active_alerts(tenant) if tenant is not None else []
    return {"alerts": [{"kind": a.kind, "text": describe(a), "since": a.last_crossed_at} for a in alerts]}
