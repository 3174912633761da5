"""GET /v1/analytics splits requests, tokens saved and dollars saved by technique.

Traffic of every kind goes through a live server with the official openai SDK (a miss, an exact
hit, a semantic hit, an in-flight duplicate, a decomposed question, an optimized prompt, a routed
request); the figures are then read with httpx and with the SDK's own HTTP client, and checked
against the ledger rows and the fake upstream's counters.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from optimizer.models import CacheEntry, OptimizerSettings, RequestLog
from tests.conftest import TenantKit, wait_for_rows

MINI = "gpt-4o-mini"
DOC = ("Incident report. The nightly batch scaled to 40 workers against a database that allows 50 connections, "
       "and three services then failed with connection slot errors for 12 minutes.")


def ask(kit: TenantKit, content: str, model: str = MINI) -> Any:
    raw = kit.client().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}])
    raw.parse()
    return raw


def wait_for_semantic_entry(kit: TenantKit, text: str) -> None:
    """The semantic index replica polls the database every 0.3 s; give it the row and a few polls."""
    deadline = time.monotonic() + 20
    while not CacheEntry.objects.filter(tenant=kit.tenant, request_text=text, embedding__isnull=False).exists():
        assert time.monotonic() < deadline, "cache entry never written"
        time.sleep(0.05)
    time.sleep(1.2)


@pytest.fixture
def traffic(make_tenant: Any, fake_upstream: Any) -> tuple[TenantKit, dict[str, str], int]:
    kit = make_tenant("Analytics")
    OptimizerSettings.objects.create(tenant=kit.tenant, routing=True, routing_rules=[
        {"from_model": "gpt-4o", "to_model": MINI, "max_prompt_tokens": 200}])
    calls_before = fake_upstream.stats()["chat"]
    headers: dict[str, str] = {}
    headers["miss"] = ask(kit, "What is the capital of France?").headers["x-leo-cache"]
    headers["exact"] = ask(kit, "What is the capital of France?").headers["x-leo-cache"]
    wait_for_semantic_entry(kit, "What is the capital of France?")
    headers["semantic"] = ask(kit, "What's the capital of France?").headers["x-leo-cache"]
    ask(kit, "Who wrote the novel Middlemarch?")
    ask(kit, "How many moons does Neptune have?")
    headers["decomposed"] = ask(kit, "1. Who wrote the novel Middlemarch?\n2. How many moons does Neptune have?"
                                ).headers["x-leo-cache"]
    headers["prompt_opt"] = ask(kit, f"{DOC}\n\n{DOC}\n\nWhat should change first?").headers["x-leo-cache"]
    headers["routing"] = ask(kit, "What is the capital of Peru?", model="gpt-4o").headers.get("x-leo-route", "")
    # two identical requests in flight at once: the second rides on the first's upstream call
    fake_upstream.configure(latency_ms=1000)
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(
        ask(kit, "What is the boiling point of ethanol?").headers["x-leo-cache"])) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    fake_upstream.configure(latency_ms=0)
    headers["dedup"] = ",".join(sorted(seen))
    wait_for_rows(RequestLog, 10, tenant=kit.tenant)
    return kit, headers, fake_upstream.stats()["chat"] - calls_before


def test_by_technique_attributes_every_saved_cent(traffic: tuple[TenantKit, dict[str, str], int]) -> None:
    kit, headers, upstream_calls = traffic
    assert headers == {"miss": "miss", "exact": "exact", "semantic": "semantic", "decomposed": "decomposed",
                       "prompt_opt": "miss", "routing": "gpt-4o->gpt-4o-mini", "dedup": "dedup,miss"}
    with kit.http() as http:
        figures = http.get("/v1/analytics").json()
    rows = list(RequestLog.objects.filter(tenant=kit.tenant))
    assert len(rows) == figures["requests"] == 10

    by = figures["by_technique"]
    assert {k: v["requests"] for k, v in by.items()} == {
        "exact": 1, "semantic": 1, "dedup": 1, "decomposed": 1, "prompt_optimization": 1, "routing": 1}

    def ledger(technique: str) -> tuple[int, Decimal]:
        picked = [r for r in rows if r.technique == technique]
        return sum(r.tokens_saved for r in picked), sum((r.saved_usd for r in picked), Decimal(0))

    for technique in ("exact", "semantic", "dedup", "decomposed"):
        tokens, usd = ledger(technique)
        assert by[technique]["tokens_saved"] == tokens > 0
        assert by[technique]["saved_usd"] == pytest.approx(float(usd), abs=1e-8) and usd > 0
    [optimized] = [r for r in rows if r.prompt_opt_tokens_saved > 0]
    assert by["prompt_optimization"]["tokens_saved"] == optimized.prompt_opt_tokens_saved
    assert by["prompt_optimization"]["saved_usd"] == pytest.approx(float(optimized.prompt_opt_saved_usd), abs=1e-8)
    [routed] = [r for r in rows if r.served_model != r.model]
    assert (routed.model, routed.served_model) == ("gpt-4o", MINI)
    assert routed.routing_saved_usd > 0
    assert by["routing"]["saved_usd"] == pytest.approx(float(routed.routing_saved_usd), abs=1e-8)

    # the split adds up to the totals, and the totals to the ledger and the upstream's own count
    assert sum(t["saved_usd"] for t in by.values()) == pytest.approx(figures["saved_usd"], abs=1e-7)
    assert sum(t["tokens_saved"] for t in by.values()) == figures["tokens_saved"]
    assert figures["saved_usd"] == pytest.approx(figures["counterfactual_usd"] - figures["cost_usd"], abs=1e-7)
    assert figures["saved_usd"] == pytest.approx(float(sum((r.saved_usd for r in rows), Decimal(0))), abs=1e-7)
    assert figures["upstream_calls"] == upstream_calls == sum(r.upstream_calls for r in rows)
    assert figures["prompt_tokens"] == sum(r.prompt_tokens for r in rows)
    assert figures["hit_rate"] == round(4 / 10, 4)


def test_the_period_and_the_tenant_bound_the_figures(traffic: tuple[TenantKit, dict[str, str], int],
                                                     make_tenant: Any) -> None:
    kit, _, _ = traffic
    client = kit.client()
    now = datetime.now(UTC)
    inside = client.get("/analytics", cast_to=object, options={"params": {
        "start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(hours=1)).isoformat()}})
    assert inside["requests"] == 10 and inside["by_technique"]["exact"]["requests"] == 1
    later = client.get("/analytics", cast_to=object, options={"params": {
        "start": (now + timedelta(hours=1)).isoformat()}})
    assert later["requests"] == 0 and later["by_technique"] == {} and later["saved_usd"] == 0
    other = make_tenant("Other")
    ask(other, "What is the capital of France?")
    wait_for_rows(RequestLog, 1, tenant=other.tenant)
    with other.http() as http:
        theirs = http.get("/v1/analytics").json()
    assert theirs["requests"] == 1 and theirs["by_technique"] == {}


def test_a_bad_period_gets_the_openai_error_envelope(kit: TenantKit) -> None:
    with kit.http() as http:
        r = http.get("/v1/analytics", params={"start": "last tuesday"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "start" and set(r.json()["error"]) == {"message", "type", "param", "code"}
