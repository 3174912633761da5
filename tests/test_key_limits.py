"""Per-key limits (#15.4): a budget, requests and tokens per minute, allowed models and an expiry
per API key, admitted in the same atomic step as the tenant's limits; over a limit, OpenAI's 429
envelope names it. Real server, official SDK, the ledger (and Redis when REDIS_URL is set)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from decimal import Decimal
from io import StringIO

import openai
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from optimizer.models import RequestLog
from tenants.models import ApiKey, Tenant
from tests.conftest import wait_for_rows
from tests.portal_helpers import make_ledger_row


def ask(client: openai.OpenAI, model: str = "gpt-4o-mini") -> object:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"key limits {uuid.uuid4().hex}"}], max_tokens=20)


def limited_key(kit, **limits: object) -> openai.OpenAI:
    row, plaintext = ApiKey.issue(kit.tenant, name="limited")
    row.set_limits(**limits)
    return openai.OpenAI(base_url=kit.base_url, api_key=plaintext, max_retries=0, timeout=30)


def test_key_budget_gets_429_naming_the_limit_and_other_keys_go_on(make_tenant) -> None:
    kit = make_tenant("KeyBudget")
    row, plaintext = ApiKey.issue(kit.tenant, name="limited")
    row.set_limits(monthly_budget_usd=Decimal("0.0001"))  # a few gpt-4o-mini requests of 20 tokens
    limited = openai.OpenAI(base_url=kit.base_url, api_key=plaintext, max_retries=0, timeout=30)
    served = 0
    with pytest.raises(openai.RateLimitError) as exc:
        for _ in range(40):
            ask(limited)
            served += 1
    assert 1 <= served < 40
    assert exc.value.code == "insufficient_quota"
    assert exc.value.body["type"] == "insufficient_quota"
    assert "monthly budget" in exc.value.message and "key_monthly_budget_usd" in exc.value.message
    assert int(exc.value.response.headers["retry-after"]) >= 1
    ask(kit.client())  # the tenant's other key is not limited by it
    rows = wait_for_rows(RequestLog, served, api_key=row, status_code=200)
    # admission reserves prompt estimate + max_tokens, so the key's spend stays within its budget
    assert sum(r.cost_usd for r in rows) <= Decimal("0.0001")
    assert wait_for_rows(RequestLog, 1, api_key=row, status_code=429)  # refusals are ledgered too (written behind)


def test_key_budget_starts_from_the_keys_ledger_spend(make_tenant) -> None:
    """The key's month counter starts from its ledger rows: a key that spent its budget this month
    (another process, before a restart) is refused on its first request here."""
    kit = make_tenant("KeySpent")
    row, plaintext = ApiKey.issue(kit.tenant, name="spent")
    make_ledger_row(kit.tenant, row, cost_usd=Decimal("0.50"), created_at=timezone.now())
    make_ledger_row(kit.tenant, kit.api_key, cost_usd=Decimal("5.00"), created_at=timezone.now())
    row.set_limits(monthly_budget_usd=Decimal("0.50"))
    client = openai.OpenAI(base_url=kit.base_url, api_key=plaintext, max_retries=0, timeout=30)
    with pytest.raises(openai.RateLimitError) as exc:
        ask(client)
    assert exc.value.code == "insufficient_quota"
    # A budget above the key's own spend (the tenant's other key spent more) admits it.
    fresh = ApiKey.issue(kit.tenant, name="fresh")
    fresh[0].set_limits(monthly_budget_usd=Decimal("1.00"))
    ask(openai.OpenAI(base_url=kit.base_url, api_key=fresh[1], max_retries=0, timeout=30))


def test_key_requests_per_minute_and_refusals_hold_nothing_of_the_tenants(make_tenant) -> None:
    """Tenant: 3 requests/minute; key A: 1. A's refused requests must not use the tenant's room
    (one atomic step for both), so key B still gets the other 2."""
    kit = make_tenant("KeyRpm", requests_per_minute=3)
    a = limited_key(kit, requests_per_minute=1)
    ask(a)
    for _ in range(3):
        with pytest.raises(openai.RateLimitError) as exc:
            ask(a)
        assert exc.value.code == "rate_limit_exceeded"
        assert "key_requests_per_minute" in exc.value.message
    b = kit.client()
    ask(b)
    ask(b)


def test_key_tokens_per_minute(make_tenant) -> None:
    kit = make_tenant("KeyTpm")
    limited = limited_key(kit, tokens_per_minute=60)  # one request reserves its prompt + 20
    ask(limited)
    with pytest.raises(openai.RateLimitError) as exc:
        for _ in range(5):
            ask(limited)
    assert exc.value.code == "rate_limit_exceeded" and "key_tokens_per_minute" in exc.value.message


def test_key_allowed_models(make_tenant) -> None:
    kit = make_tenant("KeyModels")
    limited = limited_key(kit, allowed_models=["gpt-4o-mini"])
    ask(limited)
    with pytest.raises(openai.NotFoundError) as exc:
        ask(limited, "gpt-4o")
    assert exc.value.code == "model_not_found"
    assert [m.id for m in limited.models.list()] == ["gpt-4o-mini"]
    ask(kit.client(), "gpt-4o")  # the tenant's other key may


def test_key_expiry_from_the_command(make_tenant) -> None:
    kit = make_tenant("KeyExpiry")
    out = StringIO()
    soon = (timezone.now() + timezone.timedelta(days=2)).isoformat()
    call_command("create_api_key", kit.tenant.slug, "--name", "ci", "--monthly-budget-usd", "12.5", "--rpm", "30",
                 "--tpm", "5000", "--models", "gpt-4o-mini, gpt-4o", "--expires", soon, stdout=out)
    plaintext = out.getvalue().strip().splitlines()[-1]
    row = ApiKey.objects.get(prefix=plaintext[:12])
    assert (row.monthly_budget_usd, row.requests_per_minute, row.tokens_per_minute, row.allowed_models) == (
        Decimal("12.5"), 30, 5000, ["gpt-4o-mini", "gpt-4o"])
    assert row.expires_at is not None and row.expires_at > timezone.now()
    ask(openai.OpenAI(base_url=kit.base_url, api_key=plaintext, max_retries=0, timeout=30))
    ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now())
    with pytest.raises(CommandError):
        call_command("create_api_key", kit.tenant.slug, "--expires", "2001-01-01", stdout=StringIO())


@pytest.mark.django_db
def test_create_api_key_refuses_bad_limits_without_a_key() -> None:
    """Bad option values: an error naming the option, no key created."""
    tenant = Tenant.create("Bad limits")
    for bad in (["--rpm", "0"], ["--monthly-budget-usd", "-1"], ["--monthly-budget-usd", "NaN"],
                ["--tpm", "many"], ["--expires", "tomorrow"], ["--monthly-budget-usd", "0.00001"],
                ["--models", "gpt-4o\x00"]):
        out = StringIO()
        with pytest.raises(CommandError):
            call_command("create_api_key", tenant.slug, *bad, stdout=out)
        assert "leo_" not in out.getvalue(), bad
    assert not ApiKey.objects.filter(tenant=tenant).exists()


@pytest.fixture(scope="module")
def two_workers(start_server, leo_server):
    """With REDIS_URL, two gunicorn workers share the key's counters (the production shape);
    without Redis one worker, since per-process counters are the documented fallback."""
    return start_server(workers=2, gunicorn=True) if os.environ.get("REDIS_URL") else leo_server


def test_key_rate_limit_holds_under_concurrency_across_workers(make_tenant, two_workers) -> None:
    kit = make_tenant("KeyBurst", server=two_workers)
    row, plaintext = ApiKey.issue(kit.tenant, name="burst")
    row.set_limits(requests_per_minute=10)
    while time.time() % 60 > 40:  # the burst stays within one minute window
        time.sleep(1)

    async def fire() -> list[int]:
        client = openai.AsyncOpenAI(base_url=kit.base_url, api_key=plaintext, max_retries=0, timeout=60)

        async def one(i: int) -> int:
            try:
                await client.chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                                     messages=[{"role": "user", "content": f"burst {i} {uuid.uuid4()}"}])
                return 200
            except openai.APIStatusError as exc:
                return exc.status_code

        try:
            return await asyncio.gather(*(one(i) for i in range(60)))
        finally:
            await client.close()

    statuses = asyncio.run(fire())
    assert statuses.count(200) == 10 and statuses.count(429) == 50, sorted(statuses)
