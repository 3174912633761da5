"""Staff admin for the optimizer: prices are editable; the ledger and the cache are read-only."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from . import cache_admin
from .models import (Alert, CacheEntry, Feedback, LatencyRollup, ModelPrice, OptimizerSettings, RequestBody,
                     RequestLog, UsageRollup)


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is evidence: staff may read and filter it, never edit it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["model", "provider", "kind", "input_per_million", "output_per_million", "active"]
    list_editable = ["input_per_million", "output_per_million", "active"]
    list_filter = ["provider", "kind", "active"]
    search_fields = ["model"]


@admin.register(OptimizerSettings)
class OptimizerSettingsAdmin(admin.ModelAdmin):
    list_display = ["tenant", "exact_cache", "semantic_cache", "dedup", "decomposition", "prompt_mode", "routing",
                    "semantic_threshold", "updated_at"]
    search_fields = ["tenant__name"]
    readonly_fields = ["adaptive_state", "updated_at"]


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "request_id", "tenant", "model", "served_model", "technique", "status_code",
                    "prompt_tokens", "completion_tokens", "cost_usd", "saved_usd", "latency_ms"]
    list_filter = ["technique", "status_code", "stream", "endpoint"]
    search_fields = ["request_id", "tenant__name", "model"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]
    show_full_result_count = False  # counting millions of ledger rows on every page is too slow


@admin.register(CacheEntry)
class CacheEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "model", "request_text", "hits", "is_part", "created_at", "expires_at"]
    list_filter = ["is_part", "model"]
    search_fields = ["request_text", "tenant__name"]
    exclude = ["embedding"]
    show_full_result_count = False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return True

    # Django's own deletes would drop the rows only, and the exact cache would go on serving the
    # answers until their TTL: both the single delete and the bulk action go through the cache layer.
    def delete_model(self, request: HttpRequest, obj: CacheEntry) -> None:
        cache_admin.delete_entries_now(CacheEntry.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[CacheEntry]) -> None:
        cache_admin.delete_entries_now(queryset)


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "request_log", "correct"]
    list_filter = ["correct"]


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "period", "start", "technique", "requests", "tokens_saved", "saved_usd", "cost_usd"]
    list_filter = ["period", "technique"]
    search_fields = ["tenant__name"]


@admin.register(LatencyRollup)
class LatencyRollupAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "period", "start"]
    list_filter = ["period"]
    search_fields = ["tenant__name"]


@admin.register(RequestBody)
class RequestBodyAdmin(ReadOnlyAdmin):
    """Stored only for tenants that opted in, secrets already redacted; staff read them as they read
    cached answers, to answer a tenant's support request."""

    list_display = ["request_log", "tenant", "created_at", "expires_at", "redactions"]
    search_fields = ["tenant__name", "request_log__request_id"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["tenant", "kind", "threshold_percent", "window_minutes", "enabled", "active", "value_percent",
                    "last_crossed_at"]
    list_filter = ["kind", "active", "enabled"]
    search_fields = ["tenant__name"]
    readonly_fields = ["active", "value_percent", "last_crossed_at", "last_evaluated_at"]
