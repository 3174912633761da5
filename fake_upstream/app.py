"""The fake OpenAI-compatible upstream's ASGI app: routing, the order of faults, the control API.

A raw ASGI app (no framework, stdlib json), served on loopback by ``serving`` (aiohttp's public
server, with uvloop), so it is also the latency baseline the gateway is measured against.
Everything it answers is deterministic.

Endpoints (OpenAI's wire format, as the official ``openai`` SDK parses it)::

    POST /v1/chat/completions   JSON or SSE (stream: true), n, tools/tool_choice, max_tokens
    POST /v1/completions        legacy completions, prompt str | list, JSON or SSE
    POST /v1/embeddings         input str | list[str] | token arrays; dimensions; float | base64
    GET  /v1/models             the model list (GET /v1/models/{id} retrieves one)
    GET  /_stats                counters (see ``FakeUpstream.stats``)
    GET|POST /_config           read / change the knobs at run time (POST takes a JSON object)
    POST /_reset                zero the counters and put every knob back to its default

The package's other modules, in order of dependence: ``content`` (the ANSWER tag and the token
rule), ``protocol`` (JSON/SSE encoding, error envelopes, request fields), ``answers`` (request ->
JSON body or SSE events), ``knobs``, ``controls`` (knobs, counters, fault decisions),
``streaming`` (sending, pacing and cutting streams, closing connections), then this module.

Knobs (constructor kwargs, ``configure()``, ``POST /_config``, the command's flags): see
``Knobs``. Faults apply to ``/v1/*`` only, in this order: ``latency_ms`` sleep, ``api_key``
check (401), ``hang``, ``reset_connection`` / ``reset_next``, ``fail_next``, ``error_rate``,
then request validation (400) and the answer. ``_stats`` sums ``prompt_tokens`` and
``completion_tokens`` over the usage objects it actually sent, so a stream without
``include_usage`` or a dropped stream adds no tokens.

The names other code imported from this module before it was split (#16) are still importable
from here (see ``__all__``); their homes are the modules above.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from .answers import MODELS, MODELS_BODY, Prepared, model_object, prepare_chat, prepare_completion, prepare_embeddings
from .content import answer_tag, answer_text, content_text, count_tokens, last_user_text
from .controls import Controls
from .knobs import Knobs, validate_knobs
from .protocol import RequestError, dumps, error_body, iter_sse_data
from .streaming import (
    TRANSPORT_EXTENSION,
    AsgiMessage,
    Receive,
    Scope,
    Send,
    close_connection,
    read_body,
    respond,
    send_stream,
    wait_disconnect,
)

__all__ = [
    "MODELS",
    "TRANSPORT_EXTENSION",
    "AsgiMessage",
    "FakeUpstream",
    "Knobs",
    "answer_tag",
    "answer_text",
    "content_text",
    "count_tokens",
    "iter_sse_data",
    "last_user_text",
    "prepare_chat",
    "validate_knobs",
]

_ENDPOINTS: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("POST", "chat"),
    "/v1/completions": ("POST", "completions"),
    "/v1/embeddings": ("POST", "embeddings"),
    "/v1/models": ("GET", "models"),
}


def _bearer(scope: Scope) -> str | None:
    """The bearer token of the Authorization header (the whole value when not ``Bearer``)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            return text[7:].strip() if text[:7].lower() == "bearer " else text
    return None


class FakeUpstream:
    """The raw ASGI app; its state (knobs and counters) is a ``controls.Controls``."""

    def __init__(self, **knobs: Any) -> None:
        self._controls = Controls()
        self._hangers: set[asyncio.Future[None]] = set()
        if knobs:
            self.configure(**knobs)

    # -- control --------------------------------------------------------------------------------

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change some knobs (validated; ValueError on a bad one); returns all knobs."""
        return self._controls.configure(**changes)

    @property
    def knobs(self) -> Knobs:
        """The current knobs (immutable snapshot)."""
        return self._controls.knobs

    def reset(self) -> None:
        """Zero every counter and put every knob back to its default."""
        self._controls.reset()

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (see ``Controls.stats``)."""
        return self._controls.stats()

    def release_hangers(self) -> None:
        """End every hanging request (its connection is reset); call in the server's loop.

        The server calls it when it begins to shut down: otherwise a graceful shutdown would
        wait for requests that, by design, never finish.
        """
        for future in list(self._hangers):
            if not future.done():
                future.set_result(None)

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/v1/"):
            await self._v1(scope, receive, send, path)
        elif path.startswith("/_"):
            await self._control(scope, receive, send, path)
        else:
            await respond(send, 404, error_body(404, f"Unknown path {path!r}."))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.release_hangers()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _control(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        method = scope["method"]
        body = await read_body(receive)
        if path == "/_stats" and method == "GET":
            await respond(send, 200, dumps(self.stats()))
        elif path == "/_reset" and method == "POST":
            self.reset()
            await respond(send, 200, dumps({"ok": True}))
        elif path == "/_config" and method == "GET":
            await respond(send, 200, dumps(self._controls.knobs.public()))
        elif path == "/_config" and method == "POST":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object of knobs")
                await respond(send, 200, dumps(self.configure(**changes)))
            except ValueError as exc:
                await respond(send, 400, error_body(400, str(exc)))
        elif path == "/_health" and method == "GET":
            await respond(send, 200, dumps({"ok": True}))
        else:
            await respond(send, 404, error_body(404, f"Unknown control endpoint {method} {path}."))

    async def _v1(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        raw = await read_body(receive)
        method: str = scope["method"]
        token = _bearer(scope)
        route = _ENDPOINTS.get(path)
        if route is None and path.startswith("/v1/models/"):
            route = ("GET", "models")
        kind = route[1] if route else None

        body: Any = None
        parse_error: str | None = None
        if method == "POST" and kind in ("chat", "completions", "embeddings"):
            try:
                body = json.loads(raw)
            except ValueError:
                parse_error = (
                    "We could not parse the JSON body of your request. (HINT: This likely means you aren't"
                    " using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
                )
        model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None

        controls = self._controls
        knobs = controls.arrive(kind, token, model)

        if knobs.latency_ms > 0:
            await asyncio.sleep(knobs.latency_ms / 1000)
        request_id = "req_" + controls.nonce + secrets.token_hex(8)
        id_header = [(b"x-request-id", request_id.encode("ascii"))]

        if knobs.api_key is not None and token != knobs.api_key:
            shown = f"...{token[-4:]}" if token else "(none)"
            controls.finish(401)
            await respond(send, 401, error_body(401, f"Incorrect API key provided: {shown}."), id_header)
            return

        fault = controls.decide_fault()
        if fault == "hang":
            await self._hang(scope, receive)
            return
        if fault == "reset":
            controls.count("resets")
            controls.finish(None)
            await close_connection(scope, receive, abortive=True)
            return
        if fault == "error":
            status = knobs.error_status
            headers = list(id_header)
            if status == 429:
                seconds = knobs.retry_after
                text = str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
                headers += [(b"retry-after", text.encode()), (b"retry-after-ms", str(int(seconds * 1000)).encode())]
            controls.finish(status)
            await respond(send, status, error_body(status), headers)
            return

        if route is None:
            controls.finish(404)
            await respond(send, 404, error_body(404, f"Invalid URL ({method} {path})."), id_header)
            return
        if method != route[0]:
            controls.finish(405)
            await respond(send, 405, error_body(405, f"Method {method} not allowed on {path}."), id_header)
            return
        if parse_error is not None:
            controls.finish(400)
            await respond(send, 400, error_body(400, parse_error), id_header)
            return

        try:
            prepared = self._prepare(kind or "", path, body)
        except RequestError as exc:
            controls.finish(exc.status)
            await respond(
                send, exc.status, error_body(exc.status, str(exc), param=exc.param, code=exc.code), id_header
            )
            return

        if prepared.body is not None:
            if prepared.prompt_tokens or prepared.completion_tokens:
                controls.count_usage(model or "", prepared.prompt_tokens, prepared.completion_tokens)
            controls.finish(200)
            await respond(send, 200, prepared.body, id_header)
            return
        await send_stream(controls, scope, receive, send, prepared, model or "", knobs, id_header)

    def _prepare(self, kind: str, path: str, body: Any) -> Prepared:
        if kind == "models":
            if path == "/v1/models":
                return Prepared(body=MODELS_BODY)
            return Prepared(body=dumps(model_object(path[len("/v1/models/") :])))
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        created = int(time.time())
        if kind == "chat":
            return prepare_chat(body, request_id=self._controls.next_id("chatcmpl-"), created=created)
        if kind == "completions":
            return prepare_completion(body, request_id=self._controls.next_id("cmpl-"), created=created)
        return prepare_embeddings(body)

    async def _hang(self, scope: Scope, receive: Receive) -> None:
        """Answer nothing until the client disconnects or the server stops."""
        self._controls.count("hangs")
        self._controls.count("errors")
        released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hangers.add(released)
        disconnected = asyncio.ensure_future(wait_disconnect(receive))
        try:
            await asyncio.wait({released, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._hangers.discard(released)
            disconnected.cancel()
        if released.done():
            await close_connection(scope, receive, abortive=True)
