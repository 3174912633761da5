"""Production: behind nginx (TLS terminated there), PostgreSQL and Redis required."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASES, EMAIL_BACKEND, REDIS_URL
from .env import env, strict_int

DEBUG = False
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("production needs DATABASE_URL pointing at PostgreSQL")
if not REDIS_URL:
    raise ImproperlyConfigured("production needs REDIS_URL (cache, locks, rate limits, Celery broker)")
if EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend":
    # The console backend prints every message, password-reset and invitation links included,
    # into the logs that the log pipeline (and whoever reads it) keeps.
    raise ImproperlyConfigured(
        "EMAIL_URL=consolemail:// would print password-reset and invitation links into the logs; "
        "set EMAIL_URL to your SMTP server (smtp+tls://user:password@host:587), or leave it empty "
        "to write mail to files in EMAIL_FILE_PATH"
    )

# nginx terminates TLS and says so in X-Forwarded-Proto; Django trusts that header only here.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
# The health probes come over plain HTTP from inside the network (Docker HEALTHCHECK, Prometheus).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = strict_int("SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
USE_X_FORWARDED_HOST = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
CONN_HEALTH_CHECKS = True
ADMINS = [("ops", a) for a in env.list("LEO_ADMIN_EMAILS", default=[])]
