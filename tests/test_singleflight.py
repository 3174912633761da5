"""Single-flight through live LEO servers: identical requests in flight at once make one upstream call.

50 identical requests are sent at once with openai.AsyncOpenAI while the fake upstream holds its
answer back (`latency_ms`), so they truly overlap; the fake upstream's own counters (what reached
it) must show one chat call. Streams fan out chunk by chunk to every waiter. With two server
processes sharing Redis (only when REDIS_URL is set) the lock and the fan-out stream are Redis',
so the same holds across processes. When the leader fails, the waiters are released and succeed
on their own.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import openai
import pytest

from fake_upstream import answer_tag as _hex_tag
from optimizer.models import RequestLog
from tests.conftest import LeoServer, TenantKit, wait_for_rows
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

MODEL = "gpt-4o-mini"
N = 50


def question() -> str:
    return f"Which river flows through the city of {uuid.uuid4().hex[:10]}?"


def tag(text: str) -> str:
    return f"ANSWER[{_hex_tag(text)}]"


async def _one(client: openai.AsyncOpenAI, q: str, stream: bool) -> tuple[str, dict[str, str], int]:
    """One request: (answer text, headers, number of content chunks); raises the SDK's errors."""
    messages = [{"role": "user", "content": q}]
    if not stream:
        raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
        resp = raw.parse()
        return resp.choices[0].message.content or "", dict(raw.headers), 0
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True})
    parts, usage = [], None
    async for chunk in raw.parse():
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert usage is not None and usage.completion_tokens > 0, "every waiter gets the usage chunk"
    return "".join(parts), dict(raw.headers), len(parts)


def burst(base_urls: list[str], key: str, q: str, stream: bool, n: int = N) -> list[Any]:
    """Send n identical requests at once, spread over the given servers; results or exceptions."""
    async def run() -> list[Any]:
        clients = [openai.AsyncOpenAI(base_url=u, api_key=key, max_retries=0, timeout=60) for u in base_urls]
        try:
            return await asyncio.gather(*(_one(clients[i % len(clients)], q, stream) for i in range(n)),
                                        return_exceptions=True)
        finally:
            for c in clients:
                await c.close()

    return asyncio.run(run())


def warm(base_urls: list[str], key: str) -> set[str]:
    """One request per server first, so the burst is not its first request.

    A server's first semantic lookup loads the embedding model in a thread; the load holds the GIL
    for long stretches, so the event loop stalls past the Redis client's 0.5 s socket timeout and
    the shared-state circuit breaker opens for 2 s: single-flight then degrades (everyone leads),
    by design, rather than failing. Production preloads the model at start (LEO_PRELOAD_EMBEDDER);
    the test settings do not, so the tests warm up explicitly.
    """
    ids = set()
    for url in base_urls:
        raw = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=120).chat.completions \
            .with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": "warm up " + question()}])
        ids.add(raw.headers["x-leo-request-id"])
    return ids


def _check_one_flight(results: list[Any], q: str, stream: bool) -> None:
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    texts = {text for text, _, _ in results}
    assert len(texts) == 1 and next(iter(texts)).startswith(tag(q))
    headers = Counter(h["x-leo-cache"] for _, h, _ in results)
    # followers say "dedup"; one arriving after the leader stored its answer is an "exact" hit
    assert headers["miss"] == 1 and headers["dedup"] + headers["exact"] == N - 1, headers
    assert headers["dedup"] >= 1, headers
    if stream:
        assert all(chunks >= 3 for _, _, chunks in results), "followers get the stream as chunks"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_fifty_identical_requests_make_one_upstream_call(stream: bool, kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    warm([kit.base_url], kit.key)
    fake_upstream.configure(latency_ms=800, chunk_delay_ms=20 if stream else 0)
    before = fake_upstream.stats()["chat"]
    results = burst([kit.base_url], kit.key, q, stream)
    assert fake_upstream.stats()["chat"] == before + 1
    _check_one_flight(results, q, stream)
    # The ledger: one upstream call in total; the followers count as deduplicated, fully saved.
    ids = [h["x-leo-request-id"] for _, h, _ in results]
    rows = wait_for_rows(RequestLog, N, request_id__in=ids)
    assert len(rows) == N
    assert sum(r.upstream_calls for r in rows) == 1
    techniques = Counter(r.technique for r in rows)
    assert techniques["miss"] == 1 and techniques["dedup"] + techniques["exact"] == N - 1
    leader = next(r for r in rows if r.technique == "miss")
    for r in rows:
        if r.technique != "miss":
            assert r.cost_usd == 0 and r.saved_usd == leader.cost_usd
            assert r.tokens_saved == leader.prompt_tokens + leader.completion_tokens


def test_leader_failure_releases_the_waiters(kit: TenantKit, fake_upstream: Any) -> None:
    """The first call fails with a non-retryable 400; the waiters try on their own and succeed."""
    q = question()
    n = 12
    warmed = warm([kit.base_url], kit.key)
    fake_upstream.configure(latency_ms=600, fail_next=1, error_status=400)
    before = fake_upstream.stats()["chat"]
    results = burst([kit.base_url], kit.key, q, stream=False, n=n)
    failed = [r for r in results if isinstance(r, BaseException)]
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], openai.BadRequestError), failed
    assert len(ok) == n - 1 and all(text.startswith(tag(q)) for text, _, _ in ok)
    calls = fake_upstream.stats()["chat"] - before
    assert 2 <= calls <= n, calls  # the released waiters went upstream themselves
    rows = [r for r in wait_for_rows(RequestLog, n + 1, tenant=kit.tenant) if r.request_id not in warmed]
    assert len(rows) == n
    assert sorted(r.status_code for r in rows) == [200] * (n - 1) + [400]
    assert sum(r.upstream_calls for r in rows) == calls


def test_leader_stream_failure_releases_waiters_that_have_not_started(kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    n = 8
    warm([kit.base_url], kit.key)
    fake_upstream.configure(latency_ms=600, fail_next=1, error_status=400)
    results = burst([kit.base_url], kit.key, q, stream=True, n=n)
    failed = [r for r in results if isinstance(r, BaseException)]
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], openai.BadRequestError), failed
    assert len(ok) == n - 1 and all(text.startswith(tag(q)) for text, _, _ in ok)
    assert len(wait_for_rows(RequestLog, n + 1, tenant=kit.tenant)) == n + 1


@pytest.fixture(scope="module")
def two_servers(start_server: Callable[..., LeoServer]) -> list[LeoServer]:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("single-flight across processes needs Redis: set REDIS_URL")
    servers = [start_server(), start_server()]
    return servers


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_one_upstream_call_across_two_server_processes(stream: bool, two_servers: list[LeoServer],
                                                       kit: TenantKit, fake_upstream: Any) -> None:
    q = question()
    warm([s.v1 for s in two_servers], kit.key)
    fake_upstream.configure(latency_ms=1200, chunk_delay_ms=20 if stream else 0)
    before = fake_upstream.stats()["chat"]
    results = burst([s.v1 for s in two_servers], kit.key, q, stream)
    assert fake_upstream.stats()["chat"] == before + 1
    _check_one_flight(results, q, stream)
    # Request i went to server i % 2: the server that did not lead must have followed the other's flight.
    per_server = [Counter(results[i][1]["x-leo-cache"] for i in range(k, N, 2)) for k in (0, 1)]
    follower_server = per_server[1] if per_server[0]["miss"] else per_server[0]
    assert follower_server["dedup"] >= 1, per_server
    ids = [h["x-leo-request-id"] for _, h, _ in results]
    assert len(wait_for_rows(RequestLog, N, request_id__in=ids)) == N
