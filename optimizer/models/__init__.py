"""The optimizer's models: the ledger and its rules (`ledger`, `totals`), the cache's source of
truth (`cache`), model prices and per-tenant settings (`config`), rollups and alerts (`rollups`).
Everything is importable from `optimizer.models`."""

from .cache import CacheEntry
from .config import ModelPrice, OptimizerSettings
from .ledger import Feedback, RequestBody, RequestLog
from .rollups import Alert, LatencyRollup, UsageRollup
from .totals import (
    CACHE_TECHNIQUES,
    COUNT_TOTALS,
    INT_TOTALS,
    ROUTED,
    SAVING_FIELDS,
    TOTALS,
    USD_TOTALS,
    LedgerTotals,
    RequestLogQuerySet,
    Technique,
    Usage,
    month_start,
)

__all__ = [
    "CACHE_TECHNIQUES", "COUNT_TOTALS", "INT_TOTALS", "ROUTED", "SAVING_FIELDS", "TOTALS", "USD_TOTALS",
    "Alert", "CacheEntry", "Feedback", "LatencyRollup", "LedgerTotals", "ModelPrice", "OptimizerSettings",
    "RequestBody", "RequestLog", "RequestLogQuerySet", "Technique", "Usage", "UsageRollup", "month_start",
]
