"""Staff admin for identity. Secrets are never shown: keys by prefix, provider keys by last four."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest

from .models import ApiKey, AuditEvent, Membership, ProviderCredential, Tenant, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "name"]
    fieldsets = (
        (None, {"fields": ("email", "password", "name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "monthly_token_quota", "monthly_spend_quota_usd",
                    "requests_per_minute", "tokens_per_minute", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["is_active"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "tenant", "status", "created_at", "expires_at", "last_used_at"]
    search_fields = ["prefix", "name", "tenant__name"]
    list_filter = ["revoked_at", "tenant"]
    # The digest is useless to staff and a secret-derived value: keep it off the page.
    fields = ["tenant", "name", "prefix", "created_at", "created_by", "expires_at", "revoked_at", "last_used_at",
              "monthly_budget_usd", "requests_per_minute", "tokens_per_minute", "allowed_models", "limits_changed_at"]
    # Limits are set through ApiKey.set_limits (portal, create_api_key), which restarts the budget counter.
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at", "monthly_budget_usd",
                       "requests_per_minute", "tokens_per_minute", "allowed_models", "limits_changed_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are issued where the plaintext can be shown once: the portal or `create_api_key`.
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for key in queryset:
            key.revoke()
            AuditEvent.record("api_key.revoked", tenant=key.tenant, actor=request.user, target=key.prefix)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


class ProviderCredentialForm(forms.ModelForm):
    api_key = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False,
                              help_text="Write-only: leave empty to keep the stored key.")

    class Meta:
        model = ProviderCredential
        fields = ["tenant", "name", "base_url", "model_names", "priority", "exclusive"]

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        if not self.instance.pk and not data.get("api_key"):
            self.add_error("api_key", "A new credential needs its key.")
        return data

    def save(self, commit: bool = True) -> ProviderCredential:
        obj = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            obj.set_key(self.cleaned_data["api_key"])
        if commit:
            obj.save()
        return obj


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    form = ProviderCredentialForm
    list_display = ["name", "tenant", "base_url", "key_last4", "priority", "exclusive", "created_at"]
    search_fields = ["name", "tenant__name"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "target", "tenant", "actor", "ip"]
    list_filter = ["action"]
    search_fields = ["action", "target", "tenant__name", "actor__email"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
