"""ASGI entry point (gunicorn with uvicorn workers in production, uvicorn in tests).

Requests under /v1/ go to a handler with its own async-only middleware stack (API_MIDDLEWARE):
Django adapts each classic middleware with two thread hops per request, which the proxy's hot path
cannot afford and does not need (no sessions, CSRF or templates there). Everything else gets the
full stack from MIDDLEWARE.
"""

from __future__ import annotations

import os
import threading

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leo_optima.settings.local")

import django  # noqa: E402

django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402


class ApiASGIHandler(ASGIHandler):
    """Django's ASGI handler with `API_MIDDLEWARE` (async-capable middleware only) instead of MIDDLEWARE,
    and without a per-request ThreadSensitiveContext.

    Django opens a ThreadSensitiveContext per request, so the sync receivers of request_started and
    request_finished run on a thread created (and joined) for that request: about a fifth of a
    miss's CPU here. The API's own database work runs through `leo_optima.core.db.run_db` in pooled
    threads, so its few thread-sensitive calls can share the process-wide sync thread instead.
    """

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        await self.handle(scope, receive, send)

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(settings.API_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._middleware_chain = handler


_site = ASGIHandler()
_api = ApiASGIHandler()


# Import the URL map (and with it every view and pipeline module) now, in this thread: imports
# racing between the warm-up thread and the first request could hand one of them a partially
# initialised module.
import leo_optima.urls  # noqa: E402,F401
from optimizer.pipeline import semantic_replica  # noqa: E402
from optimizer.pipeline.writer import writer  # noqa: E402
from optimizer.semantic import get_embedder  # noqa: E402


def _warm_up() -> None:
    """Load the embedding model and the semantic index replica once per worker, at start."""
    get_embedder().warm_up()
    semantic_replica.start_refresher()


if settings.LEO_PRELOAD_EMBEDDER:
    threading.Thread(target=_warm_up, name="leo-warm-up", daemon=True).start()


async def application(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "http" and scope["path"].startswith("/v1/"):
        return await _api(scope, receive, send)
    if scope["type"] == "lifespan":
        # Django has no lifespan support; acknowledge it so servers do not log an error.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                writer.flush(timeout=10)
                await send({"type": "lifespan.shutdown.complete"})
                return
    return await _site(scope, receive, send)
