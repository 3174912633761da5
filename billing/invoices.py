"""The tenant's invoices, read from Stripe for the billing page: the upcoming one and the latest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .models import BillingAccount, SubscriptionStatus
from .stripe_api import StripeRejected, call, client, get_field


@dataclass(frozen=True)
class InvoiceView:
    id: str
    number: str
    created: datetime | None
    amount_cents: int
    currency: str
    status: str
    url: str

    @property
    def amount(self) -> Decimal:
        return Decimal(self.amount_cents) / 100


def _invoice_view(inv: Any, status: str | None = None) -> InvoiceView:
    created = get_field(inv, "created") or get_field(inv, "date")
    return InvoiceView(
        id=str(get_field(inv, "id", "") or ""), number=str(get_field(inv, "number", "") or ""),
        created=datetime.fromtimestamp(int(created), tz=UTC) if created else None,
        amount_cents=int(get_field(inv, "total", 0) or 0), currency=str(get_field(inv, "currency", "usd") or "usd"),
        status=status or str(get_field(inv, "status", "") or ""), url=str(get_field(inv, "hosted_invoice_url", "") or ""))


def invoices(account: BillingAccount, limit: int = 24) -> tuple[InvoiceView | None, list[InvoiceView]]:
    """(the upcoming invoice or None, the latest invoices), read from Stripe."""
    if not account.customer_id:
        return None, []
    stripe = client()
    upcoming = None
    if account.subscription_id and account.status != SubscriptionStatus.CANCELED:
        try:
            upcoming = _invoice_view(call(stripe.v1.invoices.create_preview,
                                          params={"customer": str(account.customer_id)}), status="upcoming")
        except StripeRejected:  # no upcoming invoice
            upcoming = None
    listed = call(stripe.v1.invoices.list, params={"customer": str(account.customer_id), "limit": limit})
    return upcoming, [_invoice_view(inv) for inv in listed.data]
