"""Template context for pages outside the portal's own views (allauth's account, email and
two-factor pages): the membership, so they render in the portal's frame with its navigation."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest

from .access import current_membership


def portal_frame(request: HttpRequest) -> dict[str, Any]:
    """`membership`, `memberships` and `tenant` for a signed-in member, nothing otherwise. Portal
    views pass their own (render_portal), which take precedence; the membership is cached on the
    request, so this adds no query to them."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    try:
        membership = current_membership(request)
    except Http404:
        return {}
    return {"membership": membership, "memberships": request.memberships,  # type: ignore[attr-defined]
            "tenant": membership.tenant}
