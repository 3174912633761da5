"""Money and quota correctness through a live server (issue #13 items 3, 4, 6, 7, 9).

Each test drives LEO with the official SDK (or httpx for streams it abandons) against the fake
upstream, and checks the ledger against what the upstream itself counted (`/_stats`): the ledger
records what upstream billed, always; the platform's key pays only for the priced catalogue within
the staff allow-list; a request reserves every upstream call it makes before making it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import warnings
from decimal import Decimal
from typing import Any

import openai
import pytest

from fake_upstream import answer_tag, prepare_chat
from optimizer.models import OptimizerSettings, RequestLog
from optimizer.pricing import count_tokens
from tests.conftest import TenantKit, free_port, wait_for_rows
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

with warnings.catch_warnings():
    # bpe_openai loads its bundled tables at import with a deprecated importlib.resources call.
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

MODEL = "gpt-4o-mini"


def name() -> str:
    return "Zor" + uuid.uuid4().hex[:8]


def row_of(request_id: str) -> RequestLog:
    [row] = wait_for_rows(RequestLog, 1, request_id=request_id)
    return row


def upstream_tokens(fake_upstream: Any) -> tuple[int, int, int]:
    s = fake_upstream.stats()
    return int(s["chat"]), int(s["prompt_tokens"]), int(s["completion_tokens"])


def quiet(kit: TenantKit, **fields: Any) -> TenantKit:
    """No semantic cache (no embedding model to load); decomposition on."""
    OptimizerSettings.objects.update_or_create(tenant=kit.tenant, defaults={"semantic_cache": False, **fields})
    return kit


def credential(kit: TenantKit, base_url: str, models: list[str], key: str = "sk-tenant-own-key-9876") -> None:
    from tenants.models import ProviderCredential

    cred = ProviderCredential(tenant=kit.tenant, name="own", base_url=base_url, model_names=models, priority=1)
    cred.set_key(key)
    cred.save()


def chat(kit: TenantKit, messages: list[dict[str, Any]], model: str = MODEL, **kw: Any) -> Any:
    return kit.client().chat.completions.with_raw_response.create(model=model, messages=messages, **kw)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# --- 3. the allow-list and the platform's key ------------------------------------------------------

def test_allow_list_applies_before_any_provider_is_chosen(make_tenant: Any, fake_upstream: Any) -> None:
    """allowed_models=[gpt-4o-mini]; a tenant provider listing gpt-4o and an unpriced model, whose
    key fails: neither model is served, by the provider or by the platform fallback."""
    kit = quiet(make_tenant("AllowList", allowed_models=[MODEL]))
    credential(kit, f"http://127.0.0.1:{free_port()}/v1", ["gpt-4o", "gpt-5-ultra-pro"])  # connection refused
    before = upstream_tokens(fake_upstream)
    for model in ("gpt-4o", "gpt-5-ultra-pro"):
        with pytest.raises(openai.NotFoundError) as caught:
            chat(kit, user(f"What is {name()}?"), model=model)
        assert caught.value.body["code"] == "model_not_found"
    assert upstream_tokens(fake_upstream) == before, "nothing reached the platform's upstream"
    listed = {m.id for m in kit.client().models.list()}
    assert listed == {MODEL}
    assert chat(kit, user(f"What is {name()}?")).headers["x-leo-cache"] == "miss"  # the allowed model still works


def test_an_unpriced_model_is_never_served_on_the_platform_key(make_tenant: Any, fake_upstream: Any) -> None:
    kit = quiet(make_tenant("Unpriced"))
    credential(kit, f"http://127.0.0.1:{free_port()}/v1", ["gpt-5-ultra-pro"])  # the tenant's provider is down
    before = fake_upstream.stats()["chat"]
    with pytest.raises(openai.InternalServerError) as caught:
        chat(kit, user(f"What is {name()}?"), model="gpt-5-ultra-pro")
    assert caught.value.status_code == 502 and caught.value.body["code"] == "connect"
    assert fake_upstream.stats()["chat"] == before, "no fallback to the platform for a model it does not offer"
    row = row_of(caught.value.response.headers["x-leo-request-id"])
    assert row.status_code == 502 and row.provider == "" and row.prompt_tokens == 0


def test_an_unpriced_model_on_the_tenants_own_key_has_an_unknown_cost(make_tenant: Any, fake_upstream: Any) -> None:
    kit = quiet(make_tenant("OwnKey"))
    credential(kit, fake_upstream.url, ["gpt-5-ultra-pro"], key="sk-tenant-own-key-OWN1")
    before = fake_upstream.stats()["auth_suffixes"].get("OWN1", 0)
    raw = chat(kit, user(f"What is {name()}?"), model="gpt-5-ultra-pro")
    usage = raw.parse().usage
    assert raw.headers["x-leo-provider"] == "tenant:own"
    assert fake_upstream.stats()["auth_suffixes"]["OWN1"] == before + 1, "served on the tenant's own key"
    row = row_of(raw.headers["x-leo-request-id"])
    assert (row.prompt_tokens, row.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert row.cost_usd is None and row.saved_usd is None, "an unknown cost is not recorded as $0"
    # Priced requests still add up; the unpriced one is counted apart.
    priced = chat(kit, user(f"What is {name()}?"))
    row_of(priced.headers["x-leo-request-id"])
    with kit.http() as http:
        figures = http.get("/v1/analytics").json()
    assert figures["unpriced_requests"] == 1 and figures["requests"] == 2 and figures["cost_usd"] > 0


# --- 4. decomposition reserves its upstream calls; usage and the ledger agree -----------------------

LONG_SYSTEM = "You are a careful assistant. " * 90  # about 540 tokens, resent by every part call


def seven_questions() -> list[str]:
    n = name()
    return [f"What is the capital of {n}{i}land?" for i in range(7)]


def test_decomposition_never_sends_more_than_the_whole_and_stays_in_quota(make_tenant: Any,
                                                                         fake_upstream: Any) -> None:
    """Seven parts, one cached, each part resending a 540-token system prompt: the request goes
    whole (one call), and the month's usage exceeds the quota by no more than the prompt estimate's error."""
    kit = quiet(make_tenant("Decompose"))
    qs = seven_questions()
    system = {"role": "system", "content": LONG_SYSTEM}
    warm = chat(kit, [system, *user(qs[0])], max_tokens=60)
    row_of(warm.headers["x-leo-request-id"])
    whole = "\n".join(f"{i + 1}. {q}" for i, q in enumerate(qs))
    reserved = count_tokens(LONG_SYSTEM + "\n" + whole) + 60  # what admission reserves (docs: tenants/quotas.py)
    used_before = sum(r.prompt_tokens + r.completion_tokens for r in RequestLog.objects.filter(tenant=kit.tenant))
    quota = used_before + reserved + 5
    type(kit.tenant).objects.filter(pk=kit.tenant.pk).update(monthly_token_quota=quota)
    time.sleep(2.2)  # verified keys (and their limits) are remembered for 2 s

    calls, prompt, completion = upstream_tokens(fake_upstream)
    raw = chat(kit, [system, *user(whole)], max_tokens=60)
    after = upstream_tokens(fake_upstream)
    row = row_of(raw.headers["x-leo-request-id"])
    print(f"\n7 parts, 1 cached, 540-token system prompt: {after[0] - calls} upstream call(s), ledger "
          f"{row.prompt_tokens}+{row.completion_tokens} tokens, upstream {after[1] - prompt}+{after[2] - completion}, "
          f"reserved {reserved}, over quota by {used_before + row.prompt_tokens + row.completion_tokens - quota}")
    assert after[0] - calls == 1 and row.upstream_calls == 1, "one call of the whole, not six part calls"
    assert (row.prompt_tokens, row.completion_tokens) == (after[1] - prompt, after[2] - completion)
    overspend = used_before + row.prompt_tokens + row.completion_tokens - quota
    assert overspend <= max(0, row.prompt_tokens + row.completion_tokens - reserved)


def test_part_calls_are_reserved_before_they_are_made(make_tenant: Any, fake_upstream: Any) -> None:
    """Three parts, one cached: two part calls may bill 2 x max_tokens where admission reserved one
    max_tokens. With room for the whole request only, the parts are not sent: the whole goes."""
    kit = quiet(make_tenant("Reserve"))
    n = name()
    qs = [f"What is the capital of {n}land?", f"Who founded {n}burg?", f"How tall is Mount {n}?"]
    warm = chat(kit, user(qs[0]), max_tokens=60)
    row_of(warm.headers["x-leo-request-id"])
    whole = f"1. {qs[0]}\n2. {qs[1]}\n3. {qs[2]}"
    reserved = count_tokens(whole) + 60
    used_before = sum(r.prompt_tokens + r.completion_tokens for r in RequestLog.objects.filter(tenant=kit.tenant))
    quota = used_before + reserved + 10  # not room for the second part's 60 completion tokens
    type(kit.tenant).objects.filter(pk=kit.tenant.pk).update(monthly_token_quota=quota)
    time.sleep(2.2)

    calls = fake_upstream.stats()["chat"]
    raw = chat(kit, user(whole), max_tokens=60)
    row = row_of(raw.headers["x-leo-request-id"])
    assert raw.headers["x-leo-cache"] == "miss" and fake_upstream.stats()["chat"] == calls + 1
    assert any(s.get("reason") == "quota" for s in row.trail["stages"] if s["stage"] == "decompose_declined"), \
        row.trail
    overspend = used_before + row.prompt_tokens + row.completion_tokens - quota
    assert overspend <= max(0, row.prompt_tokens + row.completion_tokens - reserved)


def test_decomposed_usage_never_reports_less_than_the_ledger_bills(make_tenant: Any, fake_upstream: Any) -> None:
    """A system prompt the local estimate undercounts (punctuation-dense): the part call is billed
    more prompt tokens than the whole question's estimate. `usage` must still cover what was billed,
    and usage total = billed + tokens_saved."""
    kit = quiet(make_tenant("Usage"))
    n = name()
    q1, q2 = f"What is the capital of {n}land?", f"Who founded {n}burg?"
    system = {"role": "system", "content": "a. " * 200}
    chat(kit, [system, *user(q1)])
    _, prompt, completion = upstream_tokens(fake_upstream)
    raw = chat(kit, [system, *user(f"1. {q1}\n2. {q2}")])
    usage = raw.parse().usage
    _, prompt_after, completion_after = upstream_tokens(fake_upstream)
    assert raw.headers["x-leo-cache"] == "decomposed"
    row = row_of(raw.headers["x-leo-request-id"])
    assert (row.prompt_tokens, row.completion_tokens) == (prompt_after - prompt, completion_after - completion)
    assert usage.prompt_tokens >= row.prompt_tokens and usage.completion_tokens >= row.completion_tokens
    assert usage.total_tokens == row.prompt_tokens + row.completion_tokens + row.tokens_saved
    assert row.saved_usd == row.counterfactual_usd - row.cost_usd >= 0


# --- 7. a failed part: the parts that succeeded are in the ledger ----------------------------------

def test_a_failed_part_still_records_what_the_others_were_billed(make_tenant: Any, fake_upstream: Any) -> None:
    kit = quiet(make_tenant("PartFail"))
    n = name()
    qs = [f"What is the capital of {n}land?", f"Who founded {n}burg?", f"How tall is Mount {n}?"]
    chat(kit, user(qs[0]))
    calls, prompt, completion = upstream_tokens(fake_upstream)
    fake_upstream.configure(fail_next=1, error_status=400)  # one of the two part calls fails, not retried
    with pytest.raises(openai.BadRequestError) as caught:
        chat(kit, user(f"1. {qs[0]}\n2. {qs[1]}\n3. {qs[2]}"))
    after = upstream_tokens(fake_upstream)
    assert after[0] - calls == 2 and after[1] > prompt, "one part call failed, the other was answered (and billed)"
    row = row_of(caught.value.response.headers["x-leo-request-id"])
    assert row.status_code == 400 and row.upstream_calls == 2
    assert (row.prompt_tokens, row.completion_tokens) == (after[1] - prompt, after[2] - completion)
    assert row.cost_usd == (Decimal("0.15") * row.prompt_tokens + Decimal("0.60") * row.completion_tokens) / 10**6
    assert row.cost_usd > 0


# --- 6. streams: the usage chunk is read after the client left; else the tokenizer counts ----------

@pytest.mark.parametrize("flight", [True, False], ids=["deduplicated", "no-cache"])
def test_the_usage_chunk_is_read_after_the_client_left(flight: bool, make_tenant: Any, fake_upstream: Any) -> None:
    kit = quiet(make_tenant("LateUsage"))
    q = f"Please explain {name()} in detail, with its history and its uses."
    fake_upstream.configure(usage_delay_ms=1500)
    _, prompt, completion = upstream_tokens(fake_upstream)
    body = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True}, "messages": user(q)}
    headers = {} if flight else {"Cache-Control": "no-cache"}
    with kit.http() as http, http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        rid = response.headers["x-leo-request-id"]
        for line in response.iter_lines():
            if '"finish_reason":"stop"' in line:
                break  # the last content chunk: leave before the usage chunk
    row = row_of(rid)
    _, prompt_after, completion_after = upstream_tokens(fake_upstream)
    print(f"\nclient left before the usage chunk: ledger {row.prompt_tokens}+{row.completion_tokens}, "
          f"upstream {prompt_after - prompt}+{completion_after - completion}")
    assert (prompt_after - prompt, completion_after - completion) != (0, 0), "the upstream sent its usage"
    assert (row.prompt_tokens, row.completion_tokens) == (prompt_after - prompt, completion_after - completion)
    assert row.status_code == 499
    assert not any(s["stage"] == "usage_estimated" for s in row.trail["stages"])


def test_a_stream_without_usage_is_counted_with_the_models_tokenizer(make_tenant: Any, fake_upstream: Any) -> None:
    """The upstream's stream is cut after the last content chunk, before its usage: the ledger counts
    the prompt and the received answer with gpt-4o-mini's tokenizer (o200k_base), not ~4 chars a token."""
    kit = quiet(make_tenant("Tokenizer"))
    q = f"Zürich, São Paulo and Kraków: 12345 67890 {name()}?"
    body = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True}, "messages": user(q)}
    fake_upstream.configure(drop_after_chunks=prepare_chat(body, request_id="x", created=0).usage_event)
    text = []
    with kit.http() as http, http.stream("POST", "/v1/chat/completions", json=body,
                                         headers={"Cache-Control": "no-cache"}) as response:
        rid = response.headers["x-leo-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: {") and '"delta"' in line:
                for choice in json.loads(line[6:]).get("choices") or []:
                    text.append(choice["delta"].get("content") or "")
    answer = "".join(text)
    assert answer.startswith(f"ANSWER[{answer_tag(q)}]")
    row = row_of(rid)
    assert row.status_code == 502 and row.error_code == "stream_cut"
    enc = bpe_openai.encoding_for_model(MODEL)
    prompt = 3 + 3 + len(enc.encode("user")) + len(enc.encode(q))
    assert (row.prompt_tokens, row.completion_tokens) == (prompt, len(enc.encode(answer)))


# --- 9. a follower's stream outlives the leader's client -------------------------------------------

def test_a_follower_stream_is_not_cut_when_the_leaders_client_leaves(make_tenant: Any, fake_upstream: Any) -> None:
    kit = quiet(make_tenant("Follow"))
    q = f"Which river flows through {name()}?"
    body = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True}, "messages": user(q)}
    fake_upstream.configure(chunk_delay_ms=150)
    leader_started, follower_started = threading.Event(), threading.Event()
    follower: dict[str, Any] = {}

    def follow() -> None:
        leader_started.wait(10)
        lines = []
        with kit.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
            follower["cache"] = response.headers["x-leo-cache"]
            follower["id"] = response.headers["x-leo-request-id"]
            for line in response.iter_lines():
                if line.startswith("data:"):
                    lines.append(line)
                    follower_started.set()
        follower["lines"] = lines

    thread = threading.Thread(target=follow)
    thread.start()
    calls = fake_upstream.stats()["chat"]
    with kit.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        leader_id = response.headers["x-leo-request-id"]
        for line in response.iter_lines():
            if line.startswith("data:"):
                leader_started.set()
                if follower_started.wait(10):
                    break  # the leader's client leaves while the follower is reading
    thread.join(30)
    assert follower["cache"] == "dedup" and fake_upstream.stats()["chat"] == calls + 1
    lines = follower["lines"]
    assert lines[-1] == "data: [DONE]" and not any("stream_cut" in line or '"error"' in line for line in lines)
    assert f"ANSWER[{answer_tag(q)}]" in "".join(lines)
    assert row_of(follower["id"]).status_code == 200
    assert row_of(leader_id).status_code == 499
