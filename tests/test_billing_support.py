"""Shared pieces of the billing tests: a real localstripe process, Stripe settings pointing at it,
and the dj-stripe Account row localstripe cannot serve. Imported by tests/test_billing_*.py.

localstripe keeps its store in one hard-coded file, /tmp/localstripe.pickle, shared by every
localstripe on the machine; so it is launched through a two-line wrapper that points the store at a
file of its own (the boundary adaptation: everything else is the unmodified PyPI server). Restarting
it without --from-scratch reloads that file, as a Stripe outage followed by recovery would look.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, wait_http

SECRET_KEY = "sk_test_" + "leolocalstripe" * 2  # dj-stripe wants sk_test_ + 24 alphanumerics
PUBLISHABLE_KEY = "pk_test_" + "leolocalstripe" * 2

_LAUNCH = """
import pickle, sys
from localstripe import resources, server
path = sys.argv.pop(1)
def load(self):
    try:
        with open(path, "rb") as f:
            old = pickle.load(f)
    except FileNotFoundError:
        return
    self.clear(); self.update(old)
def dump(self):
    with open(path + ".tmp", "wb") as f:
        pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)
    import os; os.replace(path + ".tmp", path)
resources.Store.try_load_from_disk = load
resources.Store.dump_to_disk = dump
server.start()
"""


@dataclass
class LocalStripe:
    """A localstripe server on loopback with a private store file."""

    port: int
    store: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, from_scratch: bool = False) -> None:
        cmd = [sys.executable, "-c", _LAUNCH, str(self.store), "--port", str(self.port)]
        if from_scratch:
            cmd.append("--from-scratch")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(self.url + "/js.stripe.com/v3/", 30, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def pause(self) -> None:
        """Freeze the server: connections are accepted by the kernel, nothing answers (a hung Stripe)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(SECRET_KEY, ""), timeout=10)

    def invoice_items(self, customer: str) -> list[dict[str, Any]]:
        """Pending invoice items of a customer (localstripe lists only those)."""
        with self.api() as c:
            return list(c.get("/v1/invoiceitems", params={"customer": customer, "limit": 100}).json()["data"])

    def upcoming(self, customer: str) -> dict[str, Any]:
        with self.api() as c:
            return dict(c.get("/v1/invoices/upcoming", params={"customer": customer}).json())

    def invoices(self, customer: str) -> list[dict[str, Any]]:
        with self.api() as c:
            return list(c.get("/v1/invoices", params={"customer": customer, "limit": 100}).json()["data"])

    def add_webhook(self, url: str, secret: str) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as c:
            c.post("/_config/webhooks/leo", data={"url": url, "secret": secret}).raise_for_status()


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    base = tmp_path_factory.mktemp("localstripe")
    server = LocalStripe(free_port(), base / "store.pickle", base / "localstripe.log")
    server.start(from_scratch=True)
    yield server
    server.stop()


@pytest.fixture
def stripe_settings(settings: Any, localstripe: LocalStripe) -> LocalStripe:
    """Point LEO's Stripe settings at localstripe (a restarted one too: `localstripe.start()`)."""
    if localstripe.process is None or localstripe.process.poll() is not None:
        localstripe.start()
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_TEST_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_API_BASE = localstripe.url
    return localstripe


def seed_djstripe_account() -> None:
    """dj-stripe finds the owning Account through GET /v1/account, which localstripe lacks: seed
    the Account and its API key row, as dj-stripe itself would have stored them."""
    from djstripe.models import Account, APIKey

    account, _ = Account.objects.get_or_create(
        id="acct_leolocalstripe", defaults={"livemode": False, "stripe_data": {"id": "acct_leolocalstripe",
                                                                              "object": "account"}})
    if not APIKey.objects.filter(secret=SECRET_KEY).exists():
        APIKey.objects.create(secret=SECRET_KEY, livemode=False, type="secret", djstripe_owner_account=account)


def test_card(localstripe: LocalStripe, number: str = "4242424242424242") -> str:
    """A PaymentMethod for a localstripe test card, made as Stripe.js would (not attached)."""
    with localstripe.api() as c:
        r = c.post("/v1/payment_methods", data={"type": "card", "card[number]": number, "card[exp_month]": "12",
                                                "card[exp_year]": "2031", "card[cvc]": "123"})
        r.raise_for_status()
        return str(r.json()["id"])


test_card.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test
