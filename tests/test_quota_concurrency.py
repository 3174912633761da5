"""Quotas under concurrency: 100 simultaneous requests against an almost spent budget.

Admission is one atomic step (a Redis script, or one step on the event loop without Redis) that
*reserves* each request's estimate (prompt estimate + max_tokens) before it runs; `settle` swaps the
reservation for the upstream's count afterwards. So:

- requests admitted <= (remaining budget + refunds of settled requests) // reservation (a race
  would admit more);
- overspend = used - quota <= sum over admitted requests of max(0, actual - reserved): only the
  amount by which the upstream's count exceeds LEO's estimate (its per-message overhead), never a
  whole extra request's worth. The test computes that bound from the ledger and checks it.

With REDIS_URL set the budget is shared by two gunicorn workers (the production shape); without
Redis it runs on one uvicorn worker, since per-process counters are the documented fallback.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import openai
import pytest
from django.utils import timezone

from optimizer.models import OptimizerSettings, RequestLog
from optimizer.pricing import count_tokens
from tests.conftest import LeoServer, TenantKit, wait_for_rows
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)


CONCURRENCY = 100
MAX_TOKENS = 20


@pytest.fixture(scope="module")
def quota_server(start_server: Callable[..., LeoServer], leo_server: LeoServer) -> LeoServer:
    if os.environ.get("REDIS_URL"):
        return start_server(workers=2, gunicorn=True)
    return leo_server


def _question(i: int) -> str:
    # Equal length, so every request reserves the same estimate.
    return f"Question {i:04d} about {uuid.uuid4().hex}: what is its answer?"


async def _fire(kit: TenantKit, questions: list[str]) -> list[tuple[int, str, str]]:
    """All at once; returns (status, request id, error code) per request."""
    client = openai.AsyncOpenAI(base_url=kit.base_url, api_key=kit.key, max_retries=0, timeout=60)

    async def one(q: str) -> tuple[int, str, str]:
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": q}], max_tokens=MAX_TOKENS,
                extra_headers={"Cache-Control": "no-cache, no-store"})
            return 200, raw.headers["x-leo-request-id"], ""
        except openai.APIStatusError as exc:
            return exc.status_code, exc.response.headers.get("x-leo-request-id", ""), exc.body.get("code", "") \
                if isinstance(exc.body, dict) else ""

    try:
        return await asyncio.gather(*(one(q) for q in questions))
    finally:
        await client.close()


def _quiet_tenant(make_tenant: Callable[..., TenantKit], server: LeoServer, **fields: Any) -> TenantKit:
    kit = make_tenant("Budget", server=server, **fields)
    OptimizerSettings.objects.update_or_create(tenant=kit.tenant, defaults={"semantic_cache": False,
                                                                             "decomposition": False})
    return kit


def test_monthly_token_quota_overspends_only_by_the_estimate_error(make_tenant: Callable[..., TenantKit],
                                                                    quota_server: LeoServer) -> None:
    questions = [_question(i) for i in range(CONCURRENCY)]
    reserved = count_tokens(questions[0]) + MAX_TOKENS
    assert all(count_tokens(q) + MAX_TOKENS == reserved for q in questions)
    quota = 1_000_000
    remaining = 10 * reserved + reserved // 2  # room for ten reservations and a half
    kit = _quiet_tenant(make_tenant, quota_server, monthly_token_quota=quota)
    # This month's earlier usage, in the ledger (admission starts its counter from there).
    RequestLog.objects.create(request_id="req_" + uuid.uuid4().hex, created_at=timezone.now(), tenant=kit.tenant,
                              endpoint="chat", model="gpt-4o-mini", status_code=200, technique="miss",
                              prompt_tokens=quota - remaining)

    results = asyncio.run(_fire(kit, questions))
    admitted = [rid for status, rid, _ in results if status == 200]
    refused = [(status, code) for status, _, code in results if status != 200]
    assert all(r == (429, "insufficient_quota") for r in refused), refused
    rows = wait_for_rows(RequestLog, len(admitted), request_id__in=admitted)
    assert len(rows) == len(admitted)
    # Settled requests that used less than they reserved give the difference back, which may admit
    # a few more; beyond that, no request is admitted without a full reservation's room.
    refunds = sum(max(0, reserved - (r.prompt_tokens + r.completion_tokens)) for r in rows)
    room = (remaining + refunds) // reserved
    assert 1 <= len(admitted) <= room
    used_before = quota - remaining
    used = used_before + sum(r.prompt_tokens + r.completion_tokens for r in rows)
    overspend = max(0, used - quota)
    bound = sum(max(0, r.prompt_tokens + r.completion_tokens - reserved) for r in rows)
    assert overspend <= bound
    assert all(r.completion_tokens <= MAX_TOKENS for r in rows)
    # Every refused request is in the ledger too (as a 429), none lost.
    assert len(wait_for_rows(RequestLog, CONCURRENCY + 1, tenant=kit.tenant)) == CONCURRENCY + 1  # + the earlier row
    assert RequestLog.objects.filter(tenant=kit.tenant, status_code=429).count() == len(refused)
    print(f"\nquota: {CONCURRENCY} concurrent, {len(admitted)} admitted (room for {remaining // reserved}, "
          f"{room} with settled refunds), "
          f"overspend {overspend} tokens <= bound {bound} (= sum of actual-reserved over admitted)")


def test_requests_per_minute_admit_exactly_the_limit(make_tenant: Callable[..., TenantKit],
                                                     quota_server: LeoServer) -> None:
    limit = 30
    # The burst must fall inside one minute window (the limiter's key is the minute). On a busy
    # machine it can take longer than the 20 s left when it starts; then it is fired again, for a
    # fresh tenant, in the next window.
    for _ in range(3):
        kit = _quiet_tenant(make_tenant, quota_server, requests_per_minute=limit)
        if time.time() % 60 > 40:
            time.sleep(60 - time.time() % 60 + 0.5)
        window = int(time.time() // 60)
        results = asyncio.run(_fire(kit, [_question(i) for i in range(CONCURRENCY)]))
        if int(time.time() // 60) == window:
            break
    else:
        pytest.fail("no burst of requests fitted in one minute window")
    admitted = sum(1 for status, _, _ in results if status == 200)
    limited = [code for status, _, code in results if status == 429]
    assert admitted == limit and len(limited) == CONCURRENCY - limit
    assert set(limited) == {"rate_limit_exceeded"}
    print(f"\nrate limit: {CONCURRENCY} concurrent against {limit}/min: {admitted} admitted, {len(limited)} refused")
