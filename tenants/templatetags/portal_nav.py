"""`{% portal_nav membership as entries %}`: the portal's side navigation entries that this member
sees, from every app's `portal_nav` (tenants/nav.py)."""

from __future__ import annotations

from django import template

from tenants.models import Membership
from tenants.nav import NavEntry, entries_for

register = template.Library()


@register.simple_tag
def portal_nav(membership: Membership | None) -> list[NavEntry]:
    return entries_for(membership) if isinstance(membership, Membership) else []
