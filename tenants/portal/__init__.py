"""The tenant portal's scaffolding: tenant-scoped, role-checked access for every app's portal views.

Other apps' portal views (optimizer, billing) use these; they are the one place that decides who
sees which tenant:

    from tenants.portal import current_membership, portal_view, render_portal

    @portal_view(manage=True)           # owners and admins; members get 403, outsiders 404
    def plans(request):                 # request.membership / request.tenant are set
        return render_portal(request, "billing/plans.html", {"section": "billing"})
"""

from __future__ import annotations

from .access import (
    SESSION_KEY,
    current_membership,
    memberships_for,
    portal_view,
    render_portal,
    require_manage,
    require_owner,
)

__all__ = [
    "SESSION_KEY",
    "current_membership",
    "memberships_for",
    "portal_view",
    "render_portal",
    "require_manage",
    "require_owner",
]
