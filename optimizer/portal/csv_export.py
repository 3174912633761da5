"""The ledger as CSV: its columns, and cells a spreadsheet reads as plain values, never formulas.

``ledger_csv_rows`` writes a header and one line per ledger row as it reads them, so the Requests
page's export streams however many rows the filter selects (``views.requests_csv``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from optimizer.models import RequestLog

__all__ = ["CSV_COLUMNS", "csv_cell", "ledger_csv_rows", "plain_number"]

CSV_COLUMNS = ["request_id", "created_at", "key_prefix", "endpoint", "model", "served_model", "technique",
               "status_code", "error_code", "prompt_tokens", "completion_tokens", "tokens_saved", "cost_usd",
               "counterfactual_usd", "saved_usd", "similarity", "latency_ms", "upstream_latency_ms", "overhead_ms",
               "user", "tags"]
# Ledger rows are read from the database this many at a time while the response streams.
_CHUNK_ROWS = 2000


def plain_number(value: Decimal | float | int | None) -> str:
    """A number as a spreadsheet reads it: fixed point, never `0E-8` or `9.9e-05`; unknown is empty."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, float):
        return plain_number(Decimal(repr(value)))
    return str(value)


# A spreadsheet runs a cell that starts with one of these as a formula (`=HYPERLINK(...)` in a model
# name the client chose): OWASP's advice is to prefix such a text cell with a quote. Numbers are
# left as they are, so a negative saving stays a number.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell, text that a spreadsheet would run as a formula defused."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """A file that hands back what is written to it: csv.writer then returns each line."""

    def write(self, value: str) -> str:
        return value


def ledger_csv_rows(rows: QuerySet[RequestLog], key_prefixes: Mapping[int, str]) -> Iterator[str]:
    """The CSV lines of ``rows`` (header first), read in chunks; ``key_prefixes`` maps an API key's
    id to the prefix shown in the ``key_prefix`` column."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for r in rows.iterator(chunk_size=_CHUNK_ROWS):
        text = (r.request_id, r.created_at.isoformat(), key_prefixes.get(r.api_key_id, ""), r.endpoint, r.model,
                r.served_model, r.technique)
        tags = ",".join(f"{k}={v}" for k, v in (r.tags or {}).items())
        # Text cells are defused against formulas; numbers print as plain decimals (a negative
        # saving must stay a number, not become quoted text).
        yield writer.writerow([*(csv_cell(v) for v in text), r.status_code, csv_cell(r.error_code),
                               r.prompt_tokens, r.completion_tokens, r.tokens_saved,
                               *(plain_number(v) for v in (r.cost_usd, r.counterfactual_usd, r.saved_usd,
                                                           r.similarity, r.latency_ms, r.upstream_latency_ms,
                                                           r.overhead_ms)),
                               csv_cell(r.end_user), csv_cell(tags)])
