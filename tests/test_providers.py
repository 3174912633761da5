"""Provider routing: tenant credentials (encrypted at rest), fallback order, retries."""

from __future__ import annotations

import uuid

import openai
import pytest

from fake_upstream import run_in_thread
from optimizer.models import RequestLog
from tenants.models import ProviderCredential
from tests.conftest import TenantKit, wait_for_rows


@pytest.fixture
def second_upstream():
    up = run_in_thread()
    yield up
    up.stop()


def ask(kit: TenantKit, model: str = "gpt-4o-mini"):
    return kit.client().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": f"provider test {uuid.uuid4().hex}"}])


def test_tenant_credential_is_used_first_and_stored_encrypted(kit: TenantKit, second_upstream, fake_upstream) -> None:
    secret = "sk-tenant-own-" + uuid.uuid4().hex
    cred = ProviderCredential(tenant=kit.tenant, name="own", base_url=second_upstream.url, model_names=["gpt-4o-mini"])
    cred.set_key(secret)
    cred.save()
    stored = ProviderCredential.objects.values_list("encrypted_key", flat=True).get(pk=cred.pk)
    assert secret not in stored and cred.key_last4 == secret[-4:]
    raw = ask(kit)
    assert raw.headers["x-leo-provider"] == "tenant:own"
    assert second_upstream.stats()["auth_suffixes"] == {secret[-4:]: 1}
    [row] = wait_for_rows(RequestLog, 1, request_id=raw.headers["x-leo-request-id"])
    assert row.provider == "tenant:own"
    # a model the credential does not list still goes to the platform upstream
    raw = ask(kit, "gpt-4o")
    assert raw.headers["x-leo-provider"] == "platform"


def test_fallback_to_the_platform_when_the_tenant_provider_fails(kit: TenantKit, second_upstream) -> None:
    cred = ProviderCredential(tenant=kit.tenant, name="flaky", base_url=second_upstream.url,
                              model_names=["gpt-4o-mini"])
    cred.set_key("sk-flaky-0000")
    cred.save()
    second_upstream.configure(error_status=503, fail_next=100)
    raw = ask(kit)
    assert raw.headers["x-leo-provider"] == "platform"
    assert raw.parse().choices[0].message.content.startswith("ANSWER[")
    assert second_upstream.stats()["errors"] >= 1
    [row] = wait_for_rows(RequestLog, 1, request_id=raw.headers["x-leo-request-id"])
    assert row.upstream_calls == 2
    assert [s["stage"] for s in row.trail["stages"]].count("upstream_error") == 1


def test_exclusive_credential_never_falls_back(kit: TenantKit, second_upstream, fake_upstream) -> None:
    cred = ProviderCredential(tenant=kit.tenant, name="only", base_url=second_upstream.url,
                              model_names=["gpt-4o-mini"], exclusive=True)
    cred.set_key("sk-only-0000")
    cred.save()
    second_upstream.configure(error_status=500, fail_next=100)
    before = fake_upstream.stats()["chat"]
    with pytest.raises(openai.APIStatusError) as exc:
        ask(kit)
    assert exc.value.status_code == 502
    assert fake_upstream.stats()["chat"] == before


def test_retries_transient_errors_before_answering(kit: TenantKit, fake_upstream) -> None:
    fake_upstream.configure(error_status=429, fail_next=1, retry_after=0)
    raw = ask(kit)
    assert raw.parse().choices[0].message.content.startswith("ANSWER[")
    stats = fake_upstream.stats()
    assert stats["errors"] >= 1


def test_tenant_credential_models_are_listed(kit: TenantKit, second_upstream) -> None:
    cred = ProviderCredential(tenant=kit.tenant, name="local", base_url=second_upstream.url,
                              model_names=["llama3-local"])
    cred.set_key("sk-local-0000")
    cred.save()
    ids = {m.id for m in kit.client().models.list()}
    assert "llama3-local" in ids
    resp = ask(kit, "llama3-local").parse()
    assert resp.model == "llama3-local"
