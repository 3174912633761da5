"""Browser tests: a live LEO server (its mail written to files) and Debian's Chromium via Playwright.

Skipped with a reason when Chromium is not installed. The server is another process, so it
writes mail with the file backend (EMAIL_FILE_PATH) into a directory the tests read.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def mail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="session")
def portal_server(start_server: Callable[..., Any], mail_dir: Path) -> Any:
    return start_server(EMAIL_FILE_PATH=str(mail_dir))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per module. Playwright's sync API keeps an event loop running in this thread
    while it is open, which Django's ORM guard mistakes for async code; the ORM calls here are
    plain synchronous ones, so the guard is lifted for exactly that span (and the loop is gone
    before any other module's tests run)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield b
            b.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Fresh browser contexts (separate cookies), closed after the test; dialogs are accepted."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1200, "height": 900})
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    yield make
    for context in contexts:
        context.close()


def read_mail(mail_dir: Path, to: str, pattern: str, timeout: float = 15.0) -> str:
    """The first match of `pattern` in the newest message to `to` (mail is written as it is sent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(mail_dir.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
            text = path.read_text(errors="replace")
            if f"To: {to}" in text:
                match = re.search(pattern, text)
                if match:
                    return match.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no mail to {to} matching {pattern}")
