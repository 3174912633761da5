"""What happens when a ledger record is finished, besides the row: metrics and the access log."""

from __future__ import annotations

import logging

from leo_optima.core.logging import log_request

from . import metrics
from .pipeline.ledger import Record


def observe(rec: Record) -> None:
    status = rec.status_code
    metrics.observe_request(rec.principal.tenant_slug, rec.model, rec.technique, status, rec.tokens_saved,
                            float(rec.saved_usd), latency_s=rec.latency_ms / 1000)
    for stage in rec.trail.get("stages", ()):
        name = stage.get("stage")
        if name == "upstream":
            ms = stage.get("ms", stage.get("first_byte_ms"))
            if ms is not None:
                metrics.observe_upstream(stage.get("provider", ""), rec.served_model or rec.model, ms / 1000)
        elif name == "upstream_error":
            metrics.observe_upstream_error(stage.get("provider", ""), stage.get("kind", "other"))
        elif name in ("exact", "semantic") and stage.get("ms") is not None:
            metrics.observe_cache_lookup(name, stage["ms"] / 1000)
            if stage.get("embed_ms") is not None:
                metrics.observe_embedding(stage["embed_ms"] / 1000)
        elif name == "dedup":
            metrics.observe_singleflight_wait()
    if status == 429 and rec.error_code in ("rate_limit_exceeded", "insufficient_quota"):
        metrics.observe_quota_rejection(rec.principal.tenant_slug, rec.trail.get("quota", rec.error_code))
    log_request(rec.request_id, rec.principal.tenant_slug, rec.technique, status, rec.latency_ms, rec.model,
                method="POST", path=f"/v1/{rec.endpoint}", stream=rec.stream, tokens_saved=rec.tokens_saved,
                upstream_ms=round(rec.upstream_latency_ms, 2), provider=rec.provider or None,
                level=logging.WARNING if status >= 500 else logging.INFO)
