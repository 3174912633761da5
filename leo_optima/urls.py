"""URL map: the OpenAI-compatible API under /v1/, the portal, accounts, admin, health and metrics."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from billing.webhooks import stripe_webhook
from leo_optima import health
from optimizer.metrics import metrics_view

urlpatterns = [
    path("v1/", include("optimizer.api.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # The tenant portal: identity pages (tenants), then overview, requests, cache, settings (optimizer).
    path("portal/", include("tenants.urls")),
    path("portal/", include("optimizer.portal.urls")),
    path("portal/billing/", include("billing.urls")),
    path("stripe/webhook/", stripe_webhook, name="stripe_webhook"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
]
