"""OpenAI's error envelope for everything under /v1/, whatever raised it."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from ..pipeline.types import ProxyError, database_unavailable

log = logging.getLogger(__name__)


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    """A JSON response rendered here rather than by DRF's Response, whose deferred rendering costs
    a thread hop per request under ASGI."""
    response = HttpResponse(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                            content_type="application/json", status=status_code)
    for k, v in (headers or {}).items():
        response[k] = v
    return response


def error_response(exc: ProxyError, headers: dict[str, str] | None = None) -> HttpResponse:
    return json_response(exc.envelope(), exc.status, {**exc.headers, **(headers or {})})


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """DRF's own errors (405, 415, parse errors, throttles) in OpenAI's envelope."""
    response = exception_handler(exc, context)
    if isinstance(exc, ProxyError):
        return error_response(exc)
    if response is None and isinstance(exc, OperationalError | InterfaceError):
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(database_unavailable())
    if response is None:
        # Anything unexpected: logged with its traceback, answered in the envelope (not Django's HTML 500).
        log.exception("unhandled error in a /v1 view")
        return json_response({"error": {"message": "Internal error in the gateway.", "type": "server_error",
                                        "param": None, "code": "internal_error"}}, 500)
    kind = {
        status.HTTP_401_UNAUTHORIZED: ("invalid_request_error", "invalid_api_key"),
        status.HTTP_403_FORBIDDEN: ("invalid_request_error", "forbidden"),
        status.HTTP_404_NOT_FOUND: ("invalid_request_error", "not_found"),
        status.HTTP_405_METHOD_NOT_ALLOWED: ("invalid_request_error", "method_not_allowed"),
        status.HTTP_429_TOO_MANY_REQUESTS: ("rate_limit_error", "rate_limit_exceeded"),
    }.get(response.status_code, ("invalid_request_error", None))
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    message = detail if isinstance(detail, str) else json.dumps(detail)
    headers = {k: v for k, v in response.items() if k.lower() in ("allow", "retry-after")}
    return json_response({"error": {"message": str(message), "type": kind[0], "param": None, "code": kind[1]}},
                         response.status_code, headers)


async def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any other path under /v1/ (or a malformed id): a 404 in the envelope, not the portal's HTML page."""
    return json_response({"error": {"message": f"Unknown request URL: {request.method} {request.path}.",
                                    "type": "invalid_request_error", "param": None, "code": "unknown_url"}}, 404)
