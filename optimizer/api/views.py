"""The OpenAI-compatible proxy views: parse, authenticate, call the pipeline, write the response.

Thin and async. They run behind the API's own async-only middleware stack (leo_optima/asgi.py)
and render JSON themselves, so a request costs no thread hop unless it must touch the database.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from datetime import UTC, datetime
from typing import Any

from adrf.views import APIView
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from leo_optima.core.db import run_db
from tenants.auth import AuthError, Principal, authenticate, client_ip

from .. import analytics, cache_admin
from ..pipeline import run, strictness
from ..pipeline.types import Call, ProxyError, Reply
from ..providers.registry import allowed_models
from . import parsing, schema
from .errors import error_response, json_response


class ProxyView(APIView):
    """Base: a request id for every response, LEO key authentication, OpenAI error envelopes."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    async def async_dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # adrf's dispatch runs `initial()` through sync_to_async; with no authentication, permission
        # or throttle classes it does no I/O, so running it inline saves a thread hop per request.
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        self.request_id = "req_" + uuid.uuid4().hex
        try:
            self.initial(drf_request, *args, **kwargs)
            handler = getattr(self, request.method.lower(), None) if request.method.lower() in \
                self.http_method_names else None
            if handler is None:
                handler = self.http_method_not_allowed
            response = handler(drf_request, *args, **kwargs)
            if inspect.isawaitable(response):
                response = await response
        except ProxyError as exc:
            response = error_response(exc)
        except Exception as exc:
            response = self.handle_exception(exc)
        response["X-LEO-Request-Id"] = self.request_id
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return self.response

    async def principal(self, request: HttpRequest) -> Principal:
        try:
            return await authenticate(request.headers.get("Authorization"), client_ip(request))
        except AuthError as exc:
            kind = "rate_limit_error" if exc.status == 429 else "invalid_request_error"
            raise ProxyError(exc.status, str(exc), type=kind, code=exc.code) from None


def to_response(reply: Reply) -> HttpResponse:
    if reply.stream is not None:
        response = StreamingHttpResponse(reply.stream, content_type="text/event-stream", status=reply.status)
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass SSE chunks through as they come
    else:
        response = json_response(reply.body, reply.status)
    for k, v in reply.headers.items():
        response[k] = v
    return response


class _GenerateView(ProxyView):
    endpoint = ""
    validate = staticmethod(parsing.validate_chat)

    async def post(self, request: HttpRequest) -> HttpResponse:
        principal = await self.principal(request)
        body = parsing.read_json(request._request if hasattr(request, "_request") else request)
        self.validate(body)
        options = parsing.options_from_headers(request, body)
        call = Call(principal=principal, endpoint=self.endpoint, body=body, request_id=self.request_id,
                    options=options)
        return to_response(await run.handle(call))


@schema.chat
class ChatCompletionsView(_GenerateView):
    endpoint = "chat"
    validate = staticmethod(parsing.validate_chat)


@schema.completions
class CompletionsView(_GenerateView):
    endpoint = "completions"
    validate = staticmethod(parsing.validate_completions)


@schema.embeddings
class EmbeddingsView(_GenerateView):
    endpoint = "embeddings"
    validate = staticmethod(parsing.validate_embeddings)


@schema.models
class ModelsView(ProxyView):
    async def get(self, request: HttpRequest) -> HttpResponse:
        principal = await self.principal(request)
        owners = await allowed_models(principal)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": owner} for m, owner in sorted(owners.items())]
        return json_response({"object": "list", "data": data})


@schema.model_detail
class ModelDetailView(ProxyView):
    async def get(self, request: HttpRequest, model: str) -> HttpResponse:
        principal = await self.principal(request)
        owners = await allowed_models(principal)
        if model not in owners:
            raise ProxyError(404, f"The model '{model}' does not exist", code="model_not_found", param="model")
        return json_response({"id": model, "object": "model", "created": 0, "owned_by": owners[model]})


def _parse_when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ProxyError(400, f"`{name}` must be an ISO 8601 date or datetime.", param=name,
                             code="invalid_value") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Years at the edge of the calendar overflow on conversion to UTC or in the database (a 503
    # from the DataError): refuse them here.
    if not 1900 <= parsed.year <= 9000:
        raise ProxyError(400, f"`{name}` must be between the years 1900 and 9000.", param=name, code="invalid_value")
    # Python takes offsets up to 23:59, PostgreSQL only up to 15:59 (a DataError, a 500): send UTC.
    return parsed.astimezone(UTC)


@schema.analytics
class AnalyticsView(ProxyView):
    """GET /v1/analytics?start=ISO&end=ISO: the calling tenant's figures from the ledger."""

    async def get(self, request: HttpRequest) -> HttpResponse:
        principal = await self.principal(request)
        start = _parse_when(request.GET.get("start"), "start")
        end = _parse_when(request.GET.get("end"), "end")
        body = await run_db(analytics.summary, principal.tenant_id, start, end)
        group_text = parsing.query_text(request, "group_by")
        if group_text is not None:
            try:
                group_by = analytics.GroupBy.parse(group_text)
            except ValueError as exc:
                raise ProxyError(400, str(exc), param="group_by", code="invalid_value") from None
            body.update(await run_db(analytics.breakdown, principal.tenant_id, start, end, group_by))
        return json_response(body)


class FeedbackSerializer(serializers.Serializer):
    request_id = serializers.CharField(max_length=40)
    correct = serializers.BooleanField()


FEEDBACK_WAIT_STEPS = 20  # x 0.1 s: well beyond the ledger writer's flush interval


class FeedbackView(ProxyView):
    """POST /v1/feedback {"request_id", "correct"}: mark a served answer right or wrong."""

    @extend_schema(request={"application/json": FeedbackSerializer}, responses=schema.OK)
    async def post(self, request: HttpRequest) -> HttpResponse:
        principal = await self.principal(request)
        body = parsing.read_json(request._request if hasattr(request, "_request") else request)
        ser = FeedbackSerializer(data=body)
        if not ser.is_valid():
            field, errors = next(iter(ser.errors.items()))
            raise ProxyError(400, f"{field}: {errors[0]}", param=field, code="invalid_value")
        # The ledger is written behind (tens of milliseconds): feedback sent right after the answer
        # may arrive before its row, so look again for a moment before saying it does not exist.
        for _ in range(FEEDBACK_WAIT_STEPS):
            result = await run_db(strictness.record_feedback, principal.tenant_id,
                                  ser.validated_data["request_id"], ser.validated_data["correct"])
            if result is not None or not ser.validated_data["request_id"].startswith("req_"):
                break
            await asyncio.sleep(0.1)
        if result is None:
            raise ProxyError(404, "No request with that id for this tenant.", param="request_id", code="not_found")
        return json_response(result)


@schema.cache
class CacheView(ProxyView):
    """GET /v1/cache: stats. DELETE /v1/cache?model=&older_than=SECONDS: purge (all by default)."""

    async def get(self, request: HttpRequest) -> HttpResponse:
        principal = await self.principal(request)
        return json_response(await run_db(cache_admin.stats, principal.tenant_id))

    async def delete(self, request: HttpRequest) -> HttpResponse:
        principal = await self.principal(request)
        older = parsing.query_text(request, "older_than")
        try:
            older_than = int(older) if older else None
        except ValueError:
            raise ProxyError(400, "older_than must be a number of seconds.", param="older_than") from None
        if older_than is not None and not 0 <= older_than <= 100 * 365 * 24 * 3600:  # timedelta overflows beyond
            raise ProxyError(400, "older_than must be between 0 and 3153600000 seconds.", param="older_than")
        deleted = await cache_admin.purge(principal.tenant_id, model=parsing.query_text(request, "model"),
                                          older_than_seconds=older_than)
        return json_response({"deleted": deleted})


@schema.cache_entry
class CacheEntryView(ProxyView):
    """DELETE /v1/cache/<id>: delete one entry of the calling tenant."""

    async def delete(self, request: HttpRequest, entry_id: int) -> HttpResponse:
        principal = await self.principal(request)
        deleted = await cache_admin.delete_entry(principal.tenant_id, entry_id)
        if not deleted:
            raise ProxyError(404, "No cache entry with that id for this tenant.", code="not_found")
        return json_response({"deleted": 1})

