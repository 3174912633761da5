"""Portal URLs of the optimizer (mounted under /portal/ by leo_optima.urls)."""

from __future__ import annotations

from django.urls import path

from . import alerts, views

app_name = "optimizer_portal"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("requests/", views.requests_list, name="requests"),
    path("breakdown/", views.breakdown, name="breakdown"),
    path("requests/export.csv", views.requests_csv, name="requests_csv"),
    path("requests/<str:request_id>/", views.request_detail, name="request_detail"),
    path("requests/<str:request_id>/feedback/", views.request_feedback, name="request_feedback"),
    path("cache/", views.cache, name="cache"),
    path("cache/purge/", views.cache_purge, name="cache_purge"),
    path("cache/<int:pk>/delete/", views.cache_delete, name="cache_delete"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/alerts/", alerts.alerts_page, name="alerts"),
]
