"""Access to every portal URL by three actors, and CSRF on every POST (HTMX ones included).

The URL list is read from the URL resolver, so a page added later is covered without editing this
file: each `<pk>`/`<request_id>` is filled with one of the victim tenant's objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.portal_helpers import Actors, build_actors

pytestmark = pytest.mark.django_db

# Which victim object fills a URL's argument, by the URL's first segment under /portal/.
_OBJECT_FOR = {"keys": "key", "members": "membership", "settings": "credential", "cache": "entry",
               "requests": "log"}


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, route)
        elif isinstance(p, URLPattern):
            yield route


def portal_routes() -> list[str]:
    return sorted({r for r in _walk(get_resolver().url_patterns) if r.startswith("portal/")})


def fill(route: str, actors: Actors) -> str:
    path = "/" + route
    section = route.split("/")[1] if route.count("/") > 1 else ""
    obj = getattr(actors, _OBJECT_FOR.get(section, "key"))

    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[-1]
        return str(obj.request_id if name == "request_id" else obj.pk)

    return re.sub(r"<([^>]+)>", value, path)


def _post_only(url: str) -> bool:
    return url.rstrip("/").rsplit("/", 1)[-1] in ("revoke", "rotate", "role", "remove", "delete", "feedback")


@pytest.fixture
def actors() -> Actors:
    return build_actors()


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_every_route_is_covered(actors: Actors) -> None:
    routes = portal_routes()
    # The identity and optimizer pages are all there (billing's join them when that app adds its own).
    for expected in ("portal/keys/", "portal/members/", "portal/requests/<str:request_id>/", "portal/cache/",
                     "portal/settings/", "portal/settings/providers/", "portal/audit/", "portal/"):
        assert expected in routes


def test_nobody_gets_404_everywhere(actors: Actors) -> None:
    """A signed-in user without a tenant: every portal URL, GET and POST, is a 404."""
    client = _client(actors.nobody)
    for route in portal_routes():
        url = fill(route, actors)
        assert client.get(url).status_code == 404, url
        assert client.post(url, {}).status_code == 404, url


def test_outsider_gets_404_for_every_victim_object(actors: Actors) -> None:
    """A member of another tenant: every URL naming the victim's objects is a 404 (GET and POST),
    and the pages without ids show the outsider's own tenant, never the victim's data."""
    client = _client(actors.outsider)
    secrets = [actors.key.prefix, actors.log.request_id, "victim question", "victim-provider", actors.tenant.name]
    for route in portal_routes():
        url = fill(route, actors)
        if "<" in route:
            # POST-only actions answer GET with 405 before looking anything up, the same for a
            # victim's id as for one that never existed; so GET tells nothing, and POST is a 404.
            assert client.get(url).status_code in ((404, 405) if _post_only(url) else (404,)), url
            assert client.post(url, {"role": "owner", "correct": "0"}).status_code == 404, url
        else:
            response = client.get(url)
            body = response.content.decode() if not getattr(response, "streaming", False) else \
                b"".join(response.streaming_content).decode()
            for secret in secrets:
                assert secret not in body, (url, secret)
    # Nor can the outsider switch into the victim tenant.
    assert client.post("/portal/switch/", {"tenant": actors.tenant.pk}).status_code == 404
    # And nothing they could POST changed the victim's objects.
    actors.key.refresh_from_db()
    assert actors.key.revoked_at is None
    actors.membership.refresh_from_db()
    assert actors.membership.role == "member"


def test_anonymous_is_sent_to_sign_in(actors: Actors) -> None:
    client = Client()
    for route in portal_routes():
        response = client.get(fill(route, actors))
        assert response.status_code == 302, route
        assert response["Location"].startswith("/accounts/login/"), route


MANAGE_POSTS = [
    ("/portal/keys/new/", {"name": "m"}),
    ("/portal/keys/{key}/revoke/", {}),
    ("/portal/keys/{key}/rotate/", {"old_key_expires": "0"}),
    ("/portal/members/invite/", {"email": "x@example.com", "role": "member"}),
    ("/portal/members/{membership}/role/", {"role": "admin"}),
    ("/portal/members/{membership}/remove/", {}),
    ("/portal/settings/providers/new/", {"name": "p", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-123456789",
                                         "priority": 1}),
    ("/portal/settings/providers/{credential}/delete/", {}),
    ("/portal/settings/", {"prompt_mode": "off"}),
    ("/portal/cache/purge/", {}),
    ("/portal/cache/{entry}/delete/", {}),
]


def _format(url: str, actors: Actors) -> str:
    return url.format(key=actors.key.pk, membership=actors.membership.pk, credential=actors.credential.pk,
                      entry=actors.entry.pk)


def test_member_cannot_manage(actors: Actors) -> None:
    """Role member: 403 on every management action, and nothing changes."""
    from optimizer.models import CacheEntry
    from tenants.models import ApiKey, Membership, ProviderCredential

    client = _client(actors.member)
    before = (ApiKey.objects.count(), Membership.objects.count(), ProviderCredential.objects.count(),
              CacheEntry.objects.count())
    for url, data in MANAGE_POSTS:
        assert client.post(_format(url, actors), data).status_code == 403, url
    assert client.get("/portal/audit/").status_code == 403
    assert (ApiKey.objects.count(), Membership.objects.count(), ProviderCredential.objects.count(),
            CacheEntry.objects.count()) == before
    actors.key.refresh_from_db()
    assert actors.key.revoked_at is None
    # Reading is allowed.
    for url in ("/portal/", "/portal/keys/", "/portal/members/", "/portal/requests/", "/portal/cache/",
                "/portal/settings/", "/portal/settings/providers/", f"/portal/requests/{actors.log.request_id}/"):
        assert client.get(url).status_code == 200, url


def test_csrf_holds_on_every_post(actors: Actors) -> None:
    """Every POST route refuses a request without the CSRF token (403), whether a form post or an
    HTMX one; the same request with the token (as HTMX sends it, in X-CSRFToken) gets through."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(actors.owner)
    client.get("/portal/keys/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    post_routes = [_format(url, actors) for url, _ in MANAGE_POSTS] + [
        "/portal/switch/", f"/portal/requests/{actors.log.request_id}/feedback/"]
    for url in post_routes:
        for headers in ({}, {"HX-Request": "true"}):
            response = client.post(url, {}, headers=headers)
            assert response.status_code == 403, url
            assert b"CSRF" in response.content, url
    # With the token, HTMX style: past CSRF (the key revoke answers with the swapped row).
    response = client.post(f"/portal/keys/{actors.key.pk}/revoke/", {},
                           headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 200
    assert b"revoked" in response.content
    # Every other POST route also passes CSRF with the token (whatever the action then answers).
    for url in post_routes:
        response = client.post(url, {}, headers={"X-CSRFToken": token})
        assert b"CSRF verification failed" not in response.content, url
