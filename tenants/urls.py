"""Portal URLs of the identity app (mounted under /portal/ by leo_optima.urls)."""

from __future__ import annotations

from django.urls import path

from tenants.portal import views

app_name = "portal"

urlpatterns = [
    path("switch/", views.switch, name="switch"),
    path("keys/", views.keys, name="keys"),
    path("keys/new/", views.key_create, name="key_create"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
    path("keys/<int:pk>/rotate/", views.key_rotate, name="key_rotate"),
    path("keys/<int:pk>/limits/", views.key_limits, name="key_limits"),
    path("members/", views.members, name="members"),
    path("members/invite/", views.member_invite, name="member_invite"),
    path("members/<int:pk>/role/", views.member_role, name="member_role"),
    path("members/<int:pk>/remove/", views.member_remove, name="member_remove"),
    path("settings/providers/", views.providers, name="providers"),
    path("settings/providers/new/", views.provider_create, name="provider_create"),
    path("settings/providers/<int:pk>/delete/", views.provider_delete, name="provider_delete"),
    path("audit/", views.audit, name="audit"),
    path("setup/", views.setup, name="setup"),
]
