"""JSON logs with secret redaction, the one-line-per-request access log, and Sentry scrubbing.

Logging configuration and Sentry are process-global, so the end-to-end checks run in
subprocesses; Sentry's events go to a real HTTP server on loopback standing in for sentry.io.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import AsyncRequestFactory, RequestFactory

from leo_optima.core.logging import ACCESS_LOGGER, AccessLogMiddleware, build_logging, redact, redact_value

ROOT = Path(__file__).resolve().parent.parent

LEO_KEY = "leo_Xy12ab_9fQ0rT7uVwZ3kL5mN8pS2dG4h"
OPENAI_KEY = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"
SECRETS = [
    LEO_KEY,
    OPENAI_KEY,
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
    "sk_live_51HabcdefghijklmnopQRSTUV",
    "whsec_abcdefghijklmnopqrstuvwx",
    "AIzaSyA1234567890abcdefghijklmnopqrstu",
    "AKIAIOSFODNN7EXAMPLE",
    "gsk_abcdefghijklmnopqrstuvwxyz0123",
    "hf_abcdefghijklmnopqrstuvwxyz0123",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_redact_removes_every_kind_of_key(secret: str) -> None:
    for text in (secret, f"key={secret}", f'{{"k": "{secret}"}}', f"prefix {secret}, suffix"):
        out = redact(text)
        assert secret not in out
        assert "[REDACTED]" in out


def test_redact_bearer_urls_and_named_values() -> None:
    assert redact("Authorization: Bearer abc.def-ghi_jkl") == "Authorization: Bearer [REDACTED]"
    assert redact("postgres://leo:s3cr3t-pw@db:5432/leo") == "postgres://leo:[REDACTED]@db:5432/leo"
    assert "hunter22" not in redact('{"password": "hunter22"}')
    assert "hunter22" not in redact("password=hunter22&user=bob")


def test_redact_leaves_ordinary_text_alone() -> None:
    for text in (
        "leo_singleflight_waits_total went up",
        "leo_optima.settings.production loaded",
        "tokens_saved=120 technique=semantic",
        "ANSWER[0123456789ab] the capital is Paris",
        "request 9f1c2e3d4b5a69788796a5b4c3d2e1f0 done",
    ):
        assert redact(text) == text


def test_redact_value_walks_structures() -> None:
    data = {
        "headers": {"Authorization": "Bearer xyz123456", "Accept": "json"},
        "api_key": "anything-at-all",
        "tokens_saved": 12,
        "nested": [{"msg": f"used {OPENAI_KEY}"}],
    }
    out = redact_value(data)
    assert out["headers"]["Authorization"] == "[REDACTED]"
    assert out["headers"]["Accept"] == "json"
    assert out["api_key"] == "[REDACTED]"
    assert out["tokens_saved"] == 12
    assert OPENAI_KEY not in json.dumps(out)


def test_build_logging_rejects_unknown_levels() -> None:
    assert build_logging("debug")["root"]["level"] == "DEBUG"
    with pytest.raises(ValueError):
        build_logging("LOUD")


_LOGGING_SCRIPT = textwrap.dedent(
    """
    import logging, logging.config, sys
    from leo_optima.core.logging import build_logging, log_request
    logging.config.dictConfig(build_logging("INFO"))
    log = logging.getLogger("optimizer.proxy")
    log.info("upstream call with %s", "Bearer " + sys.argv[1])
    log.warning("retrying", extra={"upstream_key": sys.argv[2], "provider": "openai", "api_key": "x1234567"})
    try:
        raise RuntimeError("upstream said: invalid key " + sys.argv[2])
    except RuntimeError:
        log.exception("upstream failed")
    log_request("req-1", "acme", "semantic", 200, 12.345, "gpt-4o", method="POST", path="/v1/chat/completions",
                tokens_saved=42, module="clash")
    logging.getLogger("httpx").info("HTTP Request: POST https://api.example.com/v1/chat")
    logging.getLogger("x").debug("debug lines are below INFO")
    """
)


def test_json_lines_on_stdout_are_redacted() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", _LOGGING_SCRIPT, LEO_KEY, OPENAI_KEY],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )
    assert LEO_KEY not in proc.stdout + proc.stderr
    assert OPENAI_KEY not in proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    # httpx at INFO and the DEBUG line are filtered out: exactly four lines.
    assert [line["message"] for line in lines] == [
        "upstream call with Bearer [REDACTED]",
        "retrying",
        "upstream failed",
        "request",
    ]
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= set(line)
    assert lines[1]["upstream_key"] == "[REDACTED]"
    assert lines[1]["api_key"] == "[REDACTED]"
    assert lines[1]["provider"] == "openai"
    assert "RuntimeError: upstream said: invalid key [REDACTED]" in lines[2]["exc_info"]
    access = lines[3]
    assert access["logger"] == ACCESS_LOGGER
    assert {k: access[k] for k in ("request_id", "tenant", "technique", "status", "latency_ms", "model")} == {
        "request_id": "req-1",
        "tenant": "acme",
        "technique": "semantic",
        "status": 200,
        "latency_ms": 12.35,
        "model": "gpt-4o",
    }
    assert access["tokens_saved"] == 42
    assert access["x_module"] == "clash"


# --------------------------------------------------------------------------- access-log middleware


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS_LOGGER]


def test_middleware_logs_one_line_per_sync_request(caplog: pytest.LogCaptureFixture) -> None:
    def view(request: Any) -> HttpResponse:
        request.leo_tenant = "acme"
        request.leo_model = "gpt-4o"
        response = HttpResponse("ok", status=201)
        response["X-LEO-Cache"] = "exact"
        response["X-LEO-Request-Id"] = "leo-req-77"
        return response

    caplog.set_level(logging.DEBUG, logger=ACCESS_LOGGER)
    middleware = AccessLogMiddleware(view)
    middleware(RequestFactory().post("/v1/chat/completions", HTTP_AUTHORIZATION=f"Bearer {LEO_KEY}"))
    (record,) = _access_records(caplog)
    assert record.levelno == logging.INFO
    assert (record.request_id, record.tenant, record.technique, record.status, record.model) == (
        "leo-req-77", "acme", "exact", 201, "gpt-4o"
    )
    assert record.path == "/v1/chat/completions"
    assert record.latency_ms >= 0
    assert LEO_KEY not in json.dumps({k: str(v) for k, v in vars(record).items()})


def test_middleware_keeps_a_valid_incoming_request_id_and_rejects_junk(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def view(request: Any) -> HttpResponse:
        seen.append(request.leo_request_id)
        return HttpResponse("ok")

    caplog.set_level(logging.DEBUG, logger=ACCESS_LOGGER)
    middleware = AccessLogMiddleware(view)
    middleware(RequestFactory().get("/portal/", HTTP_X_REQUEST_ID="3f2a9c0d11aa"))
    middleware(RequestFactory().get("/portal/", HTTP_X_REQUEST_ID=f"Bearer {LEO_KEY}"))
    assert seen[0] == "3f2a9c0d11aa"
    assert seen[1] != f"Bearer {LEO_KEY}" and len(seen[1]) == 32
    assert [r.request_id for r in _access_records(caplog)] == seen


def test_middleware_logs_probes_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=ACCESS_LOGGER)
    AccessLogMiddleware(lambda request: HttpResponse("ok"))(RequestFactory().get("/healthz"))
    (record,) = _access_records(caplog)
    assert record.levelno == logging.DEBUG


def test_middleware_logs_async_stream_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            await asyncio.sleep(0.02)
            yield f"data: {i}\n\n".encode()

    async def view(request: Any) -> StreamingHttpResponse:
        request.leo_tenant = "acme"
        response = StreamingHttpResponse(chunks(), content_type="text/event-stream")
        response["X-LEO-Cache"] = "miss"
        return response

    caplog.set_level(logging.DEBUG, logger=ACCESS_LOGGER)
    middleware = AccessLogMiddleware(view)

    async def run() -> bytes:
        response = await middleware(AsyncRequestFactory().post("/v1/chat/completions"))
        assert not _access_records(caplog), "the line must wait for the end of the stream"
        body = b""
        async for part in response.streaming_content:
            body += part
        return body

    body = asyncio.run(run())
    assert body.count(b"data:") == 3
    (record,) = _access_records(caplog)
    assert (record.technique, record.tenant, record.stream, record.completed) == ("miss", "acme", True, True)
    assert record.latency_ms >= 60 * 0.9


@pytest.mark.django_db  # response.close() sends request_finished, which checks DB connections
def test_middleware_logs_abandoned_sync_stream(caplog: pytest.LogCaptureFixture) -> None:
    def view(request: Any) -> StreamingHttpResponse:
        return StreamingHttpResponse(iter([b"a", b"b", b"c"]))

    caplog.set_level(logging.DEBUG, logger=ACCESS_LOGGER)
    response = AccessLogMiddleware(view)(RequestFactory().get("/v1/models"))
    assert next(iter(response)) == b"a"
    response.close()  # what the server does when the client goes away after the first chunk
    (record,) = _access_records(caplog)
    assert (record.stream, record.completed) == (True, False)


# --------------------------------------------------------------------------- Sentry


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        type(self).bodies.append(data)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_ingest() -> Iterator[tuple[str, list[bytes]]]:
    _Collector.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://publickey@127.0.0.1:{server.server_port}/42", _Collector.bodies
    finally:
        server.shutdown()
        server.server_close()


_SENTRY_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    import sentry_sdk
    from leo_optima.core.logging import init_sentry
    assert init_sentry("") is False
    assert init_sentry(sys.argv[1], environment="test") is True
    assert sentry_sdk.get_client().options["send_default_pii"] is False
    logging.getLogger("proxy").warning("breadcrumb with %s", sys.argv[2])
    with sentry_sdk.new_scope() as scope:
        scope.set_context("request", {"headers": {"Authorization": "Bearer " + sys.argv[2]}})
        scope.set_extra("upstream", "calling with " + sys.argv[3])
        try:
            raise ValueError("rejected key " + sys.argv[2])
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(timeout=10)
    """
)


def test_sentry_is_optional_and_events_are_scrubbed(sentry_ingest: tuple[str, list[bytes]]) -> None:
    pytest.importorskip("sentry_sdk")
    dsn, bodies = sentry_ingest
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(
        [sys.executable, "-c", _SENTRY_SCRIPT, dsn, LEO_KEY, OPENAI_KEY],
        env=env, cwd=ROOT, timeout=60, check=True,
    )
    payload = b"".join(bodies).decode("utf-8", "replace")
    assert "ValueError" in payload, "the event must reach the (local) Sentry endpoint"
    assert "rejected key [REDACTED]" in payload
    assert LEO_KEY not in payload
    assert OPENAI_KEY not in payload
