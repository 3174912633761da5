"""The site's name and domain (django.contrib.sites, which allauth's emails use: "Hello from
{site}", links) come from LEO_BASE_URL, not Django's 'example.com' default. Synced after every
`migrate`, which each install and upgrade runs (make setup, the container's entrypoint)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.contrib.sites.models import Site


def configured_host() -> str:
    """host[:port] of LEO_BASE_URL, the address people reach this install at."""
    return urlsplit(settings.LEO_BASE_URL).netloc


def sync_site(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver: make SITE_ID's Site name and domain the configured host."""
    if sender.label != "sites":
        return
    host = configured_host()
    Site.objects.using(using).update_or_create(pk=settings.SITE_ID, defaults={"domain": host, "name": host})
