"""Observability in a real browser (headless Chromium) against a live LEO server (issue #15):

an owner turns on request bodies in Settings -> the openai SDK sends tagged requests with a
`user` -> the requests list sorts and filters by latency and tag -> the detail page shows the
conversation, the answer and the cache entry that served the hit -> the breakdown page groups by
the tag -> the overview shows latency p50 and p95.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import openai
import pytest

from tests.conftest import seed_prices, wait_for_rows
from tests.portal_helpers import verified_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-portal-123!"


def test_bodies_latency_and_breakdowns_in_the_browser(portal_server: Any, new_page: Any) -> None:
    from optimizer.models import RequestBody, RequestLog
    from tenants.models import ApiKey, Membership, Role, Tenant

    seed_prices()
    base = portal_server.url
    tenant = Tenant.create(f"Observe {uuid.uuid4().hex[:6]}")
    owner = verified_user(f"observer-{uuid.uuid4().hex[:8]}@example.com")
    Membership.objects.create(user=owner, tenant=tenant, role=Role.OWNER)
    _, key = ApiKey.issue(tenant, name="observed")
    page = new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]:has-text('Sign In')")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)

    # The owner opts in to keeping bodies for 3 days.
    page.goto(f"{base}/portal/settings/")
    page.check("input[name=store_bodies]")
    page.fill("input[name=body_retention_days]", "3")
    page.click("#optimizer-settings button[type=submit]")
    page.wait_for_url(f"{base}/portal/settings/")
    assert page.locator("input[name=store_bodies]").is_checked()
    time.sleep(2.2)  # the server's settings snapshot lives two seconds

    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)
    question = f"Which river flows through Cairo? {uuid.uuid4().hex[:6]}"
    secret = "sk-proj-" + "Zx9" * 10
    tagged = {"X-LEO-Tags": "team=search,env=prod"}
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", user="alice", extra_headers=tagged,
        messages=[{"role": "system", "content": f"Internal key {secret}"}, {"role": "user", "content": question}])
    hit = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", user="alice", extra_headers=tagged,
        messages=[{"role": "system", "content": f"Internal key {secret}"}, {"role": "user", "content": question}])
    assert hit.headers["X-LEO-Cache"] == "exact"
    answer = hit.parse().choices[0].message.content
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Untagged question?"}],
                                   metadata={"team": "ads"})
    rows = wait_for_rows(RequestLog, 3, tenant=tenant)
    wait_for_rows(RequestBody, 3, tenant=tenant)
    slowest = max(rows, key=lambda r: r.latency_ms)

    # Requests: sorted by latency, filtered by tag.
    page.goto(f"{base}/portal/requests/")
    page.select_option("select[name=sort]", "slowest")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*sort=slowest.*"))
    assert page.locator("#requests tbody tr").first.inner_text().count(slowest.request_id) == 1
    page.fill("input[name=tag]", "team=search")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*tag=team%3Dsearch.*"))
    assert page.locator("#requests tbody tr").count() == 2

    # The hit's page: its conversation (secret redacted), the answer, and the entry that served it.
    hit_id = hit.headers["X-LEO-Request-Id"]
    page.click(f"a:has-text('{hit_id}')")
    conversation = page.locator("#request-body").inner_text()
    assert question in conversation and answer in conversation
    assert secret not in page.content() and "[REDACTED]" in conversation
    assert question in page.locator("#served-question").inner_text()
    assert "overhead" in page.locator("#req-latency").inner_text()
    assert "team=search" in page.locator("#req-tags").inner_text()

    # Breakdown by the `team` tag.
    page.goto(f"{base}/portal/breakdown/")
    page.select_option("select[name=group_by]", "tag")
    page.fill("input[name=tag]", "team")
    page.select_option("select[name=period]", "24h")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*group_by=tag.*"))
    table = page.locator("#breakdown")
    search = table.locator("tbody tr", has_text="search").inner_text().split("\t")
    ads = table.locator("tbody tr", has_text="ads").inner_text().split("\t")
    assert search[1] == "2" and search[6] == "50%" and search[7].endswith(" ms")
    assert ads[1] == "1" and ads[6] == "0%"

    # The overview: latency percentiles and their chart.
    page.goto(f"{base}/portal/?period=24h")
    assert re.fullmatch(r"[\d.]+ ms", page.locator("#fig-latency-p50").inner_text())
    assert re.fullmatch(r"[\d.]+ ms", page.locator("#fig-latency-p95").inner_text())
    assert page.locator("#latency svg.chart").count() == 1

    # A member without the setting sees that it is off, not an empty page.
    page.goto(f"{base}/portal/settings/")
    page.uncheck("input[name=store_bodies]")
    page.click("#optimizer-settings button[type=submit]")
    page.wait_for_url(f"{base}/portal/settings/")
    page.goto(f"{base}/portal/requests/{hit_id}/")
    assert "not stored for this tenant" in page.locator("#body-off").inner_text()
    assert RequestBody.objects.filter(tenant=tenant).count() == 0
