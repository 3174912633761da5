"""Settings: optimizer switches and routing rules (validated, audited), provider credentials
(encrypted, shown only by their last four characters), quotas shown read-only."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from optimizer.models import OptimizerSettings
from tenants.models import AuditEvent, ProviderCredential
from tests.portal_helpers import Actors, build_actors

pytestmark = pytest.mark.django_db

VALID = {"exact_cache": "on", "semantic_cache": "on", "dedup": "on", "decomposition": "on", "prompt_mode": "aggressive",
         "routing": "on", "non_deterministic": "bypass", "cache_ttl_seconds": "3600", "cache_max_entries": "5000",
         "semantic_threshold": "0.9", "semantic_margin": "0.03", "max_wrong_rate": "0.02",
         "routing_rules_text": json.dumps([{"from_model": "gpt-4o", "to_model": "gpt-4o-mini", "max_prompt_tokens": 200}])}


@pytest.fixture
def actors() -> Actors:
    return build_actors()


def test_optimizer_settings_saved_and_audited(actors: Actors) -> None:
    client = Client()
    client.force_login(actors.admin)
    assert client.post("/portal/settings/", VALID).status_code == 302
    row = OptimizerSettings.objects.get(tenant=actors.tenant)
    assert row.prompt_mode == "aggressive" and row.routing and row.semantic_threshold == 0.9
    assert row.routing_rules == [{"from_model": "gpt-4o", "to_model": "gpt-4o-mini", "max_prompt_tokens": 200}]
    event = AuditEvent.objects.get(tenant=actors.tenant, action="settings.changed")
    assert event.data["changed"]["prompt_mode"] == ["lossless", "aggressive"]
    assert "exact_cache" not in event.data["changed"]


@pytest.mark.parametrize("field,value,message", [
    ("routing_rules_text", "[{", "Not valid JSON"),
    ("routing_rules_text", '{"a": 1}', "a list of objects"),
    ("routing_rules_text", '[{"from_model": "a"}]', "Rule 1"),
    ("routing_rules_text", '[{"from_model": "a", "to_model": "b", "bogus": 1}]', "unknown field"),
    # jsonb refuses NUL, even escaped: a form error, not a DataError on PostgreSQL
    ("routing_rules_text", '[{"from_model": "gpt-4o\\u0000", "to_model": "gpt-4o-mini"}]', "NUL"),
    ("semantic_threshold", "1.7", "Between"),
    ("semantic_threshold", "abc", "Enter a number"),
    ("max_wrong_rate", "0", "Between"),  # a zero bound would leave the staircase nowhere to settle
    ("cache_ttl_seconds", "-5", ""),
    ("prompt_mode", "wild", "Select a valid choice"),
])
def test_bad_settings_are_form_errors(actors: Actors, field: str, value: str, message: str) -> None:
    client = Client()
    client.force_login(actors.owner)
    response = client.post("/portal/settings/", {**VALID, field: value})
    assert response.status_code == 400
    assert b"errorlist" in response.content and message.encode() in response.content
    assert not AuditEvent.objects.filter(tenant=actors.tenant, action="settings.changed").exists()


def test_member_sees_settings_read_only(actors: Actors) -> None:
    client = Client()
    client.force_login(actors.member)
    body = client.get("/portal/settings/").content.decode()
    assert "disabled" in body and "Only owners and admins change settings" in body
    assert client.post("/portal/settings/", VALID).status_code == 403


def test_provider_credentials_write_only(actors: Actors, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-live-ABCDEFGH12345678wxyz"
    client = Client()
    client.force_login(actors.owner)
    response = client.post("/portal/settings/providers/new/", {
        "name": "Our Azure", "base_url": "https://llm.example.com/v1/", "api_key": secret,
        "models_text": "gpt-4o, gpt-4o-mini", "priority": "10"})
    assert response.status_code == 302
    cred = ProviderCredential.objects.get(tenant=actors.tenant, name="Our Azure")
    assert cred.get_key() == secret and secret not in cred.encrypted_key
    assert cred.model_names == ["gpt-4o", "gpt-4o-mini"] and cred.base_url == "https://llm.example.com/v1"
    page = client.get("/portal/settings/providers/").content.decode()
    assert "…wxyz" in page and secret not in page and secret[:-4] not in page
    assert secret not in caplog.text
    event = AuditEvent.objects.get(tenant=actors.tenant, action="provider.added")
    assert secret not in json.dumps(event.data)
    # A rejected form does not echo the key back either.
    response = client.post("/portal/settings/providers/new/", {"name": "x", "base_url": "ftp://nope",
                                                               "api_key": secret, "priority": "1"})
    assert response.status_code == 400 and secret not in response.content.decode()
    assert client.post(f"/portal/settings/providers/{cred.pk}/delete/").status_code == 302
    assert not ProviderCredential.objects.filter(pk=cred.pk).exists()


def test_quotas_shown(actors: Actors) -> None:
    actors.tenant.requests_per_minute = 77
    actors.tenant.save()
    client = Client()
    client.force_login(actors.member)
    body = client.get("/portal/settings/providers/").content.decode()
    assert "77" in body and "set by LEO staff" in body
