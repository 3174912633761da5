"""Model routing through a live server: opt-in per tenant, per key and per model, `X-LEO-Route`,
and savings counted against the requested model (openai SDK against the fake upstream)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import openai
import pytest

from optimizer.models import OptimizerSettings, RequestLog
from tenants.models import ApiKey
from tests.conftest import TenantKit, wait_for_rows

RULE = {"from_model": "gpt-4o", "to_model": "gpt-4o-mini", "max_prompt_tokens": 200}
# gpt-4o and gpt-4o-mini list prices per million tokens (optimizer/prices_seed.py)
GPT4O = (Decimal("2.50"), Decimal("10.00"))
MINI = (Decimal("0.15"), Decimal("0.60"))


def simple_question() -> str:
    return f"What is the capital of the island nation called {uuid.uuid4().hex[:10]}?"


def cost(price: tuple[Decimal, Decimal], prompt: int, completion: int) -> Decimal:
    return (price[0] * prompt + price[1] * completion) / Decimal(1_000_000)


@pytest.fixture
def routed(make_tenant: Any) -> TenantKit:
    kit = make_tenant("Router")
    OptimizerSettings.objects.create(tenant=kit.tenant, routing=True, routing_rules=[RULE])
    return kit


def ask(kit: TenantKit, content: str, model: str = "gpt-4o", key: str | None = None, **kw: Any) -> Any:
    client = kit.client() if key is None else openai.OpenAI(base_url=kit.base_url, api_key=key, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **kw)


def test_simple_request_goes_to_the_cheaper_model_and_saves_against_the_requested(routed: TenantKit,
                                                                                  fake_upstream: Any) -> None:
    before = fake_upstream.stats()["by_model"].get("gpt-4o-mini", {}).get("requests", 0)
    raw = ask(routed, simple_question())
    resp = raw.parse()
    assert raw.headers["x-leo-route"] == "gpt-4o->gpt-4o-mini"
    assert raw.headers["x-leo-cache"] == "miss"
    assert fake_upstream.stats()["by_model"]["gpt-4o-mini"]["requests"] == before + 1
    [row] = wait_for_rows(RequestLog, 1, request_id=raw.headers["x-leo-request-id"])
    p, c = resp.usage.prompt_tokens, resp.usage.completion_tokens
    assert (row.model, row.served_model) == ("gpt-4o", "gpt-4o-mini")
    assert row.cost_usd == cost(MINI, p, c)
    assert row.counterfactual_usd == cost(GPT4O, p, c)
    assert row.routing_saved_usd == cost(GPT4O, p, c) - cost(MINI, p, c) > 0
    assert Decimal(raw.headers["x-leo-cost-saved-usd"]) == row.saved_usd.quantize(Decimal("0.00000001"))


def test_streamed_request_is_routed_too(routed: TenantKit) -> None:
    raw = ask(routed, simple_question(), stream=True, stream_options={"include_usage": True})
    chunks = list(raw.parse())
    assert raw.headers["x-leo-route"] == "gpt-4o->gpt-4o-mini"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("ANSWER[")
    [row] = wait_for_rows(RequestLog, 1, request_id=raw.headers["x-leo-request-id"])
    assert row.served_model == "gpt-4o-mini" and row.routing_saved_usd > 0


@pytest.mark.parametrize("content", [
    "Explain step by step how TCP slow start works for host {u}.",
    "What is 17*23 plus the id {u}?",
    "What does `print(x)` print for the object {u}?",
])
def test_requests_the_classifier_calls_hard_stay_on_the_requested_model(routed: TenantKit, content: str) -> None:
    raw = ask(routed, content.format(u=uuid.uuid4().hex[:8]))
    assert "x-leo-route" not in raw.headers
    [row] = wait_for_rows(RequestLog, 1, request_id=raw.headers["x-leo-request-id"])
    assert row.served_model == "gpt-4o" and row.routing_saved_usd == 0


def test_tools_are_never_routed(routed: TenantKit) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    raw = ask(routed, simple_question(), tools=tools)
    assert "x-leo-route" not in raw.headers
    assert raw.parse().choices[0].message.tool_calls[0].function.name == "lookup"


def test_routing_is_off_unless_the_tenant_opts_in(make_tenant: Any) -> None:
    kit = make_tenant("NoRoute")
    # rules present but the switch off: nothing is routed
    OptimizerSettings.objects.create(tenant=kit.tenant, routing=False, routing_rules=[RULE])
    raw = ask(kit, simple_question())
    assert "x-leo-route" not in raw.headers
    [row] = wait_for_rows(RequestLog, 1, request_id=raw.headers["x-leo-request-id"])
    assert row.served_model == "gpt-4o"


def test_a_rule_applies_only_to_its_model(routed: TenantKit) -> None:
    raw = ask(routed, simple_question(), model="gpt-4.1")
    assert "x-leo-route" not in raw.headers


def test_a_rule_with_api_keys_applies_only_to_those_keys(make_tenant: Any) -> None:
    kit = make_tenant("PerKey")
    other, other_plain = ApiKey.issue(kit.tenant, name="batch jobs")
    OptimizerSettings.objects.create(tenant=kit.tenant, routing=True,
                                     routing_rules=[{**RULE, "api_keys": [other.prefix]}])
    plain = ask(kit, simple_question())
    assert "x-leo-route" not in plain.headers
    opted = ask(kit, simple_question(), key=other_plain)
    assert opted.headers["x-leo-route"] == "gpt-4o->gpt-4o-mini"
    [row] = wait_for_rows(RequestLog, 1, request_id=opted.headers["x-leo-request-id"])
    assert row.api_key_id == other.id and row.served_model == "gpt-4o-mini"


def test_the_portal_settings_form_takes_api_keys_and_checks_them(db: Any) -> None:
    import json

    from django import forms

    from optimizer.portal.forms import OptimizerSettingsForm

    def clean(rules: Any) -> Any:
        form = OptimizerSettingsForm()
        form.cleaned_data = {"routing_rules_text": json.dumps(rules)}
        return form.clean_routing_rules_text()

    assert clean([{**RULE, "api_keys": ["leo_AbCd1234"]}]) == [{**RULE, "api_keys": ["leo_AbCd1234"]}]
    for bad in ("leo_AbCd1234", [1]):
        with pytest.raises(forms.ValidationError, match="api_keys"):
            clean([{**RULE, "api_keys": bad}])
