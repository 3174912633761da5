"""#15.11 and #15.13: emails name the configured host; a favicon; allauth's account, email and
two-factor pages keep the portal's navigation; an invited person who sets a password lands signed
in, in the tenant that invited them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.sites.models import Site
from django.contrib.staticfiles import finders
from django.core import mail
from django.test import Client

from tenants.models import Membership, Role, Tenant, User
from tenants.portal.site import configured_host, sync_site
from tests.portal_helpers import Actors, build_actors

pytestmark = pytest.mark.django_db


def test_site_is_the_configured_host(settings) -> None:  # type: ignore[no-untyped-def]
    assert Site.objects.get_current().domain == configured_host() != "example.com"
    settings.LEO_BASE_URL = "https://leo.acme.test"
    from django.apps import apps

    sync_site(apps.get_app_config("sites"))
    Site.objects.clear_cache()
    assert (Site.objects.get_current().domain, Site.objects.get_current().name) == ("leo.acme.test",) * 2
    # allauth's own mail (a password reset) names it.
    actors = build_actors()
    Client().post("/accounts/password/reset/", {"email": actors.owner.email})
    body = mail.outbox[-1].subject + mail.outbox[-1].body
    assert "leo.acme.test" in body and "example.com" not in body.replace(actors.owner.email, "")


def test_favicon_on_every_page() -> None:
    html = Client().get("/accounts/login/").content.decode()
    href = re.search(r'<link rel="icon" href="([^"]+)"', html).group(1)
    assert href.endswith("favicon.svg")
    assert Path(finders.find("favicon.svg")).read_text().startswith("<svg")


def test_account_pages_keep_the_portal_navigation() -> None:
    actors: Actors = build_actors()
    client = Client()
    client.force_login(actors.owner)
    for url in ("/accounts/email/", "/accounts/password/change/", "/accounts/2fa/"):
        response = client.get(url, follow=True)
        html = response.content.decode()
        assert response.status_code == 200, url
        assert 'class="sidenav"' in html and 'href="/portal/requests/"' in html, url
        assert actors.tenant.name in html, url
    # Signed out, or without a tenant: the plain frame, no portal navigation.
    assert 'class="sidenav"' not in Client().get("/accounts/login/").content.decode()
    nobody = Client()
    nobody.force_login(actors.nobody)
    assert 'class="sidenav"' not in nobody.get("/accounts/email/").content.decode()


def _set_password_from_invite(owner: Client | None, email: str) -> Client:
    if owner is not None:
        assert owner.post("/portal/members/invite/", {"email": email, "role": "member"}).status_code == 302
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", mail.outbox[-1].body).group(1)
    guest = Client()
    form_url = guest.get(link)["Location"]
    response = guest.post(form_url, {"password1": "a-long-new-pass-42", "password2": "a-long-new-pass-42"},
                          follow=True)
    assert response.status_code == 200
    return guest


def test_invitee_lands_signed_in_in_the_inviting_tenant() -> None:
    actors: Actors = build_actors()
    owner = Client()
    owner.force_login(actors.owner)
    assert owner.post("/portal/members/invite/", {"email": "invitee@example.com", "role": "member"}).status_code == 302
    # Staff also put the new account in an older tenant that sorts first: they must still land in
    # the tenant that invited them.
    first = Tenant.objects.create(name="AAA earlier team", slug=f"earlier-{actors.tenant.pk}")
    person = User.objects.get(email="invitee@example.com")
    older = Membership.objects.create(user=person, tenant=first, role=Role.MEMBER)
    Membership.objects.filter(pk=older.pk).update(created_at=older.created_at.replace(year=2020))
    guest = _set_password_from_invite(None, "invitee@example.com")
    page = guest.get("/portal/")
    assert page.status_code == 200  # signed in: no redirect to the sign-in form
    html = page.content.decode()
    assert f'value="{actors.tenant.pk}" selected' in html  # the switcher shows the inviting tenant
    # A later password reset signs nobody in.
    guest.logout()
    Client().post("/accounts/password/reset/", {"email": "invitee@example.com"})
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", mail.outbox[-1].body).group(1)
    again = Client()
    form_url = again.get(link)["Location"]
    again.post(form_url, {"password1": "another-long-pass-43", "password2": "another-long-pass-43"})
    assert again.get("/portal/")["Location"].startswith("/accounts/login/")
