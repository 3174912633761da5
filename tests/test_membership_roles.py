"""#16.3: what each role may do is said once, on Membership (tenants/models.py); the portal's access
checks, its views and its navigation ask the membership."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.models import Membership, Role
from tests.portal_helpers import Actors, build_actors

pytestmark = pytest.mark.django_db


@pytest.fixture
def actors() -> Actors:
    return build_actors()


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def _of(actors: Actors, user) -> Membership:  # type: ignore[no-untyped-def]
    return Membership.objects.get(tenant=actors.tenant, user=user)


def test_role_rules(actors: Actors) -> None:
    owner, admin, member = (_of(actors, u) for u in (actors.owner, actors.admin, actors.member))
    assert [m.is_owner for m in (owner, admin, member)] == [True, False, False]
    assert [m.can_manage for m in (owner, admin, member)] == [True, True, False]
    # Only owners make or unmake owners; admins manage admins and members; members nothing.
    assert owner.may_set_role(admin, Role.OWNER) and owner.may_set_role(None, Role.OWNER)
    assert admin.may_set_role(member, Role.ADMIN) and admin.may_set_role(None, Role.MEMBER)
    assert not admin.may_set_role(member, Role.OWNER) and not admin.may_set_role(owner, Role.MEMBER)
    assert not admin.may_set_role(owner, None) and not admin.may_set_role(None, Role.OWNER)
    assert not member.may_set_role(None, Role.MEMBER) and not member.may_set_role(member, None)
    # The last owner cannot be demoted or removed; a second owner changes that.
    assert owner.leaves_no_owner(Role.ADMIN) and owner.leaves_no_owner(None)
    assert not owner.leaves_no_owner(Role.OWNER) and not admin.leaves_no_owner(None)
    admin.role = Role.OWNER
    admin.save()
    assert not owner.leaves_no_owner(None)
    assert set(Membership.objects.owners().filter(tenant=actors.tenant)) == {owner, admin}


def test_member_and_admin_cannot_do_owner_actions(actors: Actors) -> None:
    member, admin = _client(actors.member), _client(actors.admin)
    target = _of(actors, actors.member)
    assert member.get("/portal/audit/").status_code == 403
    assert admin.get("/portal/audit/").status_code == 403
    assert _client(actors.owner).get("/portal/audit/").status_code == 200
    assert member.post("/portal/members/invite/", {"email": "x@example.com", "role": "member"}).status_code == 403
    assert admin.post(f"/portal/members/{target.pk}/role/", {"role": "owner"}).status_code == 403
    owner = _of(actors, actors.owner)
    assert admin.post(f"/portal/members/{owner.pk}/remove/").status_code == 403
    target.refresh_from_db()
    assert target.role == Role.MEMBER and Membership.objects.filter(pk=owner.pk).exists()


def test_access_asks_the_membership(actors: Actors, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the portal to check roles by a rule of its own, this change would not reach it."""
    monkeypatch.setattr(Membership, "is_owner", property(lambda self: self.role in (Role.OWNER, Role.ADMIN)))
    admin = _client(actors.admin)
    assert admin.get("/portal/audit/").status_code == 200
    monkeypatch.setattr(Membership, "can_manage", property(lambda self: False))
    assert admin.post("/portal/keys/new/", {"name": "x"}).status_code == 403
    assert admin.get("/portal/billing/").status_code == 403
