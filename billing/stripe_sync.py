"""Usage to Stripe, exactly once: the tenant's tokens saved per UTC day as invoice items.

See billing/models.py for the invariants and docs/billing.md for the protocol:
1. `sync_usage` first refreshes the tenant's stale daily rollups from the ledger;
2. rows a previous run left PENDING are sent first (Stripe was down, or the worker died);
3. for each billable UTC day, target = round_half_up(day's tokens saved x price per million) cents;
   if that differs from what the day's earlier items billed, a new StripeUsageSync row for the
   difference is committed *before* Stripe is called, with an idempotency key derived from
   (tenant, day, sequence);
4. the invoice item is created with that key (and the key in its metadata). A row that was tried
   before is first looked up in Stripe by that metadata, which also covers Stripe's 24-hour
   idempotency window and servers (localstripe) that ignore the Idempotency-Key header.
So a day is billed once whatever fails, and reruns add nothing. A day's tokens saved are the
ledger's own total (`RequestLogQuerySet.totals`, through the daily rollups): billing defines none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from optimizer import rollups
from optimizer.models import UsageRollup

from .models import BillingAccount, StripeUsageSync, usage_cents
from .stripe_api import StripeRejected, StripeUnavailable, call, client, get_field

# Late ledger rows older than this are not looked for (the ledger is written within seconds).
ROLLUP_LOOKBACK = timedelta(days=35)
# A sync cannot outlive Celery's hard time limit (CELERY_TASK_TIME_LIMIT, 300 s), so a lock left by
# a killed worker is stale after that; the retry with backoff then gets through.
LOCK_SECONDS = 300


class SyncBusy(RuntimeError):
    """Another worker is syncing this tenant right now."""


@dataclass
class SyncResult:
    tenant_id: int
    sent: list[str] = field(default_factory=list)
    amount_cents: int = 0
    skipped: str = ""


def lock_key(tenant_id: int) -> str:
    return f"leo:billing:sync:{tenant_id}"


@contextmanager
def _tenant_lock(tenant_id: int) -> Iterator[None]:
    # Two workers syncing one tenant would plan the same new row; the unique (tenant, day, seq)
    # constraint would stop the second, but a lock avoids the wasted work and the error.
    key = lock_key(tenant_id)
    if not cache.add(key, "1", LOCK_SECONDS):
        raise SyncBusy(f"tenant {tenant_id} is being synced")
    try:
        yield
    finally:
        cache.delete(key)


def _refresh_rollups(tenant_id: int, since: date, through: date) -> None:
    start = max(datetime.combine(since, datetime.min.time(), tzinfo=UTC), timezone.now() - ROLLUP_LOOKBACK)
    end = datetime.combine(through + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    for tid, day in sorted(rollups.stale_periods(UsageRollup.Period.DAY, start, end, [tenant_id])):
        rollups.rollup(tid, UsageRollup.Period.DAY, day)


def _day_totals(tenant_id: int, since: date, through: date) -> dict[date, int]:
    """UTC day -> tokens saved, from the daily rollups."""
    start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(through + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return {day.astimezone(UTC).date(): totals.tokens_saved
            for day, totals in rollups.daily_totals(tenant_id, start, end).items()}


def _plan_rows(account: BillingAccount, since: date, through: date) -> list[StripeUsageSync]:
    """Commit one new row per day whose billed total differs from its rollup (steps 3 of the doc)."""
    totals = _day_totals(account.tenant_id, since, through)
    billed: dict[date, dict[str, Any]] = {
        r["day"]: r for r in StripeUsageSync.objects.filter(tenant_id=account.tenant_id, day__gte=since,
                                                            day__lte=through)
        .values("day").annotate(tokens=Sum("tokens_saved"), cents=Sum("amount_cents"), seq=Max("seq")).order_by()
    }
    new: list[StripeUsageSync] = []
    for day in sorted(totals.keys() | billed.keys()):
        tokens = totals.get(day, 0)
        done = billed.get(day)
        if done is None:
            price, seq, done_tokens, done_cents = account.plan.price_per_million_saved, 1, 0, 0
        else:
            # A day keeps the price of its first item, so adjustments never reprice billed tokens.
            price = StripeUsageSync.objects.get(tenant_id=account.tenant_id, day=day, seq=1).price_per_million_saved
            seq, done_tokens, done_cents = done["seq"] + 1, int(done["tokens"]), int(done["cents"])
        cents = usage_cents(tokens, price) - done_cents
        if tokens == done_tokens and cents == 0:
            continue
        new.append(StripeUsageSync(
            tenant_id=account.tenant_id, day=day, seq=seq, tokens_saved=tokens - done_tokens,
            price_per_million_saved=price, amount_cents=cents, currency=account.plan.currency,
            idempotency_key=StripeUsageSync.key_for(account.tenant_id, day, seq),
            status=StripeUsageSync.Status.PENDING if cents else StripeUsageSync.Status.NOTHING))
    with transaction.atomic():
        return StripeUsageSync.objects.bulk_create(new)


def _find_item(customer: str, key: str) -> str | None:
    """The id of an invoice item already created under `key` (pending or on an invoice), if any."""
    stripe = client()
    for item in call(stripe.v1.invoice_items.list, params={"customer": customer, "limit": 100}).auto_paging_iter():
        if (get_field(item, "metadata") or {}).get("leo_usage_key") == key:
            return str(item.id)
    for invoice in call(stripe.v1.invoices.list, params={"customer": customer, "limit": 100}).auto_paging_iter():
        for line in get_field(get_field(invoice, "lines", {}), "data", []) or []:
            if (get_field(line, "metadata") or {}).get("leo_usage_key") == key:
                return str(get_field(line, "invoice_item") or get_field(line, "id"))
    return None


def _send(sync: StripeUsageSync, customer: str) -> None:
    stripe = client()
    try:
        found = _find_item(customer, sync.idempotency_key) if sync.attempts else None
        if found is None:
            # Counted before the call: if this process dies mid-call, the next run looks first.
            StripeUsageSync.objects.filter(pk=sync.pk).update(attempts=F("attempts") + 1)
            sync.attempts += 1
            item = call(stripe.v1.invoice_items.create, params={
                "customer": customer, "amount": sync.amount_cents, "currency": sync.currency,
                "description": (f"LEO Optima: {sync.tokens_saved:,} tokens saved on {sync.day:%Y-%m-%d}"
                                f" at ${sync.price_per_million_saved.normalize():f} per million"
                                + (f" (adjustment {sync.seq - 1})" if sync.seq > 1 else "")),
                "metadata": {"leo_usage_key": sync.idempotency_key, "leo_tenant_id": str(sync.tenant_id),
                             "leo_day": sync.day.isoformat(), "leo_tokens_saved": str(sync.tokens_saved)}},
                options={"idempotency_key": sync.idempotency_key})
            found = str(item.id)
    except (StripeUnavailable, StripeRejected) as exc:
        StripeUsageSync.objects.filter(pk=sync.pk).update(last_error=str(exc)[:300])
        raise
    StripeUsageSync.objects.filter(pk=sync.pk).update(
        status=StripeUsageSync.Status.SENT, stripe_invoice_item_id=found, sent_at=timezone.now(), last_error="")


def billable_through(now: datetime | None = None) -> date:
    """The default last day to bill: yesterday (UTC), a closed day whose ledger has settled."""
    return (now or timezone.now()).astimezone(UTC).date() - timedelta(days=1)


def sync_usage(tenant_id: int, through: date | None = None) -> SyncResult:
    """Send the tenant's unbilled usage through `through` (default: yesterday) to Stripe.

    Raises StripeUnavailable when Stripe cannot be reached: what was committed stays PENDING and
    the next run (the task retries with backoff) sends it under the same key.
    """
    result = SyncResult(tenant_id)
    account = BillingAccount.objects.select_related("plan", "tenant").filter(tenant_id=tenant_id).first()
    if account is None or not account.customer_id or account.billing_since is None:
        result.skipped = "not subscribed"
        return result
    through = through or billable_through()
    if account.billing_until is not None:
        through = min(through, account.billing_until)
    with _tenant_lock(tenant_id):
        pending = list(StripeUsageSync.objects.filter(tenant_id=tenant_id, status=StripeUsageSync.Status.PENDING))
        for sync in pending:
            _send(sync, str(account.customer_id))
            result.sent.append(sync.idempotency_key)
            result.amount_cents += sync.amount_cents
        if through < account.billing_since:
            return result
        _refresh_rollups(tenant_id, account.billing_since, through)
        for sync in _plan_rows(account, account.billing_since, through):
            if sync.status == StripeUsageSync.Status.PENDING:
                _send(sync, str(account.customer_id))
                result.sent.append(sync.idempotency_key)
                result.amount_cents += sync.amount_cents
    return result


def tenants_to_sync() -> list[int]:
    """Tenants with a subscription history or rows still pending."""
    ids = set(BillingAccount.objects.filter(billing_since__isnull=False).values_list("tenant_id", flat=True))
    ids |= set(StripeUsageSync.objects.filter(status=StripeUsageSync.Status.PENDING)
               .values_list("tenant_id", flat=True))
    return sorted(ids)
