"""API keys in the portal: created and shown once, listed, revoked (form and HTMX), rotated."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tenants import keys as key_format
from tenants.models import ApiKey, AuditEvent
from tests.portal_helpers import Actors, build_actors

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r"leo_[A-Za-z0-9_\-]{43}")


@pytest.fixture
def actors() -> Actors:
    return build_actors()


@pytest.fixture
def owner(actors: Actors) -> Client:
    client = Client()
    client.force_login(actors.owner)
    return client


def test_create_shows_plaintext_once(actors: Actors, owner: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    response = owner.post("/portal/keys/new/", {"name": "ci", "expires_in_days": "30"})
    # POST/redirect/GET: the POST answers with a redirect, the plaintext is in no URL.
    assert response.status_code == 302 and response["Location"] == "/portal/keys/"
    assert not KEY_RE.search(response["Location"])
    response = owner.get("/portal/keys/")
    assert "no-store" in response["Cache-Control"]
    found = KEY_RE.findall(response.content.decode())
    assert len(set(found)) == 1
    plaintext = found[0]
    row = ApiKey.objects.get(tenant=actors.tenant, name="ci")
    assert plaintext.startswith(row.prefix)
    assert row.digest == key_format.digest(plaintext) and row.created_by == actors.owner
    assert row.expires_at is not None and row.expires_at - timezone.now() > timedelta(days=29)
    # Never again: not on the list page, not in any log line.
    assert plaintext not in owner.get("/portal/keys/").content.decode()
    assert row.prefix in owner.get("/portal/keys/").content.decode()
    assert plaintext not in caplog.text
    event = AuditEvent.objects.get(tenant=actors.tenant, action="api_key.created")
    assert event.actor == actors.owner and event.target == row.prefix and plaintext not in str(event.data)


def test_create_rejects_bad_input(owner: Client) -> None:
    response = owner.post("/portal/keys/new/", {"name": "", "expires_in_days": "-3"})
    assert response.status_code == 400
    assert b"errorlist" in response.content
    assert not KEY_RE.search(response.content.decode())


def test_revoke_by_form_and_by_htmx(actors: Actors, owner: Client) -> None:
    response = owner.post(f"/portal/keys/{actors.key.pk}/revoke/")
    assert response.status_code == 302
    actors.key.refresh_from_db()
    assert actors.key.status == "revoked"
    other, _ = ApiKey.issue(actors.tenant, name="second")
    response = owner.post(f"/portal/keys/{other.pk}/revoke/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.strip().startswith(f'<tr id="key-{other.pk}"') and "revoked" in body  # just the row
    assert AuditEvent.objects.filter(tenant=actors.tenant, action="api_key.revoked").count() == 2


def test_rotate_with_grace(actors: Actors, owner: Client) -> None:
    response = owner.post(f"/portal/keys/{actors.key.pk}/rotate/", {"old_key_expires": "3600"}, follow=True)
    assert response.redirect_chain == [("/portal/keys/", 302)]
    plaintext = KEY_RE.findall(response.content.decode())[0]
    new = ApiKey.objects.get(prefix=plaintext[: key_format.PREFIX_LENGTH])
    assert new.name == actors.key.name and new.status == "active"
    actors.key.refresh_from_db()
    assert actors.key.revoked_at is None
    assert timedelta(minutes=59) < actors.key.expires_at - timezone.now() <= timedelta(hours=1)
    # Rotating now revokes at once.
    owner.post(f"/portal/keys/{new.pk}/rotate/", {"old_key_expires": "0"})
    new.refresh_from_db()
    assert new.status == "revoked"
    assert AuditEvent.objects.filter(tenant=actors.tenant, action="api_key.rotated").count() == 2


def test_admin_manages_keys_member_does_not(actors: Actors) -> None:
    admin = Client()
    admin.force_login(actors.admin)
    assert admin.post("/portal/keys/new/", {"name": "by-admin"}).status_code == 302
    member = Client()
    member.force_login(actors.member)
    page = member.get("/portal/keys/").content.decode()
    assert "Create key" not in page and "Revoke" not in page
    assert member.post("/portal/keys/new/", {"name": "by-member"}).status_code == 403
    assert not ApiKey.objects.filter(name="by-member").exists()


def test_reload_after_create_makes_no_second_key(actors: Actors, owner: Client) -> None:
    """#15.12: reloading the page that shows a new key re-sends a GET, never the POST."""
    response = owner.post("/portal/keys/new/", {"name": "once"}, follow=True)
    assert len(KEY_RE.findall(response.content.decode())) >= 1
    for _ in range(2):  # what a browser's reload does after a redirect
        again = owner.get(response.redirect_chain[-1][0])
        assert again.status_code == 200 and not KEY_RE.search(again.content.decode())
    assert ApiKey.objects.filter(tenant=actors.tenant, name="once").count() == 1


def test_new_key_is_shown_only_in_its_tenant(actors: Actors) -> None:
    """A plaintext held for tenant A is not shown (and is dropped) if the next page is tenant B's."""
    from tenants.models import Membership, Role

    Membership.objects.create(user=actors.owner, tenant=actors.outsider_tenant, role=Role.MEMBER)
    client = Client()
    client.force_login(actors.owner)
    client.post("/portal/switch/", {"tenant": actors.tenant.pk})
    assert client.post("/portal/keys/new/", {"name": "a-only"}).status_code == 302
    client.post("/portal/switch/", {"tenant": actors.outsider_tenant.pk})
    assert not KEY_RE.search(client.get("/portal/keys/").content.decode())
