"""Structured JSON logs on stdout, secret redaction, the per-request access line, and Sentry.

- ``build_logging(level)`` returns the ``LOGGING`` dict the settings use (and gunicorn's config).
- ``RedactingFilter`` scrubs every record on the handler, and ``JsonFormatter`` scrubs its output
  once more, so a key that reaches a log line through a message, an argument, an ``extra`` field or
  a traceback is replaced by ``[REDACTED]``.
- ``AccessLogMiddleware`` writes one JSON line per request through ``log_request``.
- ``init_sentry(dsn)`` turns Sentry on only when a DSN is configured; events are scrubbed too.

This module is imported by ``deploy/gunicorn.conf.py`` before Django is set up, so it must not
import Django at module level.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

__all__ = [
    "ACCESS_LOGGER",
    "AccessLogMiddleware",
    "JsonFormatter",
    "RedactingFilter",
    "build_logging",
    "init_sentry",
    "log_request",
    "redact",
    "redact_value",
    "request_id_var",
]

REDACTED = "[REDACTED]"
ACCESS_LOGGER = "leo.access"

#: The current request id, so every line logged while serving a request carries it.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "leo_request_id", default=None
)

# --------------------------------------------------------------------------- redaction

# Character class for the body of a token: never a quote or backslash, so redacting a serialised
# JSON line cannot break its syntax.
_T = r"[A-Za-z0-9_\-]"

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: Bearer <anything>", whatever the token looks like.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), r"\1 " + REDACTED),
    # LEO keys: "leo_" + 20 or more token characters with at least one digit or capital letter, so
    # identifiers like metric names (leo_singleflight_waits_total) stay readable.
    (re.compile(rf"\bleo_(?={_T}*[0-9A-Z]){_T}{{20,}}"), REDACTED),
    # OpenAI, Anthropic ("sk-ant-..."), DeepSeek and most OpenAI-compatible providers.
    (re.compile(rf"\bsk-{_T}{{16,}}"), REDACTED),
    # Stripe secret, restricted and webhook secrets.
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"), REDACTED),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]{10,}"), REDACTED),
    # Google API keys, AWS access key ids, Groq, Hugging Face, xAI, GitHub, Slack tokens.
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bgsk_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(rf"\bxai-{_T}{{20,}}"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), REDACTED),
    # Passwords in URLs: scheme://user:password@host (DATABASE_URL, REDIS_URL, EMAIL_URL, DSNs).
    (re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^:/@\s\"'\\]*:)[^@\s\"'\\]+@"), r"\1" + REDACTED + "@"),
    # key=value and "key": "value" pairs whose key names a secret.
    (
        re.compile(
            r"(?i)((?:api[_-]?key|apikey|secret|password|passwd|token|pepper|authorization)"
            r"\\?[\"']?\s*[:=]\s*\\?[\"']?)(?!\[REDACTED\]|(?i:bearer|basic)\s)([^\s\"'\\,&}]{4,})"
        ),
        r"\1" + REDACTED,
    ),
)

_SENSITIVE_KEY_RE = re.compile(
    r"(?i)^(?:.*[_-])?(?:authorization|proxy-authorization|cookie|set-cookie|password|passwd|"
    r"secret|token|api[_-]?key|apikey|pepper|dsn|private[_-]?key|(?:secret|encryption)[_-]keys?|"
    r"sessionid|csrftoken|x-api-key)$"
)


# Every pattern above needs one of these substrings, so a plain substring test (fast, in C) lets the
# common case skip the regexes, which cost about a millisecond per access line otherwise. Keep the
# lists (and the "bearer"/"basic" test below) a superset of the patterns: add to them with each new
# pattern.
_PREFIXES = ("leo_", "sk-", "sk_", "rk_", "whsec_", "AIza", "AKIA", "ASIA", "gsk_", "hf_", "xai-", "ghp_", "gho_",
             "ghu_", "ghs_", "ghr_", "xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "://")
_KEY_WORDS = ("key", "secret", "passw", "token", "pepper", "authoriz")


def redact(text: str) -> str:
    """Replace anything that looks like a credential in ``text`` with ``[REDACTED]``."""
    if not text:
        return text
    low = text.lower()
    if not any(p in text for p in _PREFIXES) and "bearer" not in low and "basic" not in low:
        if not any(w in low for w in _KEY_WORDS):
            return text
        pattern, replacement = _SECRET_PATTERNS[-1]  # only the key=value rule can apply
        return pattern.sub(replacement, text)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_sensitive_key(key: object) -> bool:
    """Whether a mapping key or header name names a secret (``api_key``, ``Authorization``...)."""
    return isinstance(key, str) and bool(_SENSITIVE_KEY_RE.match(key))


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Recursively redact strings inside dicts, lists and tuples; values under sensitive keys are
    replaced whole. Other types are returned unchanged."""
    if _depth > 8:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_sensitive_key(k) and v not in (None, "") else redact_value(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v, _depth + 1) for v in value)
    return value


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


class RedactingFilter(logging.Filter):
    """Scrubs a record in place: its message (arguments merged first), ``extra`` fields, and the
    exception text. Attach it to handlers (a logger's filters do not see propagated records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key in _RECORD_ATTRS:
                continue
            if is_sensitive_key(key):
                setattr(record, key, REDACTED)
            elif isinstance(value, str | bytes | Mapping | list | tuple):
                setattr(record, key, redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: ``timestamp``, ``level``, ``logger``, ``message``, then extras.

    The finished line is redacted once more, so nothing a custom handler or a library attached
    after the filter ran can leak a key either.
    """

    def __init__(self, fmt: str | None = None, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__(fmt or "%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if log_data.get("request_id", "") is None:
            del log_data["request_id"]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def build_logging(level: str = "INFO") -> dict[str, Any]:
    """The ``LOGGING`` dict: every logger to one JSON handler on stdout, redaction on the handler.

    Settings: ``LOGGING = build_logging(env("LEO_LOG_LEVEL", default="INFO"))`` and
    ``LOGGING_CONFIG = "logging.config.dictConfig"`` (the default). The gunicorn config uses it too
    so the server's own lines are JSON as well.
    """
    level = (level or "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"LEO_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "leo_optima.core.logging.RedactingFilter"}},
        "formatters": {"json": {"()": "leo_optima.core.logging.JsonFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["redact"],
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Django's own handlers (mail_admins, console in DEBUG) are replaced by ours.
            "django": {"handlers": [], "level": level, "propagate": True},
            # Each request already has one access line; django.server would duplicate it.
            "django.server": {"handlers": [], "level": "WARNING", "propagate": True},
            # Never log SQL with parameters, even at DEBUG: parameters can hold secrets.
            "django.db.backends": {"handlers": [], "level": "INFO", "propagate": True},
            "gunicorn.error": {"handlers": [], "level": level, "propagate": True},
            # uvicorn/gunicorn access lines duplicate ours and lack tenant and technique.
            "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            # httpx logs every request URL at INFO; keep that for debugging only.
            "httpx": {"handlers": [], "level": "WARNING", "propagate": True},
            "httpcore": {"handlers": [], "level": "WARNING", "propagate": True},
            "celery": {"handlers": [], "level": level, "propagate": True},
            ACCESS_LOGGER: {"handlers": [], "level": "DEBUG", "propagate": True},
        },
    }


# --------------------------------------------------------------------------- access log

_access_log = logging.getLogger(ACCESS_LOGGER)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
#: Probe and scrape paths are logged at DEBUG so INFO logs are not one line every few seconds.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def log_request(
    request_id: str,
    tenant: str | None,
    technique: str | None,
    status: int,
    latency_ms: float,
    model: str | None = None,
    *,
    method: str | None = None,
    path: str | None = None,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Write the one JSON access line for a request.

    ``fields`` may add bounded facts (``stream``, ``tokens_saved``, ``upstream_ms``...). Never pass
    prompts, keys or headers; values are redacted anyway. Keys that clash with LogRecord attributes
    are prefixed with ``x_``.
    """
    extra: dict[str, Any] = {
        "request_id": request_id,
        "tenant": tenant,
        "technique": technique,
        "status": int(status),
        "latency_ms": round(float(latency_ms), 2),
        "model": model,
    }
    if method:
        extra["method"] = method
    if path:
        extra["path"] = path
    for key, value in fields.items():
        extra[f"x_{key}" if key in _RECORD_ATTRS else key] = value
    _access_log.log(level, "request", extra=extra)


def _incoming_request_id(request: HttpRequest) -> str:
    # nginx sets X-Request-ID from $request_id; accept it only if it looks like an id, since a
    # client could otherwise write anything (including a key) into every log line.
    candidate = request.META.get("HTTP_X_REQUEST_ID", "")
    if candidate and _REQUEST_ID_RE.match(candidate):
        return candidate
    return uuid.uuid4().hex


def _tenant_name(request: HttpRequest) -> str | None:
    tenant = getattr(request, "leo_tenant", None)
    if tenant is None:
        return None
    return str(getattr(tenant, "slug", tenant))


class AccessLogMiddleware:
    """Writes one access line per request, after the response (or its stream) is finished.

    Put it first in ``MIDDLEWARE`` (after django-prometheus's "before" middleware). It sets
    ``request.leo_request_id`` (nginx's ``X-Request-ID`` when valid, else a new id) for views to
    reuse, and reads what the proxy knows from:

    - ``request.leo_tenant`` (a Tenant or its slug) and ``request.leo_model``, set by the proxy;
    - the response headers ``X-LEO-Request-Id`` (wins over the incoming id) and ``X-LEO-Cache``
      (the technique), or ``request.leo_technique``.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[..., Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        token = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        return self._finish(request, response, started)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        token = self._begin(request)
        try:
            response = await self.get_response(request)
        finally:
            request_id_var.reset(token)
        return self._finish(request, response, started)

    @staticmethod
    def _begin(request: HttpRequest) -> contextvars.Token[str | None]:
        request_id = getattr(request, "leo_request_id", None) or _incoming_request_id(request)
        request.leo_request_id = request_id  # type: ignore[attr-defined]
        return request_id_var.set(request_id)

    def _finish(
        self, request: HttpRequest, response: HttpResponseBase, started: float
    ) -> HttpResponseBase:
        if not getattr(response, "streaming", False):
            self._emit(request, response, started, stream=False, completed=True)
            return response
        # For a stream, the line is written when the last chunk has gone out (or the client left),
        # so latency_ms is the whole stream's duration, not the time to the headers.
        if getattr(response, "is_async", False):
            response.streaming_content = self._awrap(  # type: ignore[attr-defined]
                response.streaming_content, request, response, started  # type: ignore[attr-defined]
            )
        else:
            response.streaming_content = self._wrap(  # type: ignore[attr-defined]
                response.streaming_content, request, response, started  # type: ignore[attr-defined]
            )
        return response

    def _wrap(
        self, chunks: Iterator[bytes], request: HttpRequest, response: HttpResponseBase, started: float
    ) -> Iterator[bytes]:
        completed = False
        try:
            yield from chunks
            completed = True
        finally:
            self._emit(request, response, started, stream=True, completed=completed)

    async def _awrap(
        self,
        chunks: AsyncIterator[bytes],
        request: HttpRequest,
        response: HttpResponseBase,
        started: float,
    ) -> AsyncIterator[bytes]:
        completed = False
        try:
            async for chunk in chunks:
                yield chunk
            completed = True
        finally:
            self._emit(request, response, started, stream=True, completed=completed)

    @staticmethod
    def _emit(
        request: HttpRequest,
        response: HttpResponseBase,
        started: float,
        *,
        stream: bool,
        completed: bool,
    ) -> None:
        technique = response.get("X-LEO-Cache") or getattr(request, "leo_technique", None)
        request_id = response.get("X-LEO-Request-Id") or getattr(request, "leo_request_id", "")
        extra: dict[str, Any] = {}
        if stream:
            extra = {"stream": True, "completed": completed}
        log_request(
            request_id=str(request_id),
            tenant=_tenant_name(request),
            technique=technique,
            status=response.status_code,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            model=getattr(request, "leo_model", None),
            method=request.method,
            path=request.path,
            level=logging.DEBUG if request.path in _QUIET_PATHS else logging.INFO,
            **extra,
        )


# --------------------------------------------------------------------------- Sentry

_SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def _scrub_event(event: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry ``before_send``: drop credential headers and cookies, then redact every string."""
    req = event.get("request")
    if isinstance(req, dict):
        headers = req.get("headers")
        if isinstance(headers, dict):
            req["headers"] = {
                k: (REDACTED if str(k).lower() in _SENSITIVE_HEADERS else v) for k, v in headers.items()
            }
        req.pop("cookies", None)
        # Prompts are customer data: never ship request bodies to a third party.
        if "data" in req:
            req["data"] = REDACTED
    return redact_value(event)  # type: ignore[no-any-return]


def _scrub_breadcrumb(crumb: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    return redact_value(crumb)  # type: ignore[no-any-return]


def init_sentry(
    dsn: str | None,
    *,
    environment: str | None = None,
    release: str | None = None,
    traces_sample_rate: float = 0.0,
) -> bool:
    """Start Sentry when ``dsn`` is set (``SENTRY_DSN``); return whether it was started.

    ``send_default_pii`` stays off and every event and breadcrumb is scrubbed with the same rules as
    the logs. sentry-sdk is only imported here, so an installation without a DSN never loads it.
    """
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        send_default_pii=False,
        traces_sample_rate=traces_sample_rate,
        before_send=_scrub_event,  # type: ignore[arg-type]
        before_breadcrumb=_scrub_breadcrumb,  # type: ignore[arg-type]
        max_request_body_size="never",
    )
    return True
