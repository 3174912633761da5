"""URL map: the OpenAI-compatible API under /v1/, the portal, accounts, admin, health and metrics.

`/` leads to the portal; any other unknown URL gets templates/404.html (DEBUG is off wherever the
app is served, `make run` included; `make dev` turns it on).
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from billing.webhooks import stripe_webhook
from leo_optima.core import health
from optimizer.metrics import metrics_view

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="optimizer_portal:overview")),
    path("v1/", include("optimizer.api.urls")),
    # leo_optima.admin_site: /admin/login/ hands over to allauth's login; staff need TOTP.
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
