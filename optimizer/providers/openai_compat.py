"""One adapter for every OpenAI-compatible upstream (OpenAI, Ollama, vLLM, OpenRouter, Groq, and
Anthropic's and Gemini's OpenAI-compatible endpoints): they share the wire format, so only the
base URL and key differ.

One pooled `httpx.AsyncClient` per event loop (per worker). Retries, with exponential backoff and
full jitter, on connect errors, 429 (honouring Retry-After up to a cap) and 5xx, and only before any
byte went to the client: for streams that means only until the upstream's status line arrived.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from django.conf import settings

from .base import ProviderError, Upstream, UpstreamResponse, UpstreamStream

MAX_RETRY_AFTER = 10.0
_clients: dict[int, httpx.AsyncClient] = {}


def client() -> httpx.AsyncClient:
    loop_id = id(asyncio.get_running_loop())
    c = _clients.get(loop_id)
    if c is None:
        limits = httpx.Limits(max_connections=settings.LEO_UPSTREAM_MAX_CONNECTIONS,
                              max_keepalive_connections=min(256, settings.LEO_UPSTREAM_MAX_CONNECTIONS),
                              keepalive_expiry=30)
        timeout = httpx.Timeout(connect=settings.LEO_UPSTREAM_CONNECT_TIMEOUT,
                                read=settings.LEO_UPSTREAM_READ_TIMEOUT, write=30.0, pool=30.0)
        c = httpx.AsyncClient(limits=limits, timeout=timeout, http2=False, follow_redirects=False)
        _clients[loop_id] = c
    return c


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def _error_from_status(response: httpx.Response, content: bytes) -> ProviderError:
    status = response.status_code
    body: dict[str, Any] | None = None
    message = f"upstream answered HTTP {status}"
    try:
        parsed = json.loads(content or b"{}")
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            body = parsed
            message = str(parsed["error"].get("message") or message)
    except ValueError:
        pass
    if status == 429:
        return ProviderError(message, status=429, kind="rate_limited", retryable=True,
                             retry_after=_retry_after(response), body=body)
    if status >= 500:
        return ProviderError(f"The upstream provider failed ({status}).", status=502, kind=f"http_{status}",
                             retryable=True, retry_after=_retry_after(response))
    if status in (401, 403):
        # The provider refused *our* credentials: the client's LEO key is fine, so this is a gateway fault.
        return ProviderError("The upstream provider rejected the gateway's credentials.", status=502,
                             kind="upstream_auth", retryable=True)
    return ProviderError(message, status=status, kind=f"http_{status}", retryable=False, body=body)


def _transport_error(exc: Exception) -> ProviderError:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ProviderError("The upstream provider timed out.", status=504, kind="timeout", retryable=False)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ProviderError("Could not connect to the upstream provider.", status=502, kind="connect",
                             retryable=True)
    return ProviderError("The connection to the upstream provider failed.", status=502, kind="protocol",
                         retryable=True)


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    return random.uniform(0, min(4.0, 0.1 * 2**attempt))  # full jitter


def _headers(upstream: Upstream) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    return headers


async def request_json(upstream: Upstream, path: str, body: dict[str, Any],
                       retries: int | None = None) -> UpstreamResponse:
    retries = settings.LEO_UPSTREAM_RETRIES if retries is None else retries
    payload = json.dumps(body).encode()
    attempt = 0
    while True:
        started = time.perf_counter()
        try:
            response = await client().post(upstream.base_url + path, content=payload, headers=_headers(upstream))
            content = response.content
        except httpx.HTTPError as exc:
            error = _transport_error(exc)
        else:
            if response.status_code < 400:
                try:
                    parsed = json.loads(content)
                except ValueError:
                    error = ProviderError("The upstream provider sent invalid JSON.", status=502,
                                          kind="protocol", retryable=True)
                else:
                    return UpstreamResponse(parsed, (time.perf_counter() - started) * 1000, upstream)
            else:
                error = _error_from_status(response, content)
        if not error.retryable or attempt >= retries:
            raise error
        await asyncio.sleep(_backoff(attempt, error.retry_after))
        attempt += 1


async def open_stream(upstream: Upstream, path: str, body: dict[str, Any],
                      retries: int | None = None) -> UpstreamStream:
    """Open a streaming request; retried until the status line is in, then never again."""
    retries = settings.LEO_UPSTREAM_RETRIES if retries is None else retries
    payload = json.dumps(body).encode()
    attempt = 0
    while True:
        started = time.perf_counter()
        request = client().build_request("POST", upstream.base_url + path, content=payload,
                                         headers=_headers(upstream))
        try:
            response = await client().send(request, stream=True)
        except httpx.HTTPError as exc:
            error = _transport_error(exc)
        else:
            if response.status_code < 400:
                first_byte_ms = (time.perf_counter() - started) * 1000
                return UpstreamStream(_events(response), first_byte_ms, upstream, response.aclose)
            try:
                content = await response.aread()
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            error = _error_from_status(response, content)
        if not error.retryable or attempt >= retries:
            raise error
        await asyncio.sleep(_backoff(attempt, error.retry_after))
        attempt += 1


async def _events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse SSE `data:` lines. A stream that ends without `[DONE]` was cut: raise."""
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
            except ValueError:
                raise ProviderError("The upstream provider sent an invalid stream chunk.", status=502,
                                    kind="protocol", retryable=False) from None
            if isinstance(event, dict) and "error" in event and "choices" not in event:
                raise ProviderError(str(event["error"].get("message", "upstream stream error")), status=502,
                                    kind="stream_error", retryable=False)
            yield event
        raise ProviderError("The upstream provider closed the stream early.", status=502, kind="stream_cut",
                            retryable=False)
    except httpx.HTTPError as exc:
        raise ProviderError("The upstream stream broke off.", status=502, kind="stream_cut",
                            retryable=False) from exc
    finally:
        await response.aclose()
