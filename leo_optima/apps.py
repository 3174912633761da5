"""The admin's app config, so `admin.site` is LEO's StaffAdminSite (leo_optima/admin_site.py)."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "leo_optima.admin_site.StaffAdminSite"
