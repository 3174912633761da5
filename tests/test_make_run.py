"""`make run`'s server (scripts/serve.sh, local settings) as a visitor meets it.

- Issue #15 item 10: DEBUG is off, so `/` leads to the portal and an unknown URL (or another
  tenant's object) gets the styled 404, never Django's technical page with the URL list; static
  files are still served. `make dev` (LEO_DEV=1) is the one way to DEBUG on.
- Issue #13 item 5: with no EMAIL_URL, mail (a password-reset link here) goes to files in
  var/mail/, not to the server's output.
- Issue #13 item 14: uvicorn believes no X-Forwarded-For (LEO_TRUSTED_PROXIES is empty), so a local
  client cannot reset the bad-key throttle by naming a new address per request.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from tests.conftest import ROOT, LeoServer, free_port, server_env, wait_http
from tests.portal_helpers import make_ledger_row, verified_user

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-make-run-4411"


def start_serve_sh(fake_upstream: Any, tmp_path: Path, **extra: str) -> LeoServer:
    port = free_port()
    env = server_env(fake_upstream.url, DJANGO_SETTINGS_MODULE="leo_optima.settings.local", PORT=str(port),
                     LEO_PRELOAD_EMBEDDER="false", **extra)
    for name in ("DJANGO_DEBUG", "EMAIL_URL", "EMAIL_FILE_PATH", "LEO_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS"):
        if name not in extra:
            env.pop(name, None)
    log_path = tmp_path / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(ROOT / "scripts" / "serve.sh")], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = LeoServer(f"http://127.0.0.1:{port}", proc, log_path, env)
    try:
        wait_http(server.url + "/healthz", 90, proc)
    except Exception:
        server.stop()
        raise RuntimeError(f"scripts/serve.sh failed to start:\n{server.log()[-4000:]}") from None
    return server


@pytest.fixture
def run_server(django_db_setup: None, fake_upstream: Any, tmp_path: Path) -> Iterator[LeoServer]:
    server = start_serve_sh(fake_upstream, tmp_path)
    yield server
    server.stop()


def _sign_in(http: httpx.Client, email: str) -> None:
    page = http.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = http.post("/accounts/login/", data={"login": email, "password": PASSWORD,
                                                   "csrfmiddlewaretoken": token})
    assert response.status_code == 302, response.text[:500]


def _assert_styled_404(response: httpx.Response) -> None:
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "/static/css/portal.css" in response.text and "Not found" in response.text  # templates/404.html
    for technical in ("URLconf", "Using the URLconf", "DEBUG = True", "Page not found at"):
        assert technical not in response.text


def test_debug_is_off_root_leads_to_the_portal_unknown_urls_get_the_styled_404(run_server: LeoServer) -> None:
    from tenants.models import Membership, Role, Tenant

    with httpx.Client(base_url=run_server.url, timeout=30) as http:
        root = http.get("/")
        assert root.status_code == 302 and root.headers["location"] == "/portal/"
        _assert_styled_404(http.get("/no-such-page/"))
        _assert_styled_404(http.get("/portal/no-such-page/"))
        css = http.get("/static/css/portal.css")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"]

        # A signed-in member probing another tenant's request gets the same page.
        victim = Tenant.create(f"Victim {uuid.uuid4().hex[:6]}")
        row = make_ledger_row(victim)
        email = f"prober-{uuid.uuid4().hex[:8]}@example.com"
        prober = verified_user(email, PASSWORD)
        # This server runs the local settings, whose hashers do not include the tests' fast MD5 one.
        hasher = PBKDF2PasswordHasher()
        prober.password = hasher.encode(PASSWORD, hasher.salt())
        prober.save(update_fields=["password"])
        Membership.objects.create(user=prober, tenant=Tenant.create("Prober"), role=Role.OWNER)
        _sign_in(http, email)
        assert http.get("/portal/").status_code == 200
        _assert_styled_404(http.get(f"/portal/requests/{row.request_id}/"))


def test_mail_goes_to_files_not_to_the_output(run_server: LeoServer) -> None:
    email = f"reset-{uuid.uuid4().hex[:8]}@example.com"
    verified_user(email, PASSWORD)
    mail_dir = ROOT / "var" / "mail"
    before = set(mail_dir.glob("*")) if mail_dir.exists() else set()
    with httpx.Client(base_url=run_server.url, timeout=30) as http:
        page = http.get("/accounts/password/reset/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = http.post("/accounts/password/reset/", data={"email": email, "csrfmiddlewaretoken": token})
        assert response.status_code == 302
    link = None
    new_files: list[Path] = []
    deadline = time.monotonic() + 15
    while link is None and time.monotonic() < deadline:
        new_files = [p for p in (set(mail_dir.glob("*")) if mail_dir.exists() else set()) - before]
        for path in new_files:
            match = re.search(r"https?://\S+/accounts/password/reset/key/\S+", path.read_text(errors="replace"))
            if match and f"To: {email}" in path.read_text(errors="replace"):
                link = match.group(0)
        time.sleep(0.1)
    try:
        assert link, "no password-reset mail in var/mail/"
        time.sleep(0.5)  # let the server's output settle
        output = run_server.log()
        assert "/accounts/password/reset/key/" not in output
        assert link.rsplit("/", 2)[-2] not in output  # the key part of the link
    finally:
        for path in new_files:
            path.unlink(missing_ok=True)


def test_a_local_client_cannot_reset_the_bad_key_throttle_with_x_forwarded_for(run_server: LeoServer) -> None:
    from tests.test_client_address import assert_throttled_despite_forwarded_for

    assert_throttled_despite_forwarded_for(run_server)


def test_make_dev_turns_debug_on(django_db_setup: None, fake_upstream: Any, tmp_path: Path) -> None:
    server = start_serve_sh(fake_upstream, tmp_path, LEO_DEV="1")
    try:
        response = httpx.get(server.url + "/no-such-page/", timeout=30)
        assert response.status_code == 404 and "URLconf" in response.text  # Django's technical page
    finally:
        server.stop()
    makefile = (ROOT / "Makefile").read_text()
    assert "\nrun:\n\tscripts/run.sh\n" in makefile and "\ndev:\n\tLEO_DEV=1 scripts/run.sh\n" in makefile
    assert "scripts/serve.sh" in (ROOT / "scripts" / "run.sh").read_text()
