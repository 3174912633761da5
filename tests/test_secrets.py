"""No plaintext key anywhere: not in the database, not in the logs, not in error bodies."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import openai
import pytest
from django.core.management import call_command

from optimizer.models import RequestLog
from tenants.models import ProviderCredential
from tests.conftest import TenantKit, wait_for_rows


def test_database_dump_and_server_logs_hold_no_plaintext_key(kit: TenantKit, leo_server, make_tenant) -> None:
    provider_secret = "sk-provider-" + uuid.uuid4().hex
    cred = ProviderCredential(tenant=kit.tenant, name="p", base_url="http://127.0.0.1:9/v1", model_names=["x-model"])
    cred.set_key(provider_secret)
    cred.save()
    client = kit.client()
    resp = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"secret test {uuid.uuid4().hex}"}])
    wait_for_rows(RequestLog, 1, request_id=resp.headers["x-leo-request-id"])
    # a wrong key and a revoked key produce errors: neither may echo the key
    wrong = kit.key[:-4] + "abcd"
    with pytest.raises(openai.AuthenticationError) as exc:
        openai.OpenAI(base_url=kit.base_url, api_key=wrong, max_retries=0).models.list()
    assert wrong not in str(exc.value.body) and kit.key not in str(exc.value.body)

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    text = dump.getvalue()
    assert kit.key not in text
    assert kit.key[12:] not in text  # not even the secret part after the lookup prefix
    assert provider_secret not in text
    assert kit.api_key.prefix in text  # the dump is real: it holds the key's prefix

    log = Path(leo_server.log_path).read_text(errors="replace")
    assert "request" in log
    for secret in (kit.key, kit.key[12:], wrong, provider_secret):
        assert secret not in log
