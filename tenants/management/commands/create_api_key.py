"""`create_api_key TENANT [--name NAME] [limits]`: the plaintext key is the last line of output."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from tenants.models import ApiKey, AuditEvent

from ._lookup import tenant_by_ref


def _usd(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError("a budget is a USD amount of 0 or more")
    return amount


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _when(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _models(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


class Command(BaseCommand):
    help = ("Create an API key for a tenant (id or slug), optionally with its own limits. "
            "The plaintext key is the last line; it is shown only once.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant")
        parser.add_argument("--name", default="default")
        parser.add_argument("--expires-days", type=_positive, default=None, help="Expires this many days from now.")
        parser.add_argument("--expires", type=_when, default=None,
                            help="Expires at this ISO date or date-time (UTC unless it says otherwise).")
        parser.add_argument("--monthly-budget-usd", "--budget", dest="monthly_budget_usd", type=_usd, default=None,
                            help="The key's spend limit per UTC month, in USD.")
        parser.add_argument("--rpm", "--requests-per-minute", dest="rpm", type=_positive, default=None,
                            help="The key's requests per minute.")
        parser.add_argument("--tpm", "--tokens-per-minute", dest="tpm", type=_positive, default=None,
                            help="The key's tokens per minute.")
        parser.add_argument("--models", type=_models, default=None,
                            help="Comma-separated models the key may call (within the tenant's); default: all.")

    def handle(self, *args: Any, tenant: str, name: str, expires_days: int | None, expires: datetime | None,
               monthly_budget_usd: Decimal | None, rpm: int | None, tpm: int | None, models: list[str] | None,
               **options: Any) -> None:
        if expires_days and expires:
            raise CommandError("give --expires or --expires-days, not both")
        t = tenant_by_ref(tenant)
        if expires_days:
            expires = timezone.now() + timedelta(days=expires_days)
        if expires is not None and expires <= timezone.now():
            raise CommandError("--expires is in the past")
        with transaction.atomic():
            key, plaintext = ApiKey.issue(t, name=name, expires_at=expires)
            try:
                key.set_limits(monthly_budget_usd=monthly_budget_usd, requests_per_minute=rpm,
                               tokens_per_minute=tpm, allowed_models=models)
            except ValidationError as exc:
                raise CommandError("; ".join(f"{field}: {' '.join(errs)}"
                                             for field, errs in exc.message_dict.items())) from None
            AuditEvent.record("api_key.created", tenant=t, target=key.prefix, via="cli", name=name,
                              **({"limits": key.limits()} if key.has_limits else {}))
        self.stdout.write(f"Created key {key.prefix}… ({name}) for tenant {t.slug}. "
                          "Store it now: it is not shown again.")
        self.stdout.write(plaintext)
