"""Security events from the auth layer into the audit log, email proof from password-set links, and
`tenant_created`, the signal other apps (billing) listen to when a tenant is made."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from allauth.account.signals import password_reset
from django.contrib.auth.signals import user_login_failed
from django.dispatch import Signal, receiver
from django.http import HttpRequest

from .models import AuditEvent, Membership, Tenant, User

# Sent once per new tenant, after its row exists, with `tenant` and `via` (how it was made:
# "signup" for portal self-service, "cli" for `create_tenant`, "demo" for the demo command).
# The identity app must not import the apps that react (billing puts new tenants on a plan), so
# they connect here instead of reading the audit log.
tenant_created = Signal()
VIA_SIGNUP, VIA_CLI, VIA_DEMO = "signup", "cli", "demo"


def send_tenant_created(tenant: Tenant, via: str) -> None:
    """Announce a new tenant; receivers run in the caller's transaction and their errors propagate."""
    tenant_created.send(sender=Tenant, tenant=tenant, via=via)

# Failed logins are rate-limited by allauth (ACCOUNT_RATE_LIMITS); the audit table keeps one row per
# failure, which is bounded by those limits.


@receiver(user_login_failed, dispatch_uid="leo_audit_login_failed")
def audit_login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None,
                       **kwargs: Any) -> None:
    # Django has already scrubbed the password from `credentials`; only the email is kept.
    email = str(credentials.get("email") or credentials.get("username") or "")[:200].lower()
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    user = User.objects.filter(email=email).first() if email else None
    tenant_ids = list(Membership.objects.filter(user=user).values_list("tenant_id", flat=True)) if user else []
    # One row per tenant of the account, so each tenant's owners see attempts on their members;
    # an unknown email gets one tenant-less row, for staff.
    for tenant_id in tenant_ids or [None]:
        AuditEvent.objects.create(tenant_id=tenant_id, actor=None, action="login.failed", target=email, ip=ip)


@receiver(password_reset, dispatch_uid="leo_reset_verifies_email")
def verify_email_on_reset(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    """A password-set link arrives by email, so following it proves the address (invited members
    set their first password this way and should not need a second, verification, email)."""
    EmailAddress.objects.filter(user=user, email__iexact=user.email).update(verified=True)
