"""#15.8: a request that just returned is on the portal: its detail page is never a 404 (the
portal waits for this process's write-behind queue, and an id not written yet shows 'being
recorded' and re-checks), and the overview counts it. Another tenant's id is a 404, as everywhere
in the portal."""

from __future__ import annotations

import re
import time
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from optimizer.models import RequestLog
from optimizer.pipeline.writer import writer
from tests.portal_helpers import Actors, build_actors, make_ledger_row

pytestmark = pytest.mark.django_db(transaction=True)  # the writer thread writes on its own connection


def _owner(actors: Actors) -> Client:
    client = Client()
    client.force_login(actors.owner)
    return client


def _queued_row(actors: Actors) -> RequestLog:
    """What the proxy does at response time: the row goes to the write-behind queue."""
    row = RequestLog(request_id="req_" + uuid.uuid4().hex, created_at=timezone.now(), tenant=actors.tenant,
                     api_key=actors.key, endpoint="chat.completions", model="gpt-4o-mini", served_model="gpt-4o-mini",
                     status_code=200, technique="miss", prompt_tokens=7, completion_tokens=3,
                     cost_usd=Decimal("0.00002"), counterfactual_usd=Decimal("0.00002"), upstream_calls=1)
    writer.put_row(row)
    return row


def test_detail_of_a_request_that_just_returned() -> None:
    actors = build_actors()
    client = _owner(actors)
    row = _queued_row(actors)
    response = client.get(f"/portal/requests/{row.request_id}/")
    assert response.status_code == 200
    assert 'id="request-figures"' in response.content.decode()  # the row itself, not 'being recorded'
    writer.flush()


def test_overview_counts_a_call_made_a_moment_ago() -> None:
    actors = build_actors()
    client = _owner(actors)
    before = RequestLog.objects.filter(tenant=actors.tenant).count()
    _queued_row(actors)
    page = client.get("/portal/?period=24h").content.decode()
    assert re.search(r'id="fig-requests">([\d,]+)<', page).group(1) == str(before + 1)
    writer.flush()


def test_unknown_id_is_being_recorded_then_404_and_leaks_nothing() -> None:
    actors = build_actors()
    client = _owner(actors)
    theirs = make_ledger_row(actors.outsider_tenant, request_id="req_" + uuid.uuid4().hex)
    unknown = "req_" + uuid.uuid4().hex
    response = client.get(f"/portal/requests/{unknown}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Being recorded" in body and 'hx-trigger="every 1s"' in body
    # Another tenant's request is a 404 that does not echo its id, like every cross-tenant URL.
    response = client.get(f"/portal/requests/{theirs.request_id}/")
    assert response.status_code == 404 and theirs.request_id not in response.content.decode()
    # Not one of our ids, or asked about for too long: a plain 404.
    assert client.get("/portal/requests/not-an-id/").status_code == 404
    old = int(time.time()) - 120
    assert client.get(f"/portal/requests/{unknown}/?since={old}").status_code == 404
    polled = client.get(f"/portal/requests/{unknown}/?since={old}", headers={"HX-Request": "true"})
    assert polled.status_code == 204 and polled["HX-Redirect"].endswith(f"?since={old}")
    # Once written, the poll sends the browser to the full page.
    make_ledger_row(actors.tenant, actors.key, request_id=unknown)
    polled = client.get(f"/portal/requests/{unknown}/?since={int(time.time())}", headers={"HX-Request": "true"})
    assert polled.status_code == 204 and polled["HX-Redirect"] == f"/portal/requests/{unknown}/"
