"""A tenant's adaptive strictness: where it stands, the rule it sets, and the verdicts that move it.

`POST /v1/feedback` and the portal's buttons record whether a served answer was right; a verdict on
a semantic hit moves the tenant's strictness (`optimizer.semantic.policy.AdaptiveStrictness`), which
sets the cosine threshold and the pair judge's floor of its next lookups (`rule_of`).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..models import Feedback, OptimizerSettings, RequestLog, Technique
from ..semantic import AdaptiveStrictness
from ..semantic.policy import rule_at
from . import config


def strictness_of(state: dict[str, Any] | None, bound: float) -> AdaptiveStrictness:
    """The tenant's adaptive strictness from its saved state (fresh when there is none); the
    wrong-answer bound is always the one in its settings now (held inside the open interval the
    staircase needs, since the admin can store any float)."""
    return AdaptiveStrictness.from_dict({**(state or {}), "bound": min(max(bound, 1e-4), 0.49)})


def rule_of(cfg: config.TenantConfig) -> tuple[float, float]:
    """``(cosine threshold, judge floor)`` for this tenant now."""
    level = strictness_of(cfg.adaptive_state, cfg.max_wrong_rate).level
    return rule_at(level, cfg.semantic_threshold)


def record_feedback(tenant_id: int, request_id: str, correct: bool) -> dict[str, Any] | None:
    """Store a verdict on a served answer; a verdict on a semantic hit moves the tenant's strictness."""
    log_row = RequestLog.objects.filter(tenant_id=tenant_id, request_id=request_id).first()
    if log_row is None:
        return None
    with transaction.atomic():
        Feedback.objects.update_or_create(request_log=log_row, defaults={"tenant_id": tenant_id, "correct": correct})
        rule: dict[str, float] = {}
        if log_row.technique == Technique.SEMANTIC:
            settings_row = OptimizerSettings.objects.select_for_update().filter(tenant_id=tenant_id).first()
            if settings_row is None:
                settings_row = config.get_settings_row(tenant_id)
            adaptive = strictness_of(settings_row.adaptive_state, settings_row.max_wrong_rate)
            level = adaptive.record(correct)
            settings_row.adaptive_state = adaptive.to_dict()
            settings_row.save(update_fields=["adaptive_state", "updated_at"])
            threshold, min_probability = rule_at(level, settings_row.semantic_threshold)
            rule = {"semantic_strictness": round(level, 6), "semantic_threshold": round(threshold, 6),
                    "semantic_min_probability": round(min_probability, 6)}
    config.forget(tenant_id)
    return {"request_id": request_id, "correct": correct, "technique": log_row.technique,
            "semantic_strictness": None, "semantic_threshold": None, "semantic_min_probability": None,
            **rule}
