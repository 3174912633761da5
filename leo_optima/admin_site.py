"""The Django admin behind the portal's own sign-in, with the second factor required for staff.

Staff sign in where customers do: allauth's login, with its rate limits and its MFA stage.
`/admin/login/` only hands over to it (keeping `next`), so no admin form ever takes a password.
Before any admin page opens, a staff member must have TOTP set up (or is sent to set it up) and
this session must have passed it; a session made some other way (Django's `login()`, a script)
is sent to allauth's MFA re-authentication first. SECURITY.md, "Staff sign-in".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse


def _to(url_name: str, next_url: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{reverse(url_name)}?{urlencode({'next': next_url})}")


def session_passed_mfa(request: HttpRequest) -> bool:
    """This session's sign-in included a second factor: an MFA step recorded by allauth, or a TOTP
    device enrolled (with a valid code) after this session's sign-in."""
    records = get_authentication_records(request, request.user)
    if any(r.get("method") == "mfa" for r in records):
        return True
    if not records:
        return False
    signed_in_at = min(float(r.get("at", 0)) for r in records)
    return Authenticator.objects.filter(
        user=request.user, type=Authenticator.Type.TOTP,
        created_at__gte=datetime.fromtimestamp(signed_in_at, tz=UTC),
    ).exists()


class StaffAdminSite(admin.AdminSite):
    """Django's admin site, signed into through allauth, open only to staff who passed TOTP."""

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Any method, POST included: a password sent here is never read.
        return _to("account_login", request.GET.get("next") or reverse("admin:index", current_app=self.name))

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Callable[..., Any]:
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            user = request.user
            here = request.get_full_path()
            if not user.is_authenticated:
                return _to("account_login", here)  # straight there, not via /admin/login/
            if (user.is_active and user.is_staff
                    and request.path != reverse("admin:logout", current_app=self.name)):
                if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
                    return _to("mfa_activate_totp", here)
                if not session_passed_mfa(request):
                    return _to("mfa_reauthenticate", here)
            return inner(request, *args, **kwargs)

        return guarded
