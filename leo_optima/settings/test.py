"""Test settings: fast hashing, and per-run secrets when none are set.

The secrets are generated per test session and exported, so servers the tests start as
subprocesses share them (a key hashed by the test must verify in the server).
"""

from __future__ import annotations

import os
import secrets

from cryptography.fernet import Fernet

os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("LEO_KEY_PEPPER", secrets.token_urlsafe(32))
os.environ.setdefault("LEO_ENCRYPTION_KEYS", Fernet.generate_key().decode())

from .base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if not os.environ.get("EMAIL_FILE_PATH"):  # live servers in browser tests write mail to files
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Servers started by the tests (uvicorn, gunicorn) must reach the test database, so SQLite's test
# database is a file rather than memory; one per test process.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
LEO_PRELOAD_EMBEDDER = False
# Browser tests load the portal's CSS and scripts from live test servers, which run without
# collectstatic: WhiteNoise serves them straight from the app and project static directories.
WHITENOISE_USE_FINDERS = True
