"""Secrets from `NAME_FILE` (Docker/Kubernetes secrets), read by django-environ's `FileAwareEnv`.

Each case loads the settings in a fresh interpreter, as a container would at start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

_PRINT = ("from django.conf import settings as s; "
          "print(s.SECRET_KEY); print(s.LEO_KEY_PEPPER); print(s.DATABASES['default']['NAME'])")


def _settings(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "LEO_KEY_PEPPER", "DATABASE_URL"))}
    base.update(DJANGO_SETTINGS_MODULE="leo_optima.settings.local", LEO_ENCRYPTION_KEYS="A" * 43 + "=", **env)
    return subprocess.run([sys.executable, "-c", f"import django; django.setup(); {_PRINT}"], cwd=ROOT,
                          env=base, capture_output=True, text=True, timeout=120)


def test_secret_file_wins_over_the_variable_and_is_stripped(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("from-the-file-" + "k" * 40 + "\n")
    pepper_file = tmp_path / "pepper"
    pepper_file.write_text("pepper-from-file\n")
    result = _settings(DJANGO_SECRET_KEY="from-the-variable-" + "v" * 40, DJANGO_SECRET_KEY_FILE=str(key_file),
                       LEO_KEY_PEPPER_FILE=str(pepper_file), DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "from-the-file-" + "k" * 40
    assert lines[1] == "pepper-from-file"


def test_an_empty_file_variable_counts_as_unset(tmp_path: Path) -> None:
    # compose.yaml passes `NAME_FILE: ${NAME_FILE:-}`, so an empty value must fall back to NAME.
    result = _settings(DJANGO_SECRET_KEY="v" * 50, DJANGO_SECRET_KEY_FILE="", LEO_KEY_PEPPER="p",
                       LEO_KEY_PEPPER_FILE="", DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[:2] == ["v" * 50, "p"]


def test_any_setting_may_come_from_a_file(tmp_path: Path) -> None:
    """The library's rule, not a list of our own: DATABASE_URL_FILE holds a password-bearing URL."""
    db_file = tmp_path / "database_url"
    db_file.write_text(f"sqlite:///{tmp_path / 'from-file.sqlite3'}\n")
    result = _settings(DJANGO_SECRET_KEY="v" * 50, LEO_KEY_PEPPER="p", DATABASE_URL_FILE=str(db_file))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[2] == str(tmp_path / "from-file.sqlite3")


def test_an_unreadable_secret_file_fails_start_up_by_name(tmp_path: Path) -> None:
    result = _settings(DJANGO_SECRET_KEY="v" * 50, LEO_KEY_PEPPER_FILE=str(tmp_path / "missing"),
                       DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert result.returncode != 0
    assert "LEO_KEY_PEPPER_FILE points at an unreadable file" in result.stderr


def test_a_missing_secret_fails_start_up_and_names_both_ways(tmp_path: Path) -> None:
    result = _settings(DJANGO_SECRET_KEY="v" * 50, LEO_KEY_PEPPER="", LEO_KEY_PEPPER_FILE="",
                       DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert result.returncode != 0
    assert "LEO_KEY_PEPPER is not set" in result.stderr and "LEO_KEY_PEPPER_FILE" in result.stderr
