"""Usage rollups, plans and the Stripe link (see the billing issue)."""

from __future__ import annotations
