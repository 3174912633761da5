"""No secret link in logs: mail is never printed (issue #13 item 5).

Password-reset, sign-up and invitation links used to be printed in full by the console backend,
which compose.yaml and .env.example chose by default. Now: with no EMAIL_URL, mail is written to
files (var/mail/, or EMAIL_FILE_PATH); production refuses consolemail:// at start-up; compose and
.env.example default to neither. The live path (a password reset on `make run`'s server writes a
file and prints nothing) is in tests/test_make_run.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

from tests.conftest import ROOT

_PRINT = ("from django.conf import settings as s; "
          "print(s.EMAIL_BACKEND); print(getattr(s, 'EMAIL_FILE_PATH', ''))")


def _settings(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "DJANGO_SETTINGS"))}
    base.update(DJANGO_SETTINGS_MODULE=module, **env)
    code = f"import django; django.setup(); {_PRINT}"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True,
                          timeout=120)


_PRODUCTION = {"DATABASE_URL": "postgres://leo@127.0.0.1:5432/unused", "REDIS_URL": "redis://127.0.0.1:6379/0",
               "DJANGO_SECRET_KEY": "x" * 50, "LEO_KEY_PEPPER": "pepper",
               "LEO_ENCRYPTION_KEYS": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}


def test_production_refuses_the_console_backend() -> None:
    result = _settings("leo_optima.settings.production", EMAIL_URL="consolemail://", **_PRODUCTION)
    assert result.returncode != 0
    assert "consolemail://" in result.stderr and "logs" in result.stderr


def test_production_takes_smtp_or_files() -> None:
    smtp = _settings("leo_optima.settings.production", EMAIL_URL="smtp+tls://u:p@mail.example.com:587", **_PRODUCTION)
    assert smtp.returncode == 0, smtp.stderr[-2000:]
    assert smtp.stdout.splitlines()[0] == "django.core.mail.backends.smtp.EmailBackend"
    files = _settings("leo_optima.settings.production", EMAIL_FILE_PATH="/tmp/leo-mail", **_PRODUCTION)
    assert files.returncode == 0, files.stderr[-2000:]
    assert files.stdout.splitlines() == ["django.core.mail.backends.filebased.EmailBackend", "/tmp/leo-mail"]


def test_development_writes_mail_to_files_by_default() -> None:
    result = _settings("leo_optima.settings.local", EMAIL_URL="", EMAIL_FILE_PATH="")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["django.core.mail.backends.filebased.EmailBackend",
                                          str(ROOT / "var" / "mail")]


def test_compose_and_env_example_do_not_choose_the_console() -> None:
    compose_env = yaml.safe_load((ROOT / "compose.yaml").read_text())["x-app-env"]
    assert "consolemail" not in compose_env["EMAIL_URL"]
    assert compose_env["EMAIL_FILE_PATH"] == "${EMAIL_FILE_PATH:-/tmp/leo-mail}"
    example = dict(re.findall(r"^(\w+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    assert "consolemail" not in example["EMAIL_URL"]
