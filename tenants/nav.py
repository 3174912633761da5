"""The portal's section navigation, contributed by each app.

The portal frame (templates/portal/base.html) belongs to this app, which imports no other app, so
it cannot name the optimizer's or billing's pages. Each app lists its own entries instead, as
`portal_nav` on its AppConfig (so this module imports no model: app configs import it early):

    class BillingConfig(AppConfig):
        portal_nav = (NavEntry("Billing", "billing:home", section="billing", order=100,
                               visible=attrgetter("can_manage")),)

and `{% portal_nav %}` (tenants/templatetags/portal_nav.py) shows every installed app's entries
that the signed-in member may see, by `order`. Who may see an entry is a Membership rule
(`can_manage`, `is_owner`), the same that guards the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.apps import apps
from django.urls import reverse

if TYPE_CHECKING:
    from tenants.models import Membership


def everyone(membership: Membership) -> bool:
    return True


@dataclass(frozen=True)
class NavEntry:
    """One link of the portal's side navigation.

    `section` is what a page passes as `section` to be marked current; `order` places the entry
    among every app's (apps number theirs in tens, leaving room between); `visible` says whether
    a member sees it.
    """

    label: str
    url_name: str
    section: str
    order: int
    visible: Callable[[Membership], bool] = everyone

    @property
    def url(self) -> str:
        return reverse(self.url_name)


def registered() -> list[NavEntry]:
    """Every installed app's entries, by order."""
    entries = [entry for config in apps.get_app_configs() for entry in getattr(config, "portal_nav", ())]
    return sorted(entries, key=lambda entry: entry.order)


def entries_for(membership: Membership) -> list[NavEntry]:
    """The entries this member sees."""
    return [entry for entry in registered() if entry.visible(membership)]
