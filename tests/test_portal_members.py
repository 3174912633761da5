"""Members: invite by email (new and existing accounts), roles, removal, the last-owner rule."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from tenants.models import AuditEvent, Membership, Role, User
from tests.portal_helpers import Actors, build_actors

pytestmark = pytest.mark.django_db


@pytest.fixture
def actors() -> Actors:
    return build_actors()


def _login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_invite_new_person_sets_password_and_is_verified(actors: Actors) -> None:
    owner = _login(actors.owner)
    response = owner.post("/portal/members/invite/", {"email": "New.Person@Example.com", "role": "member"})
    assert response.status_code == 302
    user = User.objects.get(email="new.person@example.com")
    assert not user.has_usable_password()
    assert Membership.objects.get(user=user, tenant=actors.tenant).role == Role.MEMBER
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.person@example.com"]
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", mail.outbox[0].body).group(1)
    # Following the link: allauth stores the key in the session and redirects to the form.
    guest = Client()
    form_url = guest.get(link, follow=False)["Location"]
    response = guest.post(form_url, {"password1": "a-long-new-pass-42", "password2": "a-long-new-pass-42"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-long-new-pass-42")
    assert EmailAddress.objects.get(user=user).verified  # the link proved the address
    # Now they can sign in and see the tenant, read-only.
    signed_in = Client()
    response = signed_in.post("/accounts/login/", {"login": "new.person@example.com", "password": "a-long-new-pass-42"})
    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert signed_in.get("/portal/members/").status_code == 200
    assert signed_in.post("/portal/keys/new/", {"name": "x"}).status_code == 403
    assert AuditEvent.objects.filter(tenant=actors.tenant, action="member.invited", target=user.email).exists()


def test_invite_existing_account_and_duplicates(actors: Actors) -> None:
    owner = _login(actors.owner)
    assert owner.post("/portal/members/invite/", {"email": actors.outsider.email, "role": "admin"}).status_code == 302
    assert Membership.objects.get(user=actors.outsider, tenant=actors.tenant).role == Role.ADMIN
    assert "/accounts/login/" in mail.outbox[-1].body
    response = owner.post("/portal/members/invite/", {"email": actors.outsider.email, "role": "member"})
    assert response.status_code == 400 and b"already a member" in response.content
    assert owner.post("/portal/members/invite/", {"email": "not-an-email", "role": "member"}).status_code == 400


def test_roles_and_last_owner(actors: Actors) -> None:
    owner = _login(actors.owner)
    owner_membership = Membership.objects.get(user=actors.owner, tenant=actors.tenant)
    assert owner.post(f"/portal/members/{actors.membership.pk}/role/", {"role": "admin"}).status_code == 302
    actors.membership.refresh_from_db()
    assert actors.membership.role == Role.ADMIN
    event = AuditEvent.objects.get(tenant=actors.tenant, action="member.role_changed")
    assert event.data == {"old": "member", "new": "admin"}
    # The only owner cannot step down or be removed.
    owner.post(f"/portal/members/{owner_membership.pk}/role/", {"role": "member"})
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER
    owner.post(f"/portal/members/{owner_membership.pk}/remove/")
    assert Membership.objects.filter(pk=owner_membership.pk).exists()
    # Admins manage members and admins, not owners.
    admin = _login(actors.admin)
    assert admin.post(f"/portal/members/{owner_membership.pk}/role/", {"role": "member"}).status_code == 403
    assert admin.post(f"/portal/members/{actors.membership.pk}/role/", {"role": "owner"}).status_code == 403
    assert admin.post(f"/portal/members/{actors.membership.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=actors.membership.pk).exists()
    assert AuditEvent.objects.filter(tenant=actors.tenant, action="member.removed", actor=actors.admin).exists()


def test_removed_member_loses_access(actors: Actors) -> None:
    member = _login(actors.member)
    assert member.get("/portal/keys/").status_code == 200
    _login(actors.owner).post(f"/portal/members/{actors.membership.pk}/remove/")
    assert member.get("/portal/keys/").status_code == 404


def test_switcher_between_tenants(actors: Actors) -> None:
    Membership.objects.create(user=actors.outsider, tenant=actors.tenant, role=Role.MEMBER)
    client = _login(actors.outsider)
    page = client.get("/portal/keys/").content.decode()
    assert 'id="switch-tenant"' in page and actors.key.prefix not in page  # their first tenant
    assert client.post("/portal/switch/", {"tenant": actors.tenant.pk}).status_code == 302
    assert actors.key.prefix in client.get("/portal/keys/").content.decode()
    assert client.post("/portal/switch/", {"tenant": "nonsense"}).status_code == 404
