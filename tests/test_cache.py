"""The exact cache through a live LEO server, the openai SDK as the client, the fake upstream behind.

What is proved here (issue 3, "Done means"): a stored answer is served again only inside the same
tenant and scope (system prompt, model, temperature, namespace); TTLs per tenant and per request,
expiry included; Cache-Control no-cache / no-store; cached answers replayed as real SSE streams with
usage; the X-LEO-* headers; the ledger's technique, tokens saved and dollars saved counted as
DESIGN.md says; and that tool calls, cut streams and errors are never stored.

Every test asks fresh questions of a fresh tenant, and reads the fake upstream's counters as
deltas, so tests never depend on each other's cache entries.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import openai
import pytest

from fake_upstream import answer_tag as _hex_tag
from optimizer.models import CacheEntry, ModelPrice, OptimizerSettings, RequestLog
from tests.conftest import TenantKit, wait_for_rows
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

MODEL = "gpt-4o-mini"


def answer_tag(text: str) -> str:
    """How the fake upstream's answer to `text` begins (DESIGN.md: the ANSWER tag)."""
    return f"ANSWER[{_hex_tag(text)}]"


def question() -> str:
    return f"What is the melting point of the alloy {uuid.uuid4().hex[:10]}?"


def ask(kit: TenantKit, content: str, *, headers: dict[str, str] | None = None,
        system: str | None = None, **params: Any) -> tuple[Any, dict[str, str]]:
    """One chat request; returns (parsed response, response headers)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    params.setdefault("model", MODEL)
    raw = kit.client().chat.completions.with_raw_response.create(messages=messages, extra_headers=headers or {},
                                                                 **params)
    return raw.parse(), dict(raw.headers)


def ask_stream(kit: TenantKit, content: str, *, include_usage: bool = True,
               headers: dict[str, str] | None = None) -> tuple[list[Any], dict[str, str]]:
    kwargs: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    raw = kit.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": content}], stream=True, extra_headers=headers or {},
        **kwargs)
    return list(raw.parse()), dict(raw.headers)


def chats(fake_upstream: Any) -> int:
    return int(fake_upstream.stats()["chat"])


def entries(kit: TenantKit) -> int:
    """The tenant's CacheEntry rows, once the write-behind queue has had time to flush."""
    time.sleep(0.3)  # rows are written behind (~20 ms in tests); an absent row has nothing to wait for
    return CacheEntry.objects.filter(tenant=kit.tenant).count()


# --- hits, headers, ledger --------------------------------------------------------------------

def test_exact_hit_same_answer_headers_and_honest_ledger(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    before = chats(fake_upstream)
    first, h1 = ask(kit, q)
    second, h2 = ask(kit, q)
    assert chats(fake_upstream) == before + 1, "the second request must not reach the upstream"
    assert h1["x-leo-cache"] == "miss" and h2["x-leo-cache"] == "exact"
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.choices[0].message.content.startswith(answer_tag(q))
    assert second.id != first.id  # a fresh id per request, the same content
    assert (second.usage.prompt_tokens, second.usage.completion_tokens) == \
        (first.usage.prompt_tokens, first.usage.completion_tokens)

    tokens = first.usage.prompt_tokens + first.usage.completion_tokens
    price = ModelPrice.objects.get(model=MODEL)
    dollars = (first.usage.prompt_tokens * price.input_per_million
               + first.usage.completion_tokens * price.output_per_million) / Decimal(1_000_000)
    assert h1["x-leo-tokens-saved"] == "0" and Decimal(h1["x-leo-cost-saved-usd"]) == 0
    assert int(h2["x-leo-tokens-saved"]) == tokens
    assert Decimal(h2["x-leo-cost-saved-usd"]) == dollars.quantize(Decimal("0.00000001"))
    assert "x-leo-similarity" not in h2

    [miss] = wait_for_rows(RequestLog, 1, request_id=h1["x-leo-request-id"])
    [hit] = wait_for_rows(RequestLog, 1, request_id=h2["x-leo-request-id"])
    assert (miss.technique, miss.upstream_calls, miss.tokens_saved, miss.saved_usd) == ("miss", 1, 0, 0)
    assert miss.cost_usd == dollars
    # Counterfactual = what the requested model would have charged for this request without LEO.
    assert (hit.technique, hit.upstream_calls, hit.prompt_tokens, hit.completion_tokens) == ("exact", 0, 0, 0)
    assert hit.cost_usd == 0 and hit.counterfactual_usd == dollars and hit.saved_usd == dollars
    assert hit.tokens_saved == tokens and hit.status_code == 200

    # The hit is counted on the entry (stats and LRU eviction read it).
    deadline = time.monotonic() + 10
    while CacheEntry.objects.get(tenant=kit.tenant).hits < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    entry = CacheEntry.objects.get(tenant=kit.tenant)
    assert entry.hits == 1 and entry.last_hit_at is not None
    assert entry.model == MODEL and entry.prompt_tokens == first.usage.prompt_tokens


# --- scope isolation --------------------------------------------------------------------------

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (first request's params, second request's params); the user question is the same
    "system prompt": ({"system": "You are terse."}, {"system": "You are verbose."}),
    "no system prompt vs one": ({}, {"system": "You are terse."}),
    "model": ({"model": "gpt-4o-mini"}, {"model": "gpt-4o"}),
    "temperature": ({"temperature": 0.2}, {"temperature": 0.9}),
    "max_tokens": ({"max_tokens": 400}, {"max_tokens": 300}),
    "namespace": ({"headers": {"X-LEO-Cache-Namespace": "team-a"}}, {"headers": {"X-LEO-Cache-Namespace": "team-b"}}),
    "namespace vs none": ({}, {"headers": {"X-LEO-Cache-Namespace": "team-a"}}),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_different_scope_misses_then_caches_on_its_own(name: str, kit: TenantKit, fake_upstream: Any) -> None:
    first_params, second_params = VARIANTS[name]
    q = question()
    before = chats(fake_upstream)
    _, h1 = ask(kit, q, **first_params)
    _, h2 = ask(kit, q, **second_params)
    assert (h1["x-leo-cache"], h2["x-leo-cache"]) == ("miss", "miss"), name
    assert chats(fake_upstream) == before + 2
    # Each scope has its own entry: both now hit.
    _, h3 = ask(kit, q, **first_params)
    _, h4 = ask(kit, q, **second_params)
    assert (h3["x-leo-cache"], h4["x-leo-cache"]) == ("exact", "exact")
    assert chats(fake_upstream) == before + 2


def test_another_tenant_never_gets_the_answer(make_tenant: Any, fake_upstream: Any) -> None:
    a, b = make_tenant("Alpha"), make_tenant("Beta")
    q = question()
    before = chats(fake_upstream)
    ask(a, q)
    _, hit_a = ask(a, q)
    _, h_b = ask(b, q)
    assert hit_a["x-leo-cache"] == "exact"
    assert h_b["x-leo-cache"] == "miss"  # neither exact nor semantic across tenants
    assert chats(fake_upstream) == before + 2


def test_whole_conversation_is_the_key(kit: TenantKit, fake_upstream: Any) -> None:
    """The same last question after a different earlier turn is another conversation."""
    q = question()
    history = [{"role": "user", "content": "Name a metal."}, {"role": "assistant", "content": "Copper."}]
    other = [{"role": "user", "content": "Name a gas."}, {"role": "assistant", "content": "Neon."}]
    client = kit.client()
    before = chats(fake_upstream)
    for turns in (history, other, history):
        client.chat.completions.create(model=MODEL, messages=[*turns, {"role": "user", "content": q}])
    assert chats(fake_upstream) == before + 2


def test_delivery_only_fields_share_the_entry(kit: TenantKit, fake_upstream: Any) -> None:
    """`user`, `metadata`, `stream` and `stream_options` change delivery, not the answer."""
    q = question()
    before = chats(fake_upstream)
    ask(kit, q, user="alice")
    _, h = ask(kit, q, user="bob")
    chunks, hs = ask_stream(kit, q)
    assert h["x-leo-cache"] == "exact" and hs["x-leo-cache"] == "exact"
    assert chats(fake_upstream) == before + 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith(answer_tag(q))


# --- non-deterministic requests: the tenant's policy -------------------------------------------

def test_nondeterministic_default_policy_caches_per_temperature(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    before = chats(fake_upstream)
    _, h1 = ask(kit, q, temperature=0.8)
    _, h2 = ask(kit, q, temperature=0.8)
    _, h3 = ask(kit, q, n=2)
    r4, h4 = ask(kit, q, n=2)
    assert [h["x-leo-cache"] for h in (h1, h2, h3, h4)] == ["miss", "exact", "miss", "exact"]
    assert len(r4.choices) == 2
    assert chats(fake_upstream) == before + 2


def test_nondeterministic_bypass_policy_never_caches(make_tenant: Any, fake_upstream: Any) -> None:
    kit = make_tenant("Fresh")
    OptimizerSettings.objects.create(tenant=kit.tenant, non_deterministic="bypass")
    q = question()
    before = chats(fake_upstream)
    heads = [ask(kit, q, temperature=0.8)[1] for _ in range(2)] + [ask(kit, q, n=2)[1] for _ in range(2)]
    assert [h["x-leo-cache"] for h in heads] == ["bypass"] * 4
    assert chats(fake_upstream) == before + 4
    # temperature 0 (and unset) is deterministic: cached as usual under this policy too
    _, d1 = ask(kit, q, temperature=0)
    _, d2 = ask(kit, q, temperature=0)
    assert (d1["x-leo-cache"], d2["x-leo-cache"]) == ("miss", "exact")
    assert entries(kit) == 1


# --- TTL ---------------------------------------------------------------------------------------

def test_default_ttl_is_seven_days(kit: TenantKit) -> None:
    ask(kit, question())
    [entry] = wait_for_rows(CacheEntry, 1, tenant=kit.tenant)
    assert abs((entry.expires_at - entry.created_at).total_seconds() - 7 * 24 * 3600) < 5


def test_request_ttl_header_sets_expiry_and_the_entry_expires(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    before = chats(fake_upstream)
    ask(kit, q, headers={"X-LEO-Cache-TTL": "2"})
    started = time.monotonic()
    _, h2 = ask(kit, q)
    assert time.monotonic() - started < 1.5, "too slow to test a 2 s TTL"
    assert h2["x-leo-cache"] == "exact"
    [entry] = wait_for_rows(CacheEntry, 1, tenant=kit.tenant)
    assert abs((entry.expires_at - entry.created_at).total_seconds() - 2) < 1
    time.sleep(2.5)
    _, h3 = ask(kit, q)
    assert h3["x-leo-cache"] == "miss"
    assert chats(fake_upstream) == before + 2


def test_tenant_ttl_applies_when_no_header(make_tenant: Any, fake_upstream: Any) -> None:
    kit = make_tenant("ShortLived")
    OptimizerSettings.objects.create(tenant=kit.tenant, cache_ttl_seconds=2)
    q = question()
    ask(kit, q)
    [entry] = wait_for_rows(CacheEntry, 1, tenant=kit.tenant)
    assert abs((entry.expires_at - entry.created_at).total_seconds() - 2) < 1
    time.sleep(2.5)
    before = chats(fake_upstream)
    _, h = ask(kit, q)
    assert h["x-leo-cache"] == "miss" and chats(fake_upstream) == before + 1
    # A request's own TTL overrides the tenant's.
    q2 = question()
    ask(kit, q2, headers={"X-LEO-Cache-TTL": "3600"})
    [long] = wait_for_rows(CacheEntry, 1, tenant=kit.tenant, request_text=q2)
    assert abs((long.expires_at - long.created_at).total_seconds() - 3600) < 5


def test_ttl_zero_stores_nothing_and_bad_ttl_is_a_clear_400(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    before = chats(fake_upstream)
    ask(kit, q, headers={"X-LEO-Cache-TTL": "0"})
    _, h = ask(kit, q)
    assert h["x-leo-cache"] == "miss" and chats(fake_upstream) == before + 2
    for bad in ("soon", "-5", "99999999999"):
        with pytest.raises(openai.BadRequestError) as err:
            ask(kit, q, headers={"X-LEO-Cache-TTL": bad})
        assert err.value.body["param"] == "X-LEO-Cache-TTL"
    with pytest.raises(openai.BadRequestError):
        ask(kit, q, headers={"X-LEO-Cache-Namespace": "n" * 101})


# --- Cache-Control -----------------------------------------------------------------------------

def test_no_cache_skips_the_lookup_but_stores(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    ask(kit, q)
    before = chats(fake_upstream)
    _, h = ask(kit, q, headers={"Cache-Control": "no-cache"})
    assert h["x-leo-cache"] == "miss" and chats(fake_upstream) == before + 1
    _, h = ask(kit, q)
    assert h["x-leo-cache"] == "exact" and chats(fake_upstream) == before + 1


def test_no_store_skips_storing_but_looks_up(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    before = chats(fake_upstream)
    _, h1 = ask(kit, q, headers={"Cache-Control": "no-store"})
    _, h2 = ask(kit, q)
    assert (h1["x-leo-cache"], h2["x-leo-cache"]) == ("miss", "miss")
    assert chats(fake_upstream) == before + 2
    _, h3 = ask(kit, q, headers={"Cache-Control": "no-store"})  # an existing entry is still served
    assert h3["x-leo-cache"] == "exact"
    assert entries(kit) == 1


def test_no_cache_no_store_bypasses(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    ask(kit, q)
    before = chats(fake_upstream)
    _, h = ask(kit, q, headers={"Cache-Control": "no-cache, no-store"})
    assert h["x-leo-cache"] == "bypass" and chats(fake_upstream) == before + 1
    [row] = wait_for_rows(RequestLog, 1, request_id=h["x-leo-request-id"])
    assert row.technique == "bypass" and row.tokens_saved == 0 and row.saved_usd == 0


# --- streams -----------------------------------------------------------------------------------

def test_cached_answer_replays_as_a_real_stream_with_usage(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    plain, _ = ask(kit, q)
    before = chats(fake_upstream)
    chunks, h = ask_stream(kit, q)
    assert h["x-leo-cache"] == "exact" and h["content-type"].startswith("text/event-stream")
    assert chats(fake_upstream) == before
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) >= 3, "a replayed hit must arrive as several chunks, not one blob"
    assert "".join(c.choices[0].delta.content for c in content) == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == \
        (plain.usage.prompt_tokens, plain.usage.completion_tokens)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    [row] = wait_for_rows(RequestLog, 1, request_id=h["x-leo-request-id"])
    assert row.technique == "exact" and row.stream
    assert row.tokens_saved == plain.usage.prompt_tokens + plain.usage.completion_tokens


def test_replayed_stream_without_include_usage_has_no_usage_chunk(kit: TenantKit) -> None:
    q = question()
    ask(kit, q)
    chunks, h = ask_stream(kit, q, include_usage=False)
    assert h["x-leo-cache"] == "exact"
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)


def test_a_streamed_answer_is_stored_and_served_as_json(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    before = chats(fake_upstream)
    chunks, h1 = ask_stream(kit, q)
    assert h1["x-leo-cache"] == "miss"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    wait_for_rows(CacheEntry, 1, tenant=kit.tenant)  # a stream is stored after its last chunk
    resp, h2 = ask(kit, q)
    assert h2["x-leo-cache"] == "exact" and chats(fake_upstream) == before + 1
    assert resp.choices[0].message.content == streamed
    assert resp.usage.completion_tokens == chunks[-1].usage.completion_tokens


# --- what is never stored ----------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look a thing up",
                                           "parameters": {"type": "object", "properties": {"query": {
                                               "type": "string"}}}}}]


def test_answers_that_call_tools_are_never_stored(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    before = chats(fake_upstream)
    for _ in range(2):
        resp, h = ask(kit, q, tools=TOOLS)
        assert resp.choices[0].finish_reason == "tool_calls" and h["x-leo-cache"] == "miss"
    for _ in range(2):
        raw = kit.client().chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": q}], tools=TOOLS, stream=True)
        chunks = list(raw.parse())
        assert any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
        assert raw.headers["x-leo-cache"] == "miss"
    assert chats(fake_upstream) == before + 4
    assert entries(kit) == 0


def test_cut_streams_are_never_stored(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    fake_upstream.configure(drop_after_chunks=3)
    with pytest.raises(openai.APIError):
        ask_stream(kit, q)
    fake_upstream.configure(drop_after_chunks=None)
    assert entries(kit) == 0
    before = chats(fake_upstream)
    chunks, h = ask_stream(kit, q)
    assert h["x-leo-cache"] == "miss" and chats(fake_upstream) == before + 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith(answer_tag(q)) and text.endswith(".")
    wait_for_rows(CacheEntry, 1, tenant=kit.tenant)
    _, h2 = ask(kit, q)
    assert h2["x-leo-cache"] == "exact"


@pytest.mark.parametrize("status, sdk_error", [(400, openai.BadRequestError), (500, openai.APIStatusError)])
def test_errors_are_never_stored(status: int, sdk_error: type[Exception], kit: TenantKit,
                                 fake_upstream: Any) -> None:
    q = question()
    fake_upstream.configure(fail_next=10, error_status=status)  # more than LEO's retries
    with pytest.raises(sdk_error):
        ask(kit, q)
    fake_upstream.configure(fail_next=0)
    assert entries(kit) == 0
    before = chats(fake_upstream)
    resp, h = ask(kit, q)
    assert h["x-leo-cache"] == "miss" and chats(fake_upstream) == before + 1
    assert resp.choices[0].message.content.startswith(answer_tag(q))


def test_truncated_answers_are_not_stored(kit: TenantKit, fake_upstream: Any) -> None:
    """An answer cut by max_tokens (finish_reason "length") is incomplete: served, never stored."""
    q = question()
    before = chats(fake_upstream)
    for _ in range(2):
        resp, h = ask(kit, q, max_tokens=3)
        assert resp.choices[0].finish_reason == "length" and h["x-leo-cache"] == "miss"
    assert chats(fake_upstream) == before + 2
    assert entries(kit) == 0
