"""Staff admin for billing: plans (prices and limits are edited here), accounts, usage sync rows."""

from __future__ import annotations

from django.contrib import admin

from .models import BillingAccount, Plan, StripeUsageSync


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "monthly_base_cents", "price_per_million_saved", "requests_per_minute",
                    "monthly_token_quota", "active", "stripe_plan_id"]
    list_editable = ["active"]
    readonly_fields = ["stripe_product_id", "stripe_plan_id"]


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    list_display = ["tenant", "plan", "status", "customer_id", "subscription_id", "billing_since", "billing_until"]
    list_filter = ["status", "plan"]
    search_fields = ["tenant__name", "tenant__slug", "subscription_id"]
    raw_id_fields = ["tenant"]
    readonly_fields = ["customer", "subscription_id", "subscription_item_id", "status", "current_period_end",
                       "cancel_at_period_end", "card_brand", "card_last4", "updated_at"]


@admin.register(StripeUsageSync)
class StripeUsageSyncAdmin(admin.ModelAdmin):
    """Read-only: these rows are the record of what was billed."""

    list_display = ["idempotency_key", "tenant", "day", "seq", "tokens_saved", "amount_cents", "status",
                    "attempts", "sent_at"]
    list_filter = ["status"]
    search_fields = ["idempotency_key", "stripe_invoice_item_id", "tenant__slug"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
