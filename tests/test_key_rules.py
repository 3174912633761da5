"""#16.3: whether a key may be used, and recording its use, are the model's rules
(`ApiKey.objects.usable()` / `with_usable()`, `ApiKey.touch`), and authentication goes through
them: one query per load, the touch throttled, a key never remembered past its expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from tenants import auth, models
from tenants.models import LAST_USED_RESOLUTION, ApiKey, Tenant


def _load(plaintext: str) -> auth.Principal | None:
    return auth._load(plaintext[:auth.keys.PREFIX_LENGTH], plaintext)


def _keys() -> dict[str, tuple[ApiKey, str]]:
    tenant = Tenant.create("Keys")
    off = Tenant.create("Off", is_active=False)
    now = timezone.now()
    made = {
        "active": ApiKey.issue(tenant, name="active"),
        "expiring later": ApiKey.issue(tenant, name="later", expires_at=now + timedelta(days=1)),
        "revoked": ApiKey.issue(tenant, name="revoked"),
        "expired": ApiKey.issue(tenant, name="expired", expires_at=now - timedelta(seconds=1)),
        "tenant disabled": ApiKey.issue(off, name="off"),
    }
    made["revoked"][0].revoke()
    return made


@pytest.mark.django_db
def test_auth_accepts_exactly_the_usable_keys_and_says_why_not(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    made = _keys()
    usable = set(ApiKey.objects.usable().values_list("name", flat=True))
    assert usable == {"active", "later"}
    why = {"revoked": "revoked", "expired": "expired", "tenant disabled": "tenant is disabled"}
    for label, (key, plaintext) in made.items():
        if key.name in usable:
            with django_assert_num_queries(1):  # the key and its usability in one query
                principal = _load(plaintext)
            assert principal is not None and principal.api_key_id == key.pk
        else:
            with pytest.raises(auth.AuthError) as refused:
                _load(plaintext)
            assert why[label] in str(refused.value), label


@pytest.mark.django_db
def test_auth_follows_the_rule_changed_in_its_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were auth to judge keys by a rule of its own, it would still accept this key."""
    key, plaintext = ApiKey.issue(Tenant.create("Ruled"))
    assert _load(plaintext) is not None
    monkeypatch.setattr(models, "_usable", lambda now: Q(pk__in=[]))
    assert not ApiKey.objects.usable().exists()
    with pytest.raises(auth.AuthError):
        _load(plaintext)


@pytest.mark.django_db
def test_touch_writes_at_most_once_per_resolution() -> None:
    key, _ = ApiKey.issue(Tenant.create("Touched"))
    now = timezone.now()
    first, second = ApiKey.objects.get(pk=key.pk), ApiKey.objects.get(pk=key.pk)  # two workers' copies
    assert first.touch(now) is True
    assert second.touch(now + timedelta(seconds=5)) is False  # its copy is stale; the database is not
    assert first.touch(now + timedelta(seconds=5)) is False  # no query: its own copy says too soon
    assert ApiKey.objects.get(pk=key.pk).last_used_at == now
    assert first.touch(now + LAST_USED_RESOLUTION) is True
    assert ApiKey.objects.get(pk=key.pk).last_used_at == now + LAST_USED_RESOLUTION


@pytest.mark.django_db(transaction=True)  # authenticate reads through its own thread's connection
def test_authenticate_touches_through_the_model_and_forgets_an_expired_key(monkeypatch: pytest.MonkeyPatch) -> None:
    auth.forget_cached_keys()
    key, plaintext = ApiKey.issue(Tenant.create("Auth"), expires_at=timezone.now() + timedelta(seconds=1))
    touched: list[int] = []
    real_touch = ApiKey.touch

    def spy(self: ApiKey, now=None) -> bool:  # type: ignore[no-untyped-def]
        touched.append(self.pk)
        return real_touch(self, now)

    monkeypatch.setattr(ApiKey, "touch", spy)

    async def calls() -> None:
        for _ in range(3):
            await auth.authenticate(f"Bearer {plaintext}", "192.0.2.7")
        await asyncio.sleep(0.5)  # the touch runs in the background
        # Within CACHE_SECONDS of the load, yet past the key's expiry: refused, by `usable()`.
        await asyncio.sleep(max(0.0, (key.expires_at - timezone.now()).total_seconds()) + 0.05)
        with pytest.raises(auth.AuthError, match="expired"):
            await auth.authenticate(f"Bearer {plaintext}", "192.0.2.7")

    asyncio.run(calls())
    assert touched == [key.pk]  # three calls, one touch
    assert ApiKey.objects.get(pk=key.pk).last_used_at is not None
