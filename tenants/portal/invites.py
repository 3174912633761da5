"""Inviting people into a tenant by email.

An invite adds the membership at once. A person without an account gets one with no usable
password and an email carrying a password-set link (allauth's reset-from-key URL, valid as long as
Django's PASSWORD_RESET_TIMEOUT); following it also verifies the address (tenants.signals), and
setting that first password signs them in, in the tenant that invited them (`sign_in_invitee`).
"""

from __future__ import annotations

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress
from allauth.account.signals import password_reset
from allauth.account.utils import user_pk_to_url_str
from django.contrib.auth import login
from django.core.mail import send_mail
from django.dispatch import receiver
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse

from tenants.models import Membership, Tenant, User

from .access import SESSION_KEY

# The backend allauth signs people in with (settings.AUTHENTICATION_BACKENDS).
_BACKEND = "allauth.account.auth_backends.AuthenticationBackend"


class AlreadyMember(Exception):
    pass


def invite(request: HttpRequest, tenant: Tenant, email: str, role: str) -> Membership:
    """Add `email` to `tenant` with `role` and email them; raises AlreadyMember if they are in it."""
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).first()
        new_account = user is None
        if user is None:
            user = User.objects.create_user(email, password=None)  # unusable password until they set one
            EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
        if Membership.objects.filter(user=user, tenant=tenant).exists():
            raise AlreadyMember(email)
        membership = Membership.objects.create(user=user, tenant=tenant, role=role)
    inviter = getattr(request.user, "email", "someone")
    if new_account:
        path = reverse("account_reset_password_from_key",
                       kwargs={"uidb36": user_pk_to_url_str(user), "key": default_token_generator.make_token(user)})
        action = f"Choose your password to sign in:\n{request.build_absolute_uri(path)}"
    else:
        action = f"Sign in to see it:\n{request.build_absolute_uri(reverse('account_login'))}"
    send_mail(f"You have been added to {tenant.name} on LEO Optima",
              f"{inviter} added you to {tenant.name} on LEO Optima as {membership.get_role_display().lower()}.\n\n"
              f"{action}\n", None, [user.email])
    return membership


@receiver(password_reset, dispatch_uid="leo_sign_in_invitee")
def sign_in_invitee(sender: object, request: HttpRequest, user: User, **kwargs: object) -> None:
    """A first password set from an emailed link signs the person in, in their newest tenant (the
    one whose invite created the account), so they land in the portal rather than on a sign-in
    form. Only for an account that has never signed in: such an account cannot have a second
    factor yet, and the link itself proved the email address. Later resets sign nobody in
    (ACCOUNT_LOGIN_ON_PASSWORD_RESET stays off)."""
    if user.last_login is not None or not user.is_active:
        return
    newest = Membership.objects.filter(user=user).order_by("-created_at", "-id").first()
    if newest is None:
        return
    login(request, user, backend=_BACKEND)
    request.session[SESSION_KEY] = newest.tenant_id
