"""Quotas answered with OpenAI-style 429 and Retry-After, recorded in the ledger."""

from __future__ import annotations

import uuid
from decimal import Decimal

import openai
import pytest

from optimizer.models import RequestLog
from tests.conftest import wait_for_rows


def ask(client):
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"quota {uuid.uuid4().hex}"}], max_tokens=50)


def test_requests_per_minute(make_tenant) -> None:
    kit = make_tenant("rpm", requests_per_minute=3)
    client = kit.client()
    for _ in range(3):
        ask(client)
    with pytest.raises(openai.RateLimitError) as exc:
        ask(client)
    assert exc.value.code == "rate_limit_exceeded"
    assert 1 <= int(exc.value.response.headers["retry-after"]) <= 60
    rows = wait_for_rows(RequestLog, 4, tenant=kit.tenant)
    assert sorted(r.status_code for r in rows) == [200, 200, 200, 429]


def test_monthly_token_quota_counts_what_was_used(make_tenant) -> None:
    kit = make_tenant("tok", monthly_token_quota=300)
    client = kit.client()
    served = 0
    with pytest.raises(openai.RateLimitError) as exc:
        for _ in range(20):
            ask(client)
            served += 1
    assert exc.value.code == "insufficient_quota"
    assert 1 <= served < 20
    rows = wait_for_rows(RequestLog, served, tenant=kit.tenant, status_code=200)
    used = sum(r.prompt_tokens + r.completion_tokens for r in rows)
    # admission reserves prompt estimate + max_tokens, so usage never exceeds the quota
    assert used <= 300


def test_monthly_spend_quota(make_tenant) -> None:
    kit = make_tenant("usd", monthly_spend_quota_usd=Decimal("0.0000001"))
    with pytest.raises(openai.RateLimitError) as exc:
        ask(kit.client())
    assert exc.value.code == "insufficient_quota"
