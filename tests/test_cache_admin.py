"""Cache management: stats, purge (all, by model, by age) and delete one, through `/v1/cache` and
`python manage.py cache`; eviction by TTL and by the tenant's size cap (least recently used); the
periodic task. Entries are made by real requests through a live server, and a purged answer must
stop being served (exact and semantic), which the fake upstream's counters show.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from optimizer.cache_admin import evict, purge
from optimizer.models import CacheEntry, OptimizerSettings
from optimizer.tasks import evict_caches
from tests.conftest import TenantKit, wait_for_rows
from tests.portal_helpers import sign_in_staff
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

SHARED_STATE = bool(os.environ.get("REDIS_URL"))


def question(topic: str = "alloy") -> str:
    return f"What is the density of the {topic} {uuid.uuid4().hex[:10]}?"


@pytest.fixture
def kit(make_tenant: Any) -> TenantKit:
    """A tenant with the exact cache only. These questions differ only in a random code, which the
    semantic cache may match to each other (see test_a_purged_entry_is_not_served_semantically for
    the semantic side of a purge)."""
    kit = make_tenant("Admin")
    OptimizerSettings.objects.create(tenant=kit.tenant, semantic_cache=False, decomposition=False)
    return kit


def ask(kit: TenantKit, q: str, model: str = "gpt-4o-mini", **headers: str) -> str:
    raw = kit.client().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": q}], extra_headers=headers)
    return raw.headers["x-leo-cache"]


def cached(kit: TenantKit, *questions: tuple[str, str]) -> dict[str, CacheEntry]:
    """Ask each (question, model) once and return its committed entry by question."""
    for q, model in questions:
        assert ask(kit, q, model) == "miss"
    rows = wait_for_rows(CacheEntry, len(questions), tenant=kit.tenant)
    by_text = {r.request_text: r for r in rows}
    return {q: by_text[q] for q, _ in questions}


def wait_hits(kit: TenantKit, total: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(CacheEntry.objects.filter(tenant=kit.tenant).values_list("hits", flat=True)) >= total:
            return
        time.sleep(0.05)


# --- the API -----------------------------------------------------------------------------------

def test_stats(kit: TenantKit) -> None:
    a, b = question(), question()
    entries = cached(kit, (a, "gpt-4o-mini"), (b, "gpt-4o"))
    assert ask(kit, a) == "exact" and ask(kit, a) == "exact"
    wait_hits(kit, 2)
    with kit.http() as http:
        stats = http.get("/v1/cache").json()
    assert stats["entries"] == 2 and stats["hits"] == 2
    assert stats["bytes"] == sum(e.size_bytes for e in entries.values()) > 0
    assert {m["model"]: (m["entries"], m["hits"]) for m in stats["by_model"]} == \
        {"gpt-4o-mini": (1, 2), "gpt-4o": (1, 0)}
    assert stats["oldest"] and stats["newest"]


def test_purge_by_model_then_everything(kit: TenantKit, fake_upstream: Any) -> None:
    mini, big = question(), question()
    cached(kit, (mini, "gpt-4o-mini"), (big, "gpt-4o"))
    with kit.http() as http:
        r = http.delete("/v1/cache", params={"model": "gpt-4o"})
        assert r.status_code == 200 and r.json() == {"deleted": 1}
        assert ask(kit, mini) == "exact"
        assert ask(kit, big, "gpt-4o") == "miss"  # gone from the shared exact cache too: asked upstream
        wait_for_rows(CacheEntry, 2, tenant=kit.tenant)  # the re-asked answer is stored again
        r = http.delete("/v1/cache")
        assert r.json() == {"deleted": 2} and http.get("/v1/cache").json()["entries"] == 0
    before = fake_upstream.stats()["chat"]
    assert ask(kit, mini) == "miss" and ask(kit, big, "gpt-4o") == "miss"
    assert fake_upstream.stats()["chat"] == before + 2


def test_purge_by_age(kit: TenantKit) -> None:
    old, new = question(), question()
    entries = cached(kit, (old, "gpt-4o-mini"), (new, "gpt-4o-mini"))
    CacheEntry.objects.filter(pk=entries[old].pk).update(created_at=timezone.now() - timedelta(hours=2))
    with kit.http() as http:
        assert http.delete("/v1/cache", params={"older_than": 3600}).json() == {"deleted": 1}
    assert ask(kit, old) == "miss" and ask(kit, new) == "exact"


def test_delete_one_entry_only_for_its_tenant(kit: TenantKit, make_tenant: Any) -> None:
    a, b = question(), question()
    entries = cached(kit, (a, "gpt-4o-mini"), (b, "gpt-4o-mini"))
    stranger = make_tenant("Stranger")
    with stranger.http() as http:
        r = http.delete(f"/v1/cache/{entries[a].pk}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert http.delete("/v1/cache").json() == {"deleted": 0}  # a purge never reaches other tenants
    with kit.http() as http:
        assert http.delete(f"/v1/cache/{entries[a].pk}").json() == {"deleted": 1}
        assert http.delete(f"/v1/cache/{entries[a].pk}").status_code == 404
    assert ask(kit, a) == "miss" and ask(kit, b) == "exact"


def test_bad_requests_get_the_openai_envelope(kit: TenantKit) -> None:
    with kit.http() as http:
        for bad in ("yesterday", "-5", "1e99"):
            r = http.delete("/v1/cache", params={"older_than": bad})
            assert r.status_code == 400 and r.json()["error"]["param"] == "older_than", bad
        r = http.delete("/v1/cache/not-a-number")
        assert r.status_code == 404
    with kit.http() as http:
        http.headers["Authorization"] = "Bearer leo_" + "x" * 43
        r = http.get("/v1/cache")
        assert r.status_code == 401 and "error" in r.json()


def test_a_purged_entry_is_not_served_semantically(make_tenant: Any) -> None:
    kit = make_tenant("Semantic")
    original, paraphrase = "What is the capital city of Australia?", "Which city is the capital of Australia?"
    cached(kit, (original, "gpt-4o-mini"))
    deadline = time.monotonic() + 10
    while ask(kit, paraphrase, **{"Cache-Control": "no-store"}) != "semantic" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ask(kit, paraphrase, **{"Cache-Control": "no-store"}) == "semantic"
    with kit.http() as http:
        assert http.delete("/v1/cache").json() == {"deleted": 1}
    assert ask(kit, paraphrase, **{"Cache-Control": "no-store"}) == "miss"
    assert ask(kit, original) == "miss"


# --- the management command -------------------------------------------------------------------

def command(*args: str) -> str:
    out = io.StringIO()
    call_command("cache", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_management_command(kit: TenantKit) -> None:
    a, b, c = question(), question(), question()
    entries = cached(kit, (a, "gpt-4o-mini"), (b, "gpt-4o"), (c, "gpt-4o-mini"))
    tid = str(kit.tenant.pk)
    assert '"entries": 3' in command("stats", tid)
    assert '"entries": 3' in command("stats", kit.tenant.slug)
    assert "deleted 1 entries" in command("purge", tid, "--model", "gpt-4o")
    assert f"deleted entry {entries[a].pk}" in command("delete", tid, "--id", str(entries[a].pk))
    with pytest.raises(CommandError):
        command("delete", tid, "--id", str(entries[a].pk))
    with pytest.raises(CommandError):
        command("delete", tid)
    with pytest.raises(CommandError):
        command("stats", "no-such-tenant")
    assert "deleted 0 entries" in command("purge", tid, "--older-than", "3600")
    assert list(CacheEntry.objects.filter(tenant=kit.tenant).values_list("request_text", flat=True)) == [c]
    left = 1
    if SHARED_STATE:  # the command removed the answers from the shared exact cache too
        assert ask(kit, a) == "miss" and ask(kit, b, "gpt-4o") == "miss" and ask(kit, c) == "exact"
        left = len(wait_for_rows(CacheEntry, 3, tenant=kit.tenant))  # a and b were stored again
    assert f"deleted {left} entries" in command("purge", tid)
    assert CacheEntry.objects.filter(tenant=kit.tenant).count() == 0


# --- eviction ----------------------------------------------------------------------------------

def _entry(tenant: Any, n: int, *, age_s: float, last_hit_s: float | None = None, ttl_s: float = 3600) -> CacheEntry:
    now = timezone.now()
    return CacheEntry.objects.create(
        tenant=tenant, scope_hash="s" * 64, key_hash=f"{n:064d}", model="gpt-4o-mini", request_text=f"q{n}",
        response={"choices": []}, size_bytes=100, expires_at=now - timedelta(seconds=age_s) + timedelta(seconds=ttl_s),
        last_hit_at=now - timedelta(seconds=last_hit_s) if last_hit_s is not None else None)


def _set_created(entry: CacheEntry, age_s: float) -> None:
    CacheEntry.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(seconds=age_s))


def test_evict_drops_expired_then_least_recently_used(kit: TenantKit) -> None:
    """Rows made directly: eviction is a database operation, and the ages must be exact."""
    import asyncio

    t = kit.tenant
    expired = _entry(t, 1, age_s=100, ttl_s=50)
    old_never_hit = _entry(t, 2, age_s=5000, ttl_s=10_000)
    old_hit_recently = _entry(t, 3, age_s=6000, last_hit_s=10, ttl_s=10_000)
    hit_long_ago = _entry(t, 4, age_s=4000, last_hit_s=3000, ttl_s=10_000)
    fresh_never_hit = _entry(t, 5, age_s=1, ttl_s=10_000)
    for e, age in ((expired, 100), (old_never_hit, 5000), (old_hit_recently, 6000), (hit_long_ago, 4000),
                   (fresh_never_hit, 1)):
        _set_created(e, age)
    # cap 2 of 4 live entries: the two least recently used go (last use = last hit, else creation)
    assert asyncio.run(evict(t.pk, 2)) == 3
    left = set(CacheEntry.objects.filter(tenant=t).values_list("pk", flat=True))
    assert left == {old_hit_recently.pk, fresh_never_hit.pk}
    assert asyncio.run(evict(t.pk, 2)) == 0


def test_evict_caches_task_uses_each_tenants_cap(make_tenant: Any) -> None:
    capped, default = make_tenant("Capped"), make_tenant("Default")
    OptimizerSettings.objects.create(tenant=capped.tenant, cache_max_entries=1)
    for n in range(3):
        _set_created(_entry(capped.tenant, n, age_s=0), 300 - n)  # n=2 is the newest
        _entry(default.tenant, 10 + n, age_s=0)
    _entry(default.tenant, 99, age_s=100, ttl_s=10)  # expired
    evicted = evict_caches()
    assert evicted[capped.tenant.pk] == 2 and evicted[default.tenant.pk] == 1
    assert list(CacheEntry.objects.filter(tenant=capped.tenant).values_list("key_hash", flat=True)) == [f"{2:064d}"]
    assert CacheEntry.objects.filter(tenant=default.tenant).count() == 3
    assert "evicted 0 entries" in command("evict", str(capped.tenant.pk))


def test_eviction_removes_the_answer_from_the_exact_cache(make_tenant: Any) -> None:
    """An evicted entry is not served again (with Redis: the shared value is deleted at once)."""
    if not SHARED_STATE:
        pytest.skip("the test process can only reach the server's exact cache through Redis: set REDIS_URL")
    import asyncio

    kit = make_tenant("Evicted")
    old, new = question(), question()
    entries = cached(kit, (old, "gpt-4o-mini"), (new, "gpt-4o-mini"))
    _set_created(entries[old], 600)
    assert asyncio.run(evict(kit.tenant.pk, 1)) == 1
    assert ask(kit, old) == "miss" and ask(kit, new) == "exact"


def test_purge_in_process_reaches_the_server_through_redis(make_tenant: Any) -> None:
    if not SHARED_STATE:
        pytest.skip("needs REDIS_URL")
    import asyncio

    kit = make_tenant("Purged")
    for _ in range(3):  # a new event loop each time, as successive management commands or Celery tasks use
        q = question()
        cached(kit, (q, "gpt-4o-mini"))
        assert asyncio.run(purge(kit.tenant.pk)) == 1
        assert ask(kit, q) == "miss"
        wait_for_rows(CacheEntry, 1, tenant=kit.tenant)
        asyncio.run(purge(kit.tenant.pk))


@pytest.mark.django_db
def test_nul_characters_never_reach_an_entry_row() -> None:
    """PostgreSQL's text and jsonb refuse NUL. An answer holding one is not cached at all (so the
    exact cache, the rows, purges and stats agree); a NUL in the question is dropped from the
    entry's text, which only the verifier and the portal read."""
    from optimizer.pipeline.exact_cache import Cached, record_entry
    from optimizer.pipeline.responses import is_storable

    def answer(content: str) -> dict[str, Any]:
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}]}

    assert is_storable(answer("ab")) and is_storable(answer("a literal \\u0000 is fine"))
    assert not is_storable(answer("a\x00b"))
    cached = Cached(response=answer("ab"), prompt_tokens=1, completion_tokens=1, request_text="q\x00?",
                    key_hash="k" * 64)
    row = record_entry(1, cached, scope_hash="s", model="m", namespace="", ttl=60, embedding=None)
    assert row.request_text == "q?"


# --- every delete path purges every layer (issue #13, item 10) ----------------------------------

def _staff_admin(kit: TenantKit) -> Any:
    """An httpx client signed in to the live server's Django admin as staff (password and TOTP)."""
    import httpx

    http = httpx.Client(base_url=kit.base_url.removesuffix("/v1"), timeout=30)
    sign_in_staff(http, f"staff-{uuid.uuid4().hex[:8]}@example.com")
    return http


def _csrf(http: Any) -> str:
    return http.cookies["csrftoken"]


def test_admin_delete_removes_the_answer_from_the_exact_cache(kit: TenantKit, fake_upstream: Any) -> None:
    """The admin runs in the server process, so this holds with Redis and with the embedded
    process-local state alike: the answer deleted in the admin is asked upstream again."""
    a, b, c, d = question(), question(), question(), question()
    entries = cached(kit, (a, "gpt-4o-mini"), (b, "gpt-4o-mini"), (c, "gpt-4o-mini"), (d, "gpt-4o-mini"))
    admin = _staff_admin(kit)
    try:
        # one entry, from its own delete page
        r = admin.post(f"/admin/optimizer/cacheentry/{entries[a].pk}/delete/",
                       data={"post": "yes", "csrfmiddlewaretoken": _csrf(admin)})
        assert r.status_code == 302, r.text[:300]
        # two more, with the changelist's bulk action
        r = admin.post("/admin/optimizer/cacheentry/", data={
            "action": "delete_selected", "post": "yes", "csrfmiddlewaretoken": _csrf(admin),
            "_selected_action": [str(entries[b].pk), str(entries[c].pk)]})
        assert r.status_code == 302, r.text[:300]
    finally:
        admin.close()
    assert set(CacheEntry.objects.filter(tenant=kit.tenant).values_list("request_text", flat=True)) == {d}
    before = fake_upstream.stats()["chat"]
    assert [ask(kit, q) for q in (a, b, c, d)] == ["miss", "miss", "miss", "exact"]
    assert fake_upstream.stats()["chat"] == before + 3


def test_the_cache_layer_is_the_only_code_that_deletes_entries() -> None:
    """A static guard on the rule above: outside optimizer/cache_admin.py no product code calls
    `.delete()` on CacheEntry rows (a queryset delete there would skip the exact cache)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for app in ("optimizer", "tenants", "billing", "leo_optima"):
        for path in (root / app).rglob("*.py"):
            if path.name == "cache_admin.py" or "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "delete":
                    receiver = ast.unparse(node.func.value)
                    if "CacheEntry" in receiver or "entr" in receiver.lower():
                        offenders.append(f"{path.relative_to(root)}:{node.lineno}: {receiver}.delete()")
    assert offenders == []
