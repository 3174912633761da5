"""Observability through a live server and the official openai SDK (issue #15, items 1-3):
request bodies (opt-in, redacted, purged), latency columns and percentiles, and breakdowns by
model, key, `user` and tag in /v1/analytics."""

from __future__ import annotations

import time
import urllib.request
from datetime import timedelta
from typing import Any

import openai
import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from optimizer import latency
from optimizer.models import CacheEntry, OptimizerSettings, RequestBody, RequestLog
from optimizer.redaction import redact_text
from optimizer.tasks import purge_request_bodies
from tenants.models import ApiKey
from tests.conftest import TenantKit, wait_for_rows

MINI = "gpt-4o-mini"


def chat(kit: TenantKit, content: str, *, key: str | None = None, **kwargs: Any) -> Any:
    client = openai.OpenAI(base_url=kit.base_url, api_key=key, max_retries=0, timeout=30) if key else kit.client()
    raw = client.chat.completions.with_raw_response.create(
        model=kwargs.pop("model", MINI), messages=[{"role": "user", "content": content}], **kwargs)
    raw.parse()
    return raw


def row_of(raw: Any) -> RequestLog:
    request_id = raw.headers["x-leo-request-id"]
    return wait_for_rows(RequestLog, 1, request_id=request_id)[0]


@pytest.mark.django_db(transaction=True)
def test_tags_user_and_latency_columns_are_recorded(kit: TenantKit) -> None:
    raw = chat(kit, "Tag me: what is 2+2?", user="alice@example.com", metadata={"team": "search"},
               extra_headers={"X-LEO-Tags": "env=prod, team=ads"})
    row = row_of(raw)
    assert row.end_user == "alice@example.com"
    assert row.tags == {"team": "ads", "env": "prod"}  # the header wins over `metadata` on a shared name
    assert row.latency_ms > 0 and row.upstream_latency_ms > 0
    assert row.overhead_ms == pytest.approx(row.latency_ms - row.upstream_latency_ms, abs=0.01)
    hit = row_of(chat(kit, "Tag me: what is 2+2?"))
    assert hit.technique == "exact" and hit.upstream_latency_ms == 0
    assert hit.overhead_ms == pytest.approx(hit.latency_ms, abs=0.01)
    assert hit.cache_key == CacheEntry.objects.get(tenant=kit.tenant).key_hash


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("kwargs", "param"), [
    ({"extra_headers": {"X-LEO-Tags": "novalue"}}, "X-LEO-Tags"),
    ({"extra_headers": {"X-LEO-Tags": "bad name=x"}}, "X-LEO-Tags"),
    ({"extra_headers": {"X-LEO-Tags": ",".join(f"t{i}=v" for i in range(17))}}, "X-LEO-Tags"),
    ({"extra_headers": {"X-LEO-Tags": "team=" + "x" * 300}}, "X-LEO-Tags"),
    ({"metadata": {"team": 5}}, "metadata"),
    ({"metadata": ["team"]}, "metadata"),
    ({"user": 12}, "user"),
    ({"user": "u" * 300}, "user"),
])
def test_bad_attribution_gets_a_400_envelope_and_a_ledger_row_is_not_needed(kit: TenantKit, kwargs: dict[str, Any],
                                                                          param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        chat(kit, "hello", **kwargs)
    assert info.value.status_code == 400
    error = info.value.body
    assert error["param"] == param and error["code"] == "invalid_value"


@pytest.mark.django_db(transaction=True)
def test_analytics_group_by_model_key_user_and_tag(kit: TenantKit) -> None:
    second, second_key = ApiKey.issue(kit.tenant, name="second")
    chat(kit, "Group question one?", user="alice", extra_headers={"X-LEO-Tags": "team=search"})
    chat(kit, "Group question one?", user="alice", extra_headers={"X-LEO-Tags": "team=search"})  # exact hit
    chat(kit, "Group question two?", key=second_key, user="bob", metadata={"team": "ads"})
    chat(kit, "Group question three?", model="gpt-4o")
    wait_for_rows(RequestLog, 4, tenant=kit.tenant)
    http = kit.http()

    def groups(group_by: str) -> dict[Any, dict[str, Any]]:
        response = http.get("/v1/analytics", params={"group_by": group_by})
        assert response.status_code == 200, response.text
        body = response.json()
        for name in ("requests", "upstream_calls", "prompt_tokens", "completion_tokens", "cost_usd",
                     "counterfactual_usd", "saved_usd", "tokens_saved", "hit_rate", "by_technique"):
            assert name in body  # the totals stay as they were
        assert body["requests"] == 4 and body["group_by"] == group_by
        assert body["latency_p50_ms"] > 0 and body["latency_p95_ms"] >= body["latency_p50_ms"]
        return {g["value"]: g for g in body["groups"]}

    by_model = groups("model")
    assert by_model[MINI]["requests"] == 3 and by_model["gpt-4o"]["requests"] == 1
    assert by_model[MINI]["hit_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert by_model[MINI]["by_technique"]["exact"]["requests"] == 1
    assert by_model[MINI]["saved_usd"] > 0 and by_model["gpt-4o"]["cost_usd"] > 0
    assert by_model["gpt-4o"]["latency_p50_ms"] > 0 and by_model["gpt-4o"]["latency_p95_ms"] > 0
    assert by_model["gpt-4o"]["upstream_latency_p50_ms"] > 0 and "overhead_p95_ms" in by_model["gpt-4o"]

    by_key = groups("key")
    assert by_key[kit.api_key.prefix]["requests"] == 3 and by_key[second.prefix]["requests"] == 1

    by_user = groups("user")
    assert by_user["alice"]["requests"] == 2 and by_user["bob"]["requests"] == 1 and by_user[None]["requests"] == 1

    by_team = groups("tag:team")
    assert by_team["search"]["requests"] == 2 and by_team["ads"]["requests"] == 1 and by_team[None]["requests"] == 1
    assert by_team["search"]["hit_rate"] == 0.5

    for bad in ("colour", "tag:", "tag:a b", "tag:" + "x" * 65):
        response = http.get("/v1/analytics", params={"group_by": bad})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "group_by"


@pytest.mark.django_db(transaction=True)
def test_bodies_are_kept_only_when_opted_in_redacted_and_purged(kit: TenantKit) -> None:
    secret = "sk-proj-" + "A1b2C3d4" * 5
    plain = row_of(chat(kit, f"Not stored: my key is {secret}"))
    time.sleep(0.3)
    assert not RequestBody.objects.filter(request_log_id=plain.request_id).exists()

    OptimizerSettings.objects.update_or_create(tenant=kit.tenant, defaults={"store_bodies": True,
                                                                            "body_retention_days": 3})
    time.sleep(2.2)  # the servers' settings snapshot lives two seconds
    raw = chat(kit, f"Stored: my key is {secret}, mail me at ann@example.com")
    row = row_of(raw)
    body = wait_for_rows(RequestBody, 1, request_log_id=row.request_id)[0]
    assert body.tenant_id == kit.tenant.pk and body.redactions == 1
    assert secret not in str(body.prompt) and "[REDACTED]" in body.prompt[0]["content"]
    assert "ann@example.com" in body.prompt[0]["content"]  # personal data is kept (docs/portal.md)
    assert body.response["choices"][0]["message"]["content"] == raw.parse().choices[0].message.content
    assert body.expires_at - row.created_at == timedelta(days=3)

    streamed = kit.client().chat.completions.with_raw_response.create(
        model=MINI, messages=[{"role": "user", "content": "Stream and store me"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    stream_body = wait_for_rows(RequestBody, 1, request_log_id=streamed.headers["x-leo-request-id"])[0]
    assert stream_body.response["choices"][0]["message"]["content"] == text

    RequestBody.objects.filter(pk=body.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert purge_request_bodies() == 1
    assert not RequestBody.objects.filter(pk=body.pk).exists()
    assert RequestBody.objects.filter(pk=stream_body.pk).exists()
    assert RequestLog.objects.filter(pk=row.pk).exists()  # the ledger row stays


def test_redaction_patterns() -> None:
    text = ("keys sk-ant-api03-" + "x" * 30 + " leo_Yy9" + "y" * 40 + " AKIAABCDEFGHIJKLMNOP"
            " Authorization: Bearer abc.def-ghi_123456 password=hunter22 ghp_" + "z" * 36 +
            " -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- bob@example.com"
            " eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz")
    clean, count = redact_text(text)
    assert count == 8
    for gone in ("sk-ant", "leo_Yy9", "AKIA", "abc.def", "hunter22", "ghp_", "MIIE", "eyJ"):
        assert gone not in clean
    assert "bob@example.com" in clean and "password=[REDACTED]" in clean


def test_latency_histogram_percentiles_are_within_five_percent() -> None:
    values = [float(v) for v in range(1, 1001)]
    hist = latency.merge([{latency.bucket_of(v): 1} for v in values])
    assert latency.percentile(hist, 0.5) == pytest.approx(500, rel=0.05)
    assert latency.percentile(hist, 0.95) == pytest.approx(950, rel=0.05)
    assert latency.percentile({}, 0.5) is None
    assert latency.bucket_of(0.2) == 0 and latency.percentile({0: 3}, 0.95) == 0.5
    assert latency.bucket_of(0) == -1 and latency.percentile({-1: 9, 5: 1}, 0.5) == 0.0


@pytest.mark.django_db(transaction=True)
def test_cache_lookup_and_embedding_times_reach_the_metrics(kit: TenantKit) -> None:
    """`leo_cache_lookup_seconds{kind="exact"}` and `leo_embedding_seconds` were defined but never
    recorded: a request that looks up both caches now counts in each, read from the live /metrics."""
    metrics_url = kit.base_url.rsplit("/v1", 1)[0] + "/metrics"

    def counts() -> tuple[float, float, float]:
        text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()  # noqa: S310 - loopback
        found = {"exact": 0.0, "semantic": 0.0, "embedding": 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "leo_cache_lookup_seconds_count" and sample.labels.get("kind") in found:
                    found[sample.labels["kind"]] += sample.value
                elif sample.name == "leo_embedding_seconds_count":
                    found["embedding"] += sample.value
        return found["exact"], found["semantic"], found["embedding"]

    before = counts()
    row_of(chat(kit, "Metrics: what is the boiling point of water at sea level?"))
    deadline = time.monotonic() + 10
    while (after := counts()) and any(a <= b for a, b in zip(after, before, strict=True)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(a >= b + 1 for a, b in zip(after, before, strict=True)), (before, after)
