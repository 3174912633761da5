"""The gateway's public base URL as a client should use it."""

from __future__ import annotations

import os

from django.conf import settings
from django.http import HttpRequest


def public_base_url(request: HttpRequest) -> str:
    """`LEO_BASE_URL` when the operator set it (behind a proxy the request's host may be internal),
    otherwise the host this page was requested on."""
    if os.environ.get("LEO_BASE_URL"):
        return str(settings.LEO_BASE_URL).rstrip("/") + "/v1"
    return request.build_absolute_uri("/v1")
