"""Structured JSON logs on stdout with secrets redacted, and the per-request access line.

- ``build_logging(level)`` returns the ``LOGGING`` dict the settings use (and gunicorn's config).
- ``RedactingFilter`` scrubs every record on the handler, and ``JsonFormatter`` scrubs its output
  once more, so a key that reaches a log line through a message, an argument, an ``extra`` field or
  a traceback is replaced by ``[REDACTED]``. The rules are ``leo_optima.core.redact``'s.
- ``AccessLogMiddleware`` writes one JSON line per request through ``log_request``.

Sentry's setup is ``leo_optima.core.sentry``'s. ``init_sentry`` and the redaction functions stay
importable from here too: the settings and other modules import them from this module.

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

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from .redact import REDACTED, is_sensitive_key, redact, redact_value
from .sentry import init_sentry

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

__all__ = [
    "ACCESS_LOGGER",
    "REDACTED",
    "AccessLogMiddleware",
    "JsonFormatter",
    "RedactingFilter",
    "build_logging",
    "init_sentry",
    "is_sensitive_key",
    "log_request",
    "redact",
    "redact_value",
    "request_id_var",
]

ACCESS_LOGGER = "leo.access"

#: The current request id, so every line logged while serving a request carries it.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "leo_request_id", default=None
)


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
