"""Billing portal URLs (mounted at /portal/billing/ by leo_optima.urls)."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.billing, name="home"),
    path("setup-intent/", views.setup_intent, name="setup_intent"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path("cancel/", views.cancel, name="cancel"),
]
