"""Mirror every active paid plan in Stripe (a Product and a monthly Plan for its base price)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.models import Plan
from billing.stripe_api import BillingNotConfigured, StripeRejected, StripeUnavailable
from billing.subscriptions import ensure_stripe_plan


class Command(BaseCommand):
    help = "Create the Stripe Product and Plan of each active paid plan (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            for plan in Plan.objects.filter(active=True).exclude(slug="free"):
                self.stdout.write(f"{plan.slug}: {ensure_stripe_plan(plan)}")
        except (BillingNotConfigured, StripeUnavailable, StripeRejected) as exc:
            raise CommandError(str(exc)) from exc
