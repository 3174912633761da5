"""Who may see which tenant in the portal, and the role checks of its views.

The current tenant lives in the session (chosen with the switcher), so portal URLs carry no tenant
and every object lookup is filtered by `request.tenant`: an object of another tenant is simply not
found (404), the same answer as for an id that never existed, so nothing leaks about other tenants.
What each role may do is the Membership's rule (tenants/models.py); this module only enforces it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from tenants.models import Membership

SESSION_KEY = "leo_tenant_id"
View = TypeVar("View", bound=Callable[..., HttpResponse])


def memberships_for(user: Any) -> QuerySet[Membership]:
    """The user's memberships in active tenants, oldest first (the first is the default tenant)."""
    if not getattr(user, "is_authenticated", False):
        return Membership.objects.none()
    return (Membership.objects.filter(user=user, tenant__is_active=True)
            .select_related("tenant").order_by("created_at", "id"))


def current_membership(request: HttpRequest) -> Membership:
    """The signed-in user's membership in the session's tenant (or their first); 404 if none.

    Cached on the request, so views and templates ask as often as they like.
    """
    cached = getattr(request, "membership", None)
    if isinstance(cached, Membership):
        return cached
    memberships = list(memberships_for(request.user))
    if not memberships:
        raise Http404("No tenant")
    wanted = request.session.get(SESSION_KEY)
    chosen = next((m for m in memberships if m.tenant_id == wanted), memberships[0])
    if wanted != chosen.tenant_id:
        request.session[SESSION_KEY] = chosen.tenant_id
    request.membership = chosen  # type: ignore[attr-defined]
    request.tenant = chosen.tenant  # type: ignore[attr-defined]
    request.memberships = memberships  # type: ignore[attr-defined]
    return chosen


def require_manage(membership: Membership) -> None:
    """403 unless the member may manage the tenant (Membership.can_manage)."""
    if not membership.can_manage:
        raise PermissionDenied("Owners and admins only")


def require_owner(membership: Membership) -> None:
    """403 unless the member is an owner (Membership.is_owner)."""
    if not membership.is_owner:
        raise PermissionDenied("Owners only")


def portal_view(manage: bool = False, owner: bool = False) -> Callable[[View], View]:
    """Decorate a portal view: sign-in required, tenant resolved (404 without one), role checked.

    `manage=True`: owners and admins only (403 for members). `owner=True`: owners only.
    Anonymous visitors are sent to the sign-in page.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = current_membership(request)
            if owner:
                require_owner(membership)
            elif manage:
                require_manage(membership)
            return view(request, *args, **kwargs)

        return cast(View, wrapper)

    return decorate


def render_portal(request: HttpRequest, template: str, context: Mapping[str, Any] | None = None,
                  status: int = 200) -> HttpResponse:
    """Render a page on portal/base.html with the membership, the switcher's list and the tenant."""
    membership = current_membership(request)
    full = {"membership": membership, "memberships": request.memberships,  # type: ignore[attr-defined]
            "tenant": membership.tenant, **(context or {})}
    return render(request, template, full, status=status)
