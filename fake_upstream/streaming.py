"""Sending over ASGI: JSON responses, paced or cut SSE streams, and closing a connection.

A reset (RST, no response) and a dropped stream (closed mid-body, no ``[DONE]``) are impossible
in plain ASGI: ``serving`` passes the connection's transport in the scope under
``TRANSPORT_EXTENSION`` and ``close_connection`` uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .answers import Prepared
from .controls import Controls
from .knobs import Knobs

Scope = MutableMapping[str, Any]
AsgiMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]

# The ASGI scope extension under which ``serving`` passes the connection's transport: closing a
# connection without a response (reset) or mid-body (drop) is impossible in plain ASGI.
TRANSPORT_EXTENSION = "leo.transport"

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


async def read_body(receive: Receive) -> bytes:
    """The whole request body."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send a whole JSON response."""
    head = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode("ascii"))]
    if headers:
        head.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def send_stream(
    controls: Controls,
    scope: Scope,
    receive: Receive,
    send: Send,
    prepared: Prepared,
    model: str,
    knobs: Knobs,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Send ``prepared``'s SSE events, paced by the knobs, or cut after ``drop_after_chunks``."""
    events = prepared.events or []
    controls.count("streams")
    await send({"type": "http.response.start", "status": 200, "headers": [*_SSE_HEADERS, *headers]})
    drop = knobs.drop_after_chunks
    delay = knobs.chunk_delay_ms / 1000
    usage_delay = knobs.usage_delay_ms / 1000
    if drop is None and delay <= 0 and usage_delay <= 0:
        # Nothing to pace or cut: one write is much cheaper than one per event.
        await send({"type": "http.response.body", "body": b"".join(events), "more_body": False})
        if prepared.usage_event is not None:
            controls.count_usage(model, prepared.prompt_tokens, prepared.completion_tokens)
        controls.finish(200)
        return
    last = len(events) - 1
    for position, event in enumerate(events):
        if drop is not None and (position >= drop or position == last):
            controls.count("dropped_streams")
            controls.finish(None)
            await close_connection(scope, receive, abortive=False)
            return
        if position and delay > 0:
            await asyncio.sleep(delay)
        if position == prepared.usage_event and usage_delay > 0:
            await asyncio.sleep(usage_delay)
        await send({"type": "http.response.body", "body": event, "more_body": True})
        if position == prepared.usage_event:
            controls.count_usage(model, prepared.prompt_tokens, prepared.completion_tokens)
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    controls.finish(200)


async def close_connection(scope: Scope, receive: Receive, *, abortive: bool) -> None:
    """Close the connection: abortive (RST, no response) or after the bytes sent (FIN)."""
    transport = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    if transport is None:
        # Served by another ASGI server: returning without finishing makes most of them close
        # the connection (before a response uvicorn sends a 500 instead; documented limitation).
        return
    if abortive:
        sock = transport.get_extra_info("socket")
        # Linger 0 turns close into a TCP RST, what a crashed upstream looks like.
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    # Wait for the server to see the connection go, so it does not log an unfinished response.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wait_disconnect(receive), timeout=2.0)
