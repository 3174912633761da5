"""Settings shared by every environment.

Everything comes from the environment through `env.py`; nothing secret has a default here.
"""

from __future__ import annotations

import environ

from leo_optima.core.logging import build_logging, init_sentry

from .env import (
    BASE_DIR,
    egress_allow,
    env,
    optional_secret,
    secret,
    strict_bool,
    strict_float,
    strict_int,
    strict_url,
    trusted_proxies,
)

# --- Core ---------------------------------------------------------------------------------------
SECRET_KEY = secret("DJANGO_SECRET_KEY")
# Previous secret keys, still accepted for sessions and signed tokens while they rotate out (SECURITY.md).
SECRET_KEY_FALLBACKS: list[str] = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
DEBUG = strict_bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])
ROOT_URLCONF = "leo_optima.urls"
WSGI_APPLICATION = "leo_optima.wsgi.application"
ASGI_APPLICATION = "leo_optima.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "tenants.User"
SITE_ID = 1
VAR_DIR = BASE_DIR / "var"

INSTALLED_APPS = [
    # The admin signs staff in through allauth and insists on their second factor (leo_optima/admin_site.py).
    "leo_optima.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "django_prometheus",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "djstripe",
    "tenants",
    "optimizer",
    "billing",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "leo_optima.core.logging.AccessLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# The /v1 API runs behind its own, async-only middleware stack (see leo_optima/asgi.py): every
# MiddlewareMixin middleware above costs two thread hops per request under ASGI, and the proxy's
# hot path has no sessions, CSRF or templates to serve.
# Its access line is written from the ledger record (optimizer/observers.py), which knows the tenant
# and technique; so the API stack is empty.
API_MIDDLEWARE: list[str] = []

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.portal.context.portal_frame",
            ],
        },
    },
]

# --- Database and cache -------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the ledger writer; IMMEDIATE avoids lock-upgrade deadlocks.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
elif DATABASES["default"]["ENGINE"] in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
    DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
    # A psycopg pool per process: persistent connections are unsafe under ASGI, a pool is not.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": strict_int("LEO_DB_POOL_SIZE", 10, minimum=1),
        # Seconds a request waits for a connection; while PostgreSQL is down every DB touch waits
        # this long before the clean 503, so keep it short where clients time out early.
        "timeout": strict_float("LEO_DB_POOL_TIMEOUT", 10.0),
    }

REDIS_URL = strict_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                # Redis down must mean cache misses, not errors (the portal and allauth use it too).
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "leo"}}

# --- Auth ---------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/portal/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
# A sign-up creates the user's tenant (tenants.adapters); the form asks for its name.
ACCOUNT_ADAPTER = "tenants.adapters.AccountAdapter"
ACCOUNT_SIGNUP_FORM_CLASS = "tenants.forms.SignupForm"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_ADAPTER = "tenants.adapters.MFAAdapter"  # TOTP secrets encrypted at rest
MFA_TOTP_ISSUER = "LEO Optima"
# Every way to a session goes through allauth's login stages, MFA included. These are allauth's
# defaults, written down because turning one on would add a path to check (tests/test_admin_login.py).
ACCOUNT_LOGIN_BY_CODE_ENABLED = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False

# --- Email --------------------------------------------------------------------------------------
# Mail carries secret links (sign-up verification, password reset, invitations), so it is never
# printed: with no EMAIL_URL it goes to files, one per message, in EMAIL_FILE_PATH (default
# var/mail/). production.py refuses the console backend outright.
_email_url = optional_secret("EMAIL_URL")
if _email_url:
    vars().update(environ.Env.email_url_config(_email_url))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default="") or str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="LEO Optima <noreply@localhost>")

# --- i18n, static -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- DRF ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # The proxy authenticates LEO keys itself (tenants.auth), so DRF's own auth stays out of the way.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [],
    "EXCEPTION_HANDLER": "optimizer.api.errors.drf_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LEO Optima API",
    "DESCRIPTION": "OpenAI-compatible gateway endpoints plus LEO's analytics and feedback.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- LEO ----------------------------------------------------------------------------------------
# HMAC pepper for API key digests; LEO_KEY_PEPPER_OLD lists retired peppers still accepted.
LEO_KEY_PEPPER = secret("LEO_KEY_PEPPER")
LEO_KEY_PEPPER_OLD: list[str] = env.list("LEO_KEY_PEPPER_OLD", default=[])
# Fernet keys (comma-separated): the first encrypts, all decrypt, so keys rotate without lockout.
LEO_ENCRYPTION_KEYS: list[str] = [k for k in secret("LEO_ENCRYPTION_KEYS").split(",") if k.strip()]
LEO_UPSTREAM_URL = strict_url("LEO_UPSTREAM_URL")
LEO_UPSTREAM_API_KEY = optional_secret("LEO_UPSTREAM_API_KEY")
# Tenants' provider URLs reach public addresses only (tenants/egress.py); staff may allow more host
# names and ranges here, e.g. `LEO_EGRESS_ALLOW=llm.corp.internal,10.20.0.0/16`. LEO_UPSTREAM_URL is
# the operator's own and always trusted.
LEO_EGRESS_ALLOW = egress_allow("LEO_EGRESS_ALLOW")
# With no upstream configured, the built-in demo upstream (the fake upstream) answers.
LEO_DEMO_UPSTREAM_PORT = strict_int("LEO_DEMO_UPSTREAM_PORT", 8765, minimum=1)
LEO_MAX_BODY_BYTES = strict_int("LEO_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = LEO_MAX_BODY_BYTES
LEO_UPSTREAM_CONNECT_TIMEOUT = strict_float("LEO_UPSTREAM_CONNECT_TIMEOUT", 5.0)
LEO_UPSTREAM_READ_TIMEOUT = strict_float("LEO_UPSTREAM_READ_TIMEOUT", 120.0)
LEO_UPSTREAM_RETRIES = strict_int("LEO_UPSTREAM_RETRIES", 2)
LEO_UPSTREAM_MAX_CONNECTIONS = strict_int("LEO_UPSTREAM_MAX_CONNECTIONS", 512, minimum=1)
LEO_LEDGER_FLUSH_SECONDS = strict_float("LEO_LEDGER_FLUSH_SECONDS", 0.05)
# How often each worker polls the database for new semantic-cache entries: the catch-up path (with
# REDIS_URL, new entries and purges also reach every worker over a Redis stream at once).
LEO_SEMANTIC_POLL_SECONDS = strict_float("LEO_SEMANTIC_POLL_SECONDS", 0.3, minimum=0.01)
LEO_BASE_URL = strict_url("LEO_BASE_URL", default="http://127.0.0.1:8000")
# Proxies (addresses or networks) whose X-Forwarded-For the server believes; empty: none. The
# server applies it (uvicorn's --forwarded-allow-ips, gunicorn's forwarded_allow_ips), so
# REMOTE_ADDR is already the client's address for the bad-key throttle, allauth's rate limits and
# the audit log. docs/operations.md, "Client addresses".
LEO_TRUSTED_PROXIES: list[str] = trusted_proxies()
# Load the embedding model when a worker starts rather than on its first semantic lookup.
LEO_PRELOAD_EMBEDDER = strict_bool("LEO_PRELOAD_EMBEDDER", default=True)

# --- Stripe / dj-stripe -------------------------------------------------------------------------
STRIPE_LIVE_MODE = strict_bool("STRIPE_LIVE_MODE", default=False)
STRIPE_SECRET_KEY = optional_secret("STRIPE_SECRET_KEY")
STRIPE_TEST_SECRET_KEY = STRIPE_SECRET_KEY
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_API_BASE = strict_url("STRIPE_API_BASE")
DJSTRIPE_WEBHOOK_SECRET = optional_secret("DJSTRIPE_WEBHOOK_SECRET")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
# Nothing configured: tasks run in-process, so the embedded default needs no worker.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_ACKS_LATE = True
# Keep our JSON logging config in the worker instead of Celery's plain-text one.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# First retry delay of the Stripe usage sync (doubles per retry, capped at an hour; billing/tasks.py).
LEO_BILLING_RETRY_SECONDS = strict_int("LEO_BILLING_RETRY_SECONDS", 30, minimum=1)

# --- Logging ------------------------------------------------------------------------------------
# JSON lines on stdout, secrets redacted (leo_optima/core/logging.py); Sentry only when SENTRY_DSN is set.
LEO_LOG_LEVEL = env.str("LEO_LOG_LEVEL", default="INFO").upper()
LOGGING = build_logging(LEO_LOG_LEVEL)
init_sentry(optional_secret("SENTRY_DSN"), environment=env.str("SENTRY_ENVIRONMENT", default="") or None)

# --- Security defaults (production.py tightens them) --------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "https://js.stripe.com"],
        "frame-src": ["'self'", "https://js.stripe.com"],
        "connect-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "frame-ancestors": ["'none'"],
    }
}
