"""Identity pages of the portal: tenant switcher, API keys, members, provider credentials and
quotas, audit log, quick start. Views stay thin: a form, one model call, an audit event."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from tenants import crypto
from tenants.forms import ApiKeyForm, InviteForm, KeyLimitsForm, ProviderCredentialForm, RoleForm, RotateKeyForm
from tenants.models import ApiKey, AuditEvent, Membership, ProviderCredential, Role

from .access import SESSION_KEY, memberships_for, portal_view, render_portal
from .invites import AlreadyMember, invite
from .urlbase import public_base_url


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _audit(request: HttpRequest, action: str, target: str = "", **data: object) -> None:
    AuditEvent.record(action, tenant=request.tenant, actor=request.user, target=target,  # type: ignore[attr-defined]
                      ip=_ip(request), **data)


# --- Tenant switcher -------------------------------------------------------------------------------

@portal_view()
@require_POST
def switch(request: HttpRequest) -> HttpResponse:
    try:
        tenant_id = int(request.POST.get("tenant", ""))
    except ValueError:
        raise Http404("No such tenant") from None
    if not memberships_for(request.user).filter(tenant_id=tenant_id).exists():
        raise Http404("No such tenant")
    request.session[SESSION_KEY] = tenant_id
    return redirect("/portal/")


# --- API keys --------------------------------------------------------------------------------------

def _keys_page(request: HttpRequest, form: ApiKeyForm | None = None, new_key: tuple[ApiKey, str] | None = None,
               status: int = 200, limits_form: KeyLimitsForm | None = None) -> HttpResponse:
    keys = ApiKey.objects.filter(tenant=request.tenant).select_related("created_by")  # type: ignore[attr-defined]
    response = render_portal(request, "portal/keys.html", {
        "section": "keys", "keys": keys, "form": form or ApiKeyForm(), "rotate_form": RotateKeyForm(),
        "new_key": new_key[0] if new_key else None, "plaintext": new_key[1] if new_key else None,
        "base_url": public_base_url(request), "limits_form": limits_form or KeyLimitsForm(prefix="limits"),
    }, status=status)
    return response


# POST/redirect/GET for a new key: the POST keeps the plaintext (Fernet-encrypted, as provider keys
# are at rest) in the session and redirects; the next GET of the keys page shows it once and drops
# it. A reload then shows the list, never a second key, and the plaintext is in no URL.
NEW_KEY_SESSION = "portal_new_key"


def _hand_over(request: HttpRequest, row: ApiKey, plaintext: str) -> HttpResponse:
    request.session[NEW_KEY_SESSION] = {"id": row.pk, "tenant": row.tenant_id, "key": crypto.encrypt(plaintext)}
    return redirect("portal:keys")


def _take_new_key(request: HttpRequest) -> tuple[ApiKey, str] | None:
    held = request.session.pop(NEW_KEY_SESSION, None)
    if not isinstance(held, dict) or held.get("tenant") != request.tenant.pk:  # type: ignore[attr-defined]
        return None
    row = ApiKey.objects.filter(pk=held.get("id"), tenant=request.tenant).first()  # type: ignore[attr-defined]
    try:
        return (row, crypto.decrypt(held["key"])) if row is not None else None
    except (KeyError, ValueError):
        return None


@never_cache  # may carry the plaintext of a key just created
@portal_view()
def keys(request: HttpRequest) -> HttpResponse:
    return _keys_page(request, new_key=_take_new_key(request))


@never_cache  # the one response that carries the plaintext must not be stored by any cache
@portal_view(manage=True)
@require_POST
def key_create(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST)
    limits_form = KeyLimitsForm(request.POST, prefix="limits")
    if not (form.is_valid() & limits_form.is_valid()):  # both, so every error shows at once
        return _keys_page(request, form=form, status=400, limits_form=limits_form)
    days = form.cleaned_data["expires_in_days"]
    expires = timezone.now() + timedelta(days=days) if days else None
    with transaction.atomic():
        row, plaintext = ApiKey.issue(request.tenant, name=form.cleaned_data["name"],  # type: ignore[attr-defined]
                                      created_by=request.user, expires_at=expires)
        row.set_limits(**limits_form.limits())
    _audit(request, "api_key.created", target=row.prefix, name=row.name,
           **({"limits": row.limits()} if row.has_limits else {}))
    return _hand_over(request, row, plaintext)


@portal_view(manage=True)
@require_POST
def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk, tenant=request.tenant)  # type: ignore[attr-defined]
    if key.revoked_at is None:
        key.revoke()
        _audit(request, "api_key.revoked", target=key.prefix, name=key.name)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "portal/_key_row.html", {"key": key, "membership": request.membership,  # type: ignore[attr-defined]
                                                         "rotate_form": RotateKeyForm()})
    messages.success(request, f"Key {key.prefix}… revoked. Calls with it are refused within seconds.")
    return redirect("portal:keys")


@never_cache
@portal_view(manage=True)
@require_POST
def key_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    """A new key with the same name; the old one stops at once or after a short grace period."""
    old = get_object_or_404(ApiKey, pk=pk, tenant=request.tenant, revoked_at__isnull=True)  # type: ignore[attr-defined]
    form = RotateKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose when the old key stops working.")
        return redirect("portal:keys")
    grace = int(form.cleaned_data["old_key_expires"])
    with transaction.atomic():
        row, plaintext = ApiKey.issue(request.tenant, name=old.name, created_by=request.user,  # type: ignore[attr-defined]
                                      expires_at=old.expires_at)
        row.set_limits(**old.limit_values())  # the new key keeps the old one's limits
        if grace:
            until = timezone.now() + timedelta(seconds=grace)
            old.expires_at = min(old.expires_at, until) if old.expires_at else until
            old.save(update_fields=["expires_at"])
        else:
            old.revoke()
    _audit(request, "api_key.rotated", target=old.prefix, new_prefix=row.prefix, grace_seconds=grace)
    return _hand_over(request, row, plaintext)


def _key_limits_page(request: HttpRequest, key: ApiKey, form: KeyLimitsForm, status: int = 200) -> HttpResponse:
    return render_portal(request, "portal/key_limits.html", {"section": "keys", "key": key, "form": form},
                         status=status)


@portal_view(manage=True)
def key_limits(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit a key's own limits (budget, requests and tokens per minute, allowed models)."""
    key = get_object_or_404(ApiKey, pk=pk, tenant=request.tenant)  # type: ignore[attr-defined]
    if request.method != "POST":
        return _key_limits_page(request, key, KeyLimitsForm.for_key(key))
    form = KeyLimitsForm.for_key(key, request.POST)
    if not form.is_valid():
        return _key_limits_page(request, key, form, status=400)
    before = key.limits()
    key.set_limits(**form.limits())
    _audit(request, "api_key.limits_changed", target=key.prefix, old=before, new=key.limits())
    messages.success(request, f"Limits of {key.prefix}… saved. They apply to calls within seconds.")
    return redirect("portal:keys")


# --- Members ---------------------------------------------------------------------------------------

def _members_page(request: HttpRequest, form: InviteForm | None = None, status: int = 200) -> HttpResponse:
    members = Membership.objects.filter(tenant=request.tenant).select_related("user").order_by("created_at")  # type: ignore[attr-defined]
    return render_portal(request, "portal/members.html", {
        "section": "members", "members": members, "form": form or InviteForm(), "roles": Role.choices,
    }, status=status)


@portal_view()
def members(request: HttpRequest) -> HttpResponse:
    return _members_page(request)


def _check_role_change(actor: Membership, target: Membership | None, new_role: str | None) -> None:
    if not actor.may_set_role(target, new_role):
        raise PermissionDenied("Only owners can change owners")


@portal_view(manage=True)
@require_POST
def member_invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _members_page(request, form=form, status=400)
    _check_role_change(request.membership, None, form.cleaned_data["role"])  # type: ignore[attr-defined]
    try:
        membership = invite(request, request.tenant, form.cleaned_data["email"], form.cleaned_data["role"])  # type: ignore[attr-defined]
    except AlreadyMember:
        form.add_error("email", "This person is already a member.")
        return _members_page(request, form=form, status=400)
    _audit(request, "member.invited", target=membership.user.email, role=membership.role)
    messages.success(request, f"Invited {membership.user.email}.")
    return redirect("portal:members")


@portal_view(manage=True)
@require_POST
def member_role(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(Membership, pk=pk, tenant=request.tenant)  # type: ignore[attr-defined]
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown role.")
        return redirect("portal:members")
    new_role = form.cleaned_data["role"]
    _check_role_change(request.membership, target, new_role)  # type: ignore[attr-defined]
    if target.leaves_no_owner(new_role):
        messages.error(request, "A tenant needs at least one owner.")
        return redirect("portal:members")
    if new_role != target.role:
        old_role, target.role = target.role, new_role
        target.save(update_fields=["role"])
        _audit(request, "member.role_changed", target=target.user.email, old=old_role, new=new_role)
        messages.success(request, f"{target.user.email} is now {target.get_role_display().lower()}.")
    return redirect("portal:members")


@portal_view(manage=True)
@require_POST
def member_remove(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(Membership, pk=pk, tenant=request.tenant)  # type: ignore[attr-defined]
    _check_role_change(request.membership, target, None)  # type: ignore[attr-defined]
    if target.leaves_no_owner(None):
        messages.error(request, "A tenant needs at least one owner.")
        return redirect("portal:members")
    email = target.user.email
    target.delete()
    _audit(request, "member.removed", target=email)
    messages.success(request, f"Removed {email}.")
    if target.user_id == request.user.pk:
        return redirect("/portal/")
    return redirect("portal:members")


# --- Provider credentials and quotas ---------------------------------------------------------------

def _providers_page(request: HttpRequest, form: ProviderCredentialForm | None = None,
                    status: int = 200) -> HttpResponse:
    credentials = ProviderCredential.objects.filter(tenant=request.tenant)  # type: ignore[attr-defined]
    return render_portal(request, "portal/providers.html", {
        "section": "settings", "credentials": credentials, "form": form or ProviderCredentialForm(),
    }, status=status)


@portal_view()
def providers(request: HttpRequest) -> HttpResponse:
    return _providers_page(request)


@portal_view(manage=True)
@require_POST
def provider_create(request: HttpRequest) -> HttpResponse:
    form = ProviderCredentialForm(request.POST)
    if not form.is_valid():
        return _providers_page(request, form=form, status=400)
    credential = form.save(commit=False)
    credential.tenant = request.tenant  # type: ignore[attr-defined]
    credential.save()
    _audit(request, "provider.added", target=credential.name, base_url=credential.base_url,
           key_last4=credential.key_last4)
    messages.success(request, f"Added {credential.name} (key …{credential.key_last4}).")
    return redirect("portal:providers")


@portal_view(manage=True)
@require_POST
def provider_delete(request: HttpRequest, pk: int) -> HttpResponse:
    credential = get_object_or_404(ProviderCredential, pk=pk, tenant=request.tenant)  # type: ignore[attr-defined]
    credential.delete()
    _audit(request, "provider.removed", target=credential.name)
    messages.success(request, f"Removed {credential.name}.")
    return redirect("portal:providers")


# --- Audit log and quick start ---------------------------------------------------------------------

@portal_view(owner=True)
def audit(request: HttpRequest) -> HttpResponse:
    events = AuditEvent.objects.filter(tenant=request.tenant).select_related("actor")  # type: ignore[attr-defined]
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render_portal(request, "portal/audit.html", {"section": "audit", "page": page})


@portal_view()
def setup(request: HttpRequest) -> HttpResponse:
    return render_portal(request, "portal/setup.html", {"section": "setup", "base_url": public_base_url(request)})
