"""#16.3: each app contributes its own portal navigation (AppConfig.portal_nav, tenants/nav.py); the
tenants app's frame names no other app's page, and shows the entries by order, by role."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.test import Client

from tenants.models import Membership, Role
from tenants.nav import NavEntry, registered
from tests.portal_helpers import Actors, build_actors

pytestmark = pytest.mark.django_db

EVERYONE = [("Overview", "/portal/"), ("Requests", "/portal/requests/"), ("Breakdowns", "/portal/breakdown/"),
            ("Cache", "/portal/cache/"), ("API keys", "/portal/keys/"), ("Members", "/portal/members/"),
            ("Settings", "/portal/settings/"), ("Quick start", "/portal/setup/")]
AUDIT = ("Audit log", "/portal/audit/")
BILLING = ("Billing", "/portal/billing/")


@pytest.fixture
def actors() -> Actors:
    return build_actors()


def _nav(user, path: str = "/portal/keys/") -> list[tuple[str, str, bool]]:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    page = client.get(path)
    assert page.status_code == 200, path
    nav = page.content.decode().split('<nav class="sidenav"')[1].split("</nav>")[0]
    return [(label, href, bool(current)) for href, current, label in
            re.findall(r'<li><a href="([^"]+)"( aria-current="page")?>([^<]+)</a></li>', nav)]


def test_each_role_sees_the_same_entries_as_before(actors: Actors) -> None:
    links = {who: [(label, href) for label, href, _ in _nav(user)]
             for who, user in (("owner", actors.owner), ("admin", actors.admin), ("member", actors.member))}
    assert links["owner"] == [*EVERYONE, AUDIT, BILLING]
    assert links["admin"] == [*EVERYONE, BILLING]
    assert links["member"] == EVERYONE


@pytest.mark.parametrize(("path", "current"), [("/portal/", "Overview"), ("/portal/cache/", "Cache"),
                                               ("/portal/settings/providers/", "Settings"),
                                               ("/portal/audit/", "Audit log"), ("/portal/billing/", "Billing")])
def test_the_current_section_is_marked(actors: Actors, path: str, current: str) -> None:
    assert [label for label, _, is_current in _nav(actors.owner, path) if is_current] == [current]


def test_entries_come_from_the_apps_registry(actors: Actors, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that adds an entry gets it into the frame; the frame itself lists none."""
    contributors = {config.label for config in apps.get_app_configs() if getattr(config, "portal_nav", ())}
    assert contributors == {"tenants", "optimizer", "billing"}
    assert [entry.label for entry in registered()] == [label for label, _ in (*EVERYONE, AUDIT, BILLING)]
    optimizer = apps.get_app_config("optimizer")
    extra = NavEntry("Latency", "optimizer_portal:requests_csv", section="latency", order=35,
                     visible=lambda membership: membership.is_owner)
    monkeypatch.setattr(optimizer, "portal_nav", (*optimizer.portal_nav, extra))
    labels = [label for label, _, _ in _nav(actors.owner)]
    assert labels.index("Latency") == labels.index("Breakdowns") + 1
    assert "Latency" not in [label for label, _, _ in _nav(actors.member)]


def test_who_sees_an_entry_is_asked_of_the_membership(actors: Actors, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the frame to check roles by a rule of its own, this change would not reach it."""
    monkeypatch.setattr(Membership, "is_owner", property(lambda self: self.role in (Role.OWNER, Role.ADMIN)))
    monkeypatch.setattr(Membership, "can_manage", property(lambda self: self.role == Role.OWNER))
    assert [label for label, _ in (*EVERYONE, AUDIT)] == [label for label, _, _ in _nav(actors.admin)]


def test_the_tenants_frame_names_no_other_apps_page() -> None:
    base = Path(settings.BASE_DIR, "templates", "portal", "base.html").read_text()
    assert not re.search(r'href="/', base)
    assert "optimizer" not in base and "billing" not in base
