"""Requests (the ledger) in the portal: filters, a page per request with its trail, streamed CSV,
and feedback on served answers moving the adaptive strictness."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from optimizer.models import Feedback, OptimizerSettings
from tenants.models import ApiKey
from tests.portal_helpers import Actors, build_actors, make_ledger_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def actors() -> Actors:
    return build_actors()


@pytest.fixture
def client(actors: Actors) -> Client:
    c = Client()
    c.force_login(actors.member)  # reading the ledger is for every member
    return c


def test_filters(actors: Actors, client: Client) -> None:
    other_key, _ = ApiKey.issue(actors.tenant, name="other")
    old = make_ledger_row(actors.tenant, other_key, model="gpt-4o", created_at=timezone.now() - timedelta(days=3))
    err = make_ledger_row(actors.tenant, actors.key, technique="error", status_code=502)
    body = client.get("/portal/requests/").content.decode()
    assert all(r.request_id in body for r in (old, err, actors.log))
    cases = {f"key={other_key.pk}": [old], "model=gpt-4o": [old], "technique=exact": [actors.log],
             "status=error": [err], f"start={(timezone.now() - timedelta(days=1)).date()}": [err, actors.log],
             f"end={(timezone.now() - timedelta(days=2)).date()}": [old]}
    for query, expected in cases.items():
        body = client.get(f"/portal/requests/?{query}").content.decode()
        for row in (old, err, actors.log):
            assert (row.request_id in body) == (row in expected), (query, row.technique)
    assert client.get("/portal/requests/?technique=nonsense").status_code == 400
    assert client.get("/portal/requests/?key=abc").status_code == 400
    assert client.get("/portal/requests/?page=zzz").status_code == 200


def test_pages_without_counting(actors: Actors, client: Client) -> None:
    for i in range(55):
        make_ledger_row(actors.tenant, actors.key, created_at=timezone.now() - timedelta(minutes=i + 1))
    first = client.get("/portal/requests/").content.decode()
    assert "Older →" in first
    second = client.get("/portal/requests/?page=2").content.decode()
    assert "Older →" not in second and "← Newer" in second


def test_detail_shows_the_trail(actors: Actors, client: Client) -> None:
    row = make_ledger_row(actors.tenant, actors.key, technique="semantic", similarity=0.9312,
                          trail={"stages": [{"stage": "exact", "hit": False},
                                            {"stage": "semantic", "hit": True, "similarity": 0.9312,
                                             "verifier": "ok", "threshold": 0.85}]},
                          cost_usd=Decimal(0), counterfactual_usd=Decimal("0.00042"), saved_usd=Decimal("0.00042"))
    body = client.get(f"/portal/requests/{row.request_id}/").content.decode()
    for text in ("semantic", "0.9312", "verifier", "ok", "threshold", "$0.00042000"):
        assert text in body, text
    assert "Mark wrong" not in body  # verdicts are for owners and admins (tests/test_feedback_role.py)
    assert client.get("/portal/requests/req_does_not_exist/").status_code == 404


def test_csv_streams_the_filtered_ledger(actors: Actors, client: Client) -> None:
    for i in range(30):
        make_ledger_row(actors.tenant, actors.key, model="m-csv", created_at=timezone.now() - timedelta(seconds=i))
    response = client.get("/portal/requests/export.csv?model=m-csv")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 30 and {r["model"] for r in rows} == {"m-csv"}
    assert rows[0]["key_prefix"] == actors.key.prefix
    assert actors.key.digest not in str(rows)


def test_feedback_moves_the_semantic_strictness(actors: Actors) -> None:
    client = Client()
    client.force_login(actors.admin)  # verdicts move a tenant setting: owners and admins only
    row = make_ledger_row(actors.tenant, actors.key, technique="semantic", similarity=0.86)
    OptimizerSettings.objects.get_or_create(tenant=actors.tenant)
    response = client.post(f"/portal/requests/{row.request_id}/feedback/", {"correct": "0"})
    assert response.status_code == 302
    assert Feedback.objects.get(request_log=row).correct is False
    state = OptimizerSettings.objects.get(tenant=actors.tenant).adaptive_state
    assert state["level"] > 0  # a wrong semantic answer makes matching stricter
    page = client.get("/portal/settings/").content.decode()
    assert "Adaptive strictness" in page and "judge probability of <strong>0.02</strong>" in page
    assert client.post("/portal/requests/req_nope/feedback/", {"correct": "0"}).status_code == 404
