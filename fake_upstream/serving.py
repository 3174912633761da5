"""Serving the fake upstream: aiohttp's public low-level server, an in-thread runner, the CLI.

Why aiohttp and not uvicorn: the fake must be able to reset a connection (RST, what a crashed
upstream looks like) and cut a stream mid-body, which needs the connection's transport. aiohttp
exposes it publicly (``BaseRequest.transport``); uvicorn only through a subclass of its private
HTTP protocol, which is what this replaced. The app itself stays a plain ASGI callable
(``app.FakeUpstream``); ``_asgi_handler`` below gives it one request at a time, with the
transport in ``scope["extensions"]``, and aiohttp's ``handler_cancellation`` turns a client
disconnect into the cancellation a hanging request waits for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .app import FakeUpstream
from .knobs import validate_knobs
from .streaming import TRANSPORT_EXTENSION, AsgiMessage

try:
    import uvloop
except ImportError:  # pragma: no cover - uvicorn[standard] installs it
    uvloop = None

# Keep pooled client connections alive like a real upstream would (httpx reuses them).
_KEEPALIVE_SECONDS = 75.0
_SHUTDOWN_SECONDS = 2.0
_BACKLOG = 2048
_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access")


def _asgi_handler(app: FakeUpstream) -> Callable[[web.BaseRequest], Any]:
    """An aiohttp handler that runs one HTTP request through the ASGI ``app``."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.content.read()  # the stream, not read(): no 1 MB client_max_size here
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": f"{request.version.major}.{request.version.minor}",
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": request.raw_path.split("?", 1)[0].encode("latin-1"),
            "query_string": request.query_string.encode("latin-1"),
            "headers": [(name.lower(), value) for name, value in request.raw_headers],
            "client": None,
            "server": None,
            "extensions": {TRANSPORT_EXTENSION: request.transport},
        }
        delivered = False

        async def receive() -> AsgiMessage:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            # Nothing more will come: a disconnect arrives as this task's cancellation.
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}  # pragma: no cover - never reached

        head: tuple[int, list[tuple[str, str]]] | None = None
        response: web.StreamResponse | None = None

        async def send(message: AsgiMessage) -> None:
            nonlocal head, response
            if message["type"] == "http.response.start":
                raw = message.get("headers", ())
                head = (message["status"], [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw])
                return
            if message["type"] != "http.response.body" or head is None:
                return
            chunk = message.get("body", b"")
            if response is None and not message.get("more_body", False):
                # The whole answer in one message (every JSON answer): one plain Response.
                headers = [(name, value) for name, value in head[1] if name.lower() != "content-length"]
                response = web.Response(status=head[0], body=chunk, headers=headers)
                return
            # A client that has gone is not an error: like uvicorn, drop what is sent after it.
            with contextlib.suppress(ConnectionResetError):
                if response is None:
                    response = web.StreamResponse(status=head[0], headers=head[1])
                    await response.prepare(request)
                if chunk:
                    await response.write(chunk)
                if not message.get("more_body", False):
                    await response.write_eof()

        await app(scope, receive, send)
        if response is None:  # the app closed the connection without answering (a reset)
            raise asyncio.CancelledError
        return response

    return handle


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket; port 0 picks a free port, known before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


async def _serve_until(app: FakeUpstream, sock: socket.socket, stop: asyncio.Event,
                       started: Callable[[], None] | None = None) -> None:
    """Serve ``app`` on ``sock`` until ``stop`` is set; hanging requests are cut, not waited out."""
    server = web.Server(_asgi_handler(app), handler_cancellation=True, access_log=None,
                        keepalive_timeout=_KEEPALIVE_SECONDS)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=_BACKLOG)
    await site.start()
    try:
        if started is not None:
            started()
        await stop.wait()
    finally:
        app.release_hangers()
        await runner.cleanup()


def _runner() -> asyncio.Runner:
    return asyncio.Runner(loop_factory=uvloop.new_event_loop if uvloop is not None else None)


class RunningFakeUpstream:
    """A fake upstream served from a background thread; also a context manager."""

    def __init__(self, app: FakeUpstream, host: str, port: int, sock: socket.socket) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._sock = sock
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"fake-upstream-{port}", daemon=True)

    def _run(self) -> None:
        with _runner() as runner:
            self._loop = runner.get_loop()
            self._stop = asyncio.Event()
            runner.run(_serve_until(self.app, self._sock, self._stop, self._ready.set))

    def start(self, timeout: float = 15.0) -> RunningFakeUpstream:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.01):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._sock.close()
                raise RuntimeError("the fake upstream did not start")
        return self

    @property
    def base(self) -> str:
        """``http://HOST:PORT`` (the control endpoints live here)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://HOST:PORT/v1``: the ``base_url`` to give an OpenAI client."""
        return self.base + "/v1"

    def stats(self) -> dict[str, Any]:
        """The counters (see ``FakeUpstream.stats``)."""
        return self.app.stats()

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time; returns them all."""
        return self.app.configure(**knobs)

    def reset(self) -> None:
        """Zero the counters and restore default knobs."""
        self.app.reset()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait for the thread (hanging requests are cut)."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> RunningFakeUpstream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_in_thread(host: str = "127.0.0.1", port: int = 0, **knobs: Any) -> RunningFakeUpstream:
    """Start a fake upstream in a daemon thread and return once it accepts requests."""
    app = FakeUpstream(**knobs)
    sock = bind_socket(host, port)
    return RunningFakeUpstream(app, host, sock.getsockname()[1], sock).start()


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    announce: Callable[[str], None] | None = None,
    **knobs: Any,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM; ``announce`` gets the ``/v1`` URL once bound."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(log_level.upper())
    app = FakeUpstream(**knobs)
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    if announce is not None:
        announce(f"http://{shown_host}:{bound_port}/v1")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await _serve_until(app, sock, stop)

    with _runner() as runner:
        runner.run(main())


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line flags, shared by ``manage.py fake_upstream`` and ``python -m fake_upstream``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (printed)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before the first byte")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between stream chunks")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests that fail (0..1)")
    parser.add_argument("--error-status", type=int, default=500, help="status of injected failures")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with 429")
    parser.add_argument("--seed", type=int, default=0, help="seed of the error-rate draws")
    parser.add_argument("--drop-after-chunks", type=int, default=None, help="cut streams after K chunks")
    parser.add_argument("--api-key", default=None, help="require this bearer token (401 otherwise)")
    parser.add_argument("--log-level", default="warning", help="server log level (default warning)")


def knobs_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """Knob kwargs from parsed CLI options (argparse's dest names)."""
    names = ("latency_ms", "chunk_delay_ms", "error_rate", "error_status", "retry_after", "seed",
             "drop_after_chunks", "api_key")  # fmt: skip
    return validate_knobs({name: options[name] for name in names if options.get(name) is not None})


def main(argv: list[str] | None = None) -> None:
    """``python -m fake_upstream --port N ...`` (the same flags as the command)."""
    parser = argparse.ArgumentParser(description="LEO's fake OpenAI-compatible upstream")
    add_cli_arguments(parser)
    options = vars(parser.parse_args(argv))
    serve(
        options["host"],
        options["port"],
        log_level=options["log_level"],
        announce=lambda url: print(f"fake upstream (LEO test double) listening on {url}", flush=True),
        **knobs_from_options(options),
    )
