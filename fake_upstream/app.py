"""The fake OpenAI-compatible upstream's ASGI app: what it answers, counts and fails with.

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

The ANSWER tag: a chat answer's content starts with ``ANSWER[`` + the first 12 hex digits of
SHA-256(the last user message's text, UTF-8) + ``]``, then 20-40 filler words derived from that
hash, then a full stop. The text of a message is its ``content`` when that is a string; when it
is a list of content parts, it is the ``text`` of its text parts joined with ``"\\n"``. A legacy
completion's tag is the hash of its prompt (each prompt of a list gets its own). Choice ``i`` of
``n`` keeps the tag and varies the filler deterministically with ``i``.

The token rule (the fake's own, documented so a ledger can be reconciled exactly)::

    tokens(text)      = len(re.findall(r"\\w+|[^\\w\\s]", text))
    chat prompt       = 3 + sum over messages of (4 + tokens(message text))
                        + tokens(compact JSON of tools, keys sorted) when tools are given
                        (an assistant message's tool calls add "\\n" + name + "\\n" + arguments
                        to its text)
    completion        = sum over choices of tokens(answer content), or for a tool call
                        tokens(function name) + tokens(arguments)
    legacy prompt     = sum over prompts of tokens(prompt); token arrays count their length
    embeddings        = sum over inputs of tokens(input); completion_tokens is 0

A stream reports exactly the usage of the JSON answer to the same request (in its final chunk,
when ``stream_options.include_usage`` is true). ``_stats`` sums ``prompt_tokens`` and
``completion_tokens`` over the usage objects it actually sent, so a stream without
``include_usage`` or a dropped stream adds no tokens.

Knobs (constructor kwargs, ``configure()``, ``POST /_config``, the command's flags): see
``Knobs``. Faults apply to ``/v1/*`` only, in this order: ``latency_ms`` sleep, ``api_key``
check (401), ``hang``, ``reset_connection`` / ``reset_next``, ``fail_next``, ``error_rate``,
then request validation (400) and the answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import random
import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from functools import lru_cache
from typing import Any

Scope = MutableMapping[str, Any]
AsgiMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]

# The ASGI scope extension under which ``serving`` passes the connection's transport: closing a
# connection without a response (reset) or mid-body (drop) is impossible in plain ASGI.
TRANSPORT_EXTENSION = "leo.transport"

MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-3.5-turbo",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)
OWNED_BY = "leo-fake-upstream"
SYSTEM_FINGERPRINT = "fp_leofake0001"
DEFAULT_EMBEDDING_DIMENSIONS = 256
MAX_EMBEDDING_DIMENSIONS = 8192
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_OVERHEAD_TOKENS = 3
WORDS_PER_CHUNK = 4
TOOL_ARGUMENT_CHUNK_CHARS = 24

# ---------------------------------------------------------------------------------------------
# Deterministic content: the token rule, the ANSWER tag, filler, embeddings
# ---------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_WORD_PIECE_RE = re.compile(r"\S+\s*")

_FILLER_WORDS: tuple[str, ...] = (
    "alpha", "beta", "gamma", "delta", "signal", "vector", "cache", "answer",
    "model", "token", "prompt", "result", "context", "detail", "summary", "value",
    "system", "request", "reply", "method", "source", "record", "ledger", "gateway",
    "stream", "chunk", "index", "budget", "policy", "tenant", "router", "query",
    "fact", "figure", "sample", "measure", "factor", "option", "branch", "layer",
    "review", "report", "outline", "example", "pattern", "signal", "window", "buffer",
    "clear", "brief", "exact", "plain", "steady", "simple", "direct", "careful",
    "first", "second", "third", "final", "next", "other", "whole", "early",
)  # fmt: skip


def count_tokens(text: str) -> int:
    """The fake's token count: words (``\\w+``) and single punctuation marks."""
    return len(_TOKEN_RE.findall(text))


def content_text(content: Any) -> str:
    """The text of a message ``content``: the string, or the text parts joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        ]
        return "\n".join(parts)
    return str(content)


def message_text(message: dict[str, Any]) -> str:
    """A chat message's text for token counting: content, then each tool call's name and args."""
    text = content_text(message.get("content"))
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                text += "\n" + str(function.get("name", "")) + "\n" + str(function.get("arguments", ""))
    return text


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last message whose role is ``user`` ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def answer_tag(text: str) -> str:
    """The 12 hex digits that name a question: the start of SHA-256(text, UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@lru_cache(maxsize=8192)
def answer_text(text: str, index: int = 0) -> str:
    """The deterministic answer to ``text``: ``ANSWER[<tag>]`` and 20-40 filler words.

    Choice ``index`` > 0 keeps the tag and draws other filler, so ``n`` choices differ.
    """
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    seed = digest if index == 0 else hashlib.sha256(digest + index.to_bytes(4, "big")).digest()
    stream = hashlib.shake_256(seed).digest(41)
    count = 20 + stream[0] % 21
    words = [_FILLER_WORDS[b % len(_FILLER_WORDS)] for b in stream[1 : 1 + count]]
    return f"ANSWER[{digest.hex()[:12]}] " + " ".join(words) + "."


def truncate_to_tokens(text: str, limit: int | None) -> tuple[str, bool]:
    """Cut ``text`` after its ``limit``-th token; returns (text, truncated)."""
    if limit is None:
        return text, False
    for position, match in enumerate(_TOKEN_RE.finditer(text), start=1):
        if position == limit:
            end = match.end()
            # Cut only when a token follows; trailing whitespace alone is not a truncation.
            return (text[:end], True) if _TOKEN_RE.search(text, end) else (text, False)
    return text, False


@lru_cache(maxsize=4096)
def embedding_vector(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> tuple[float, ...]:
    """A deterministic unit vector for ``text``, drawn from SHAKE-256 of its hash."""
    seed = hashlib.sha256(b"embedding:" + text.encode("utf-8")).digest()
    raw = hashlib.shake_256(seed).digest(2 * dimensions)
    values = struct.unpack(f"<{dimensions}h", raw)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)


def _pieces(text: str) -> list[str]:
    """Split ``text`` into stream pieces of a few words each; they concatenate back to ``text``."""
    words = _WORD_PIECE_RE.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    if lead and words:
        words[0] = lead + words[0]
    elif lead:
        words = [lead]
    return ["".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def _sse(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


_SSE_DONE = b"data: [DONE]\n\n"

# ---------------------------------------------------------------------------------------------
# Knobs and errors
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Knobs:
    """What the fake does besides answering; all default to a healthy, instant upstream.

    latency_ms: sleep before the response's first byte.
    chunk_delay_ms: sleep between stream chunks.
    usage_delay_ms: sleep before a stream's usage chunk (a provider that sends usage late).
    error_rate: share (0..1) of requests that fail with ``error_status``, drawn from a
        ``random.Random(seed)`` once per request, so a sequence of requests fails the same way
        on every run.
    error_status: the status of injected failures (429 also sends ``Retry-After``).
    retry_after: seconds sent in ``Retry-After`` (and ``retry-after-ms``) with 429s.
    seed: seeds the error_rate draws; setting it restarts the sequence.
    fail_next: the next N requests fail with ``error_status`` (counts down).
    reset_next: the next N requests get their connection closed without a response.
    drop_after_chunks: a stream sends K SSE events, then the connection is closed (no [DONE]).
    reset_connection: every request gets its connection closed without any response.
    hang: every request waits without answering until the client goes away (timeout tests).
    api_key: when set, requests must carry ``Authorization: Bearer <api_key>`` or get a 401.
    """

    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    usage_delay_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    retry_after: float = 1.0
    seed: int = 0
    fail_next: int = 0
    reset_next: int = 0
    drop_after_chunks: int | None = None
    reset_connection: bool = False
    hang: bool = False
    api_key: str | None = None

    def public(self) -> dict[str, Any]:
        """The knobs as JSON-able data, with ``api_key`` reduced to whether it is set."""
        data = dataclasses.asdict(self)
        data["api_key"] = None if self.api_key is None else "set"
        return data


_KNOB_NAMES = frozenset(f.name for f in dataclasses.fields(Knobs))


def _as_number(name: str, value: Any, *, minimum: float = 0.0, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number")
    number = float(value)
    if not math.isfinite(number) or number < minimum or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be between {minimum} and {maximum if maximum is not None else 'inf'}")
    return number


def _as_int(name: str, value: Any, *, minimum: int = 0, maximum: int | None = None) -> int:
    number = _as_number(name, value, minimum=minimum, maximum=maximum)
    if number != int(number):
        raise ValueError(f"{name} must be an integer")
    return int(number)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ValueError(f"{name} must be a boolean")


def validate_knobs(changes: dict[str, Any]) -> dict[str, Any]:
    """Check and coerce knob changes (from kwargs, JSON or CLI); raises ValueError."""
    unknown = set(changes) - _KNOB_NAMES
    if unknown:
        raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("latency_ms", "chunk_delay_ms", "usage_delay_ms", "retry_after"):
            clean[name] = _as_number(name, value)
        elif name == "error_rate":
            clean[name] = _as_number(name, value, maximum=1.0)
        elif name == "error_status":
            clean[name] = _as_int(name, value, minimum=400, maximum=599)
        elif name == "seed":
            clean[name] = _as_int(name, value, minimum=-(2**63), maximum=2**63 - 1)
        elif name in ("fail_next", "reset_next"):
            clean[name] = _as_int(name, value)
        elif name == "drop_after_chunks":
            clean[name] = None if value is None else _as_int(name, value)
        elif name in ("reset_connection", "hang"):
            clean[name] = _as_bool(name, value)
        elif name == "api_key":
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError("api_key must be a non-empty string or null")
            clean[name] = value
    return clean


_ERROR_TYPES: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to do this."),
    404: ("invalid_request_error", None, "Not found."),
    408: ("timeout", None, "Request timed out."),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (fake upstream). Please retry later."),
    500: ("server_error", None, "The server had an error while processing your request (fake upstream)."),
    502: ("server_error", None, "Bad gateway (fake upstream)."),
    503: ("server_error", None, "The server is overloaded or not ready yet (fake upstream)."),
    504: ("server_error", None, "Gateway timeout (fake upstream)."),
}


class RequestError(Exception):
    """A request the fake refuses, carried to an OpenAI error envelope."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code


def error_body(status: int, message: str | None = None, *, param: str | None = None, code: str | None = None) -> bytes:
    """OpenAI's error envelope ``{"error": {"message", "type", "param", "code"}}`` as bytes."""
    kind, default_code, default_message = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error (fake upstream).")
    )
    return _dumps(
        {
            "error": {
                "message": message or default_message,
                "type": kind,
                "param": param,
                "code": code if code is not None else default_code,
            }
        }
    )


# ---------------------------------------------------------------------------------------------
# Request handling: body -> prepared answer (pure, no I/O)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Prepared:
    """A computed answer: a JSON body or a list of SSE events, and the usage it reports."""

    body: bytes | None = None
    events: list[bytes] | None = None
    usage_event: int | None = None  # index in ``events`` of the chunk carrying usage
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _optional_positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"Invalid '{name}': expected an integer >= 1.", param=name, code="invalid_value")
    return value


def _n(body: dict[str, Any]) -> int:
    n = _optional_positive_int(body, "n") or 1
    if n > 128:
        raise RequestError("Invalid 'n': at most 128.", param="n", code="invalid_value")
    return n


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("You must provide a model parameter.", param="model")
    return model


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _forced_tool(body: dict[str, Any]) -> str | None:
    """The function a tool-using request must call, or None when it answers in text."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return function["name"]
    first = tools[0]
    function = first.get("function") if isinstance(first, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise RequestError("Invalid 'tools[0]': a function with a name is required.", param="tools")
    return function["name"]


def _tool_call_id(tag: str, index: int) -> str:
    return "call_" + hashlib.sha256(f"{tag}:{index}".encode()).hexdigest()[:24]


def prepare_chat(body: dict[str, Any], *, request_id: str, created: int) -> Prepared:
    """Build the chat completion (JSON or SSE events) for a parsed request body."""
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise RequestError("'messages' must be a non-empty array of message objects.", param="messages")
    n = _n(body)
    limit = _optional_positive_int(body, "max_completion_tokens") or _optional_positive_int(body, "max_tokens")
    tool_name = _forced_tool(body)
    question = last_user_text(messages)
    tag = answer_tag(question)

    prompt_tokens = REPLY_OVERHEAD_TOKENS + sum(
        MESSAGE_OVERHEAD_TOKENS + count_tokens(message_text(m)) for m in messages
    )
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        prompt_tokens += count_tokens(json.dumps(tools, sort_keys=True, separators=(",", ":")))

    # Per choice: (content or None, tool call or None, finish_reason).
    choices: list[tuple[str | None, dict[str, Any] | None, str]] = []
    completion_tokens = 0
    for index in range(n):
        if tool_name is not None:
            arguments = json.dumps({"query": question})
            call = {
                "id": _tool_call_id(tag, index),
                "type": "function",
                "function": {"name": tool_name, "arguments": arguments},
            }
            completion_tokens += count_tokens(tool_name) + count_tokens(arguments)
            choices.append((None, call, "tool_calls"))
        else:
            text, truncated = truncate_to_tokens(answer_text(question, index), limit)
            completion_tokens += count_tokens(text)
            choices.append((text, None, "length" if truncated else "stop"))
    usage = _usage(prompt_tokens, completion_tokens)
    common = {"id": request_id, "created": created, "model": model, "system_fingerprint": SYSTEM_FINGERPRINT}

    if not body.get("stream"):
        payload = {
            "id": request_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": index,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": None,
                        "annotations": [],
                        **({"tool_calls": [call]} if call is not None else {}),
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for index, (content, call, finish) in enumerate(choices)
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        return Prepared(body=_dumps(payload), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    include_usage = _include_usage(body)
    extra = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(
            {
                "object": "chat.completion.chunk",
                **common,
                "service_tier": "default",
                "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }
        )

    events: list[bytes] = []
    for index, (content, call, finish) in enumerate(choices):
        if call is not None:
            arguments = call["function"]["arguments"]
            head = {"index": 0, "id": call["id"], "type": "function", "function": {"name": tool_name, "arguments": ""}}
            events.append(chunk(index, {"role": "assistant", "content": None, "tool_calls": [head], "refusal": None}))
            for start in range(0, len(arguments), TOOL_ARGUMENT_CHUNK_CHARS):
                piece = arguments[start : start + TOOL_ARGUMENT_CHUNK_CHARS]
                events.append(chunk(index, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        else:
            events.append(chunk(index, {"role": "assistant", "content": "", "refusal": None}))
            events.extend(chunk(index, {"content": piece}) for piece in _pieces(content or ""))
        events.append(chunk(index, {}, finish))
    usage_event = None
    if include_usage:
        usage_event = len(events)
        events.append(
            _sse(
                {"object": "chat.completion.chunk", **common, "service_tier": "default", "choices": [], "usage": usage}
            )
        )
    events.append(_SSE_DONE)
    return Prepared(
        events=events, usage_event=usage_event, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )


def _legacy_prompts(prompt: Any) -> list[tuple[str, int]]:
    """(text, prompt tokens) for each prompt of a legacy completion or embedding input."""
    if isinstance(prompt, str):
        return [(prompt, count_tokens(prompt))]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return [(p, count_tokens(p)) for p in prompt]
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return [(" ".join(map(str, prompt)), len(prompt))]
        if all(
            isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p) for p in prompt
        ):
            return [(" ".join(map(str, p)), len(p)) for p in prompt]
    raise RequestError("Invalid input: expected a string, an array of strings, or token arrays.")


def prepare_completion(body: dict[str, Any], *, request_id: str, created: int) -> Prepared:
    """Build a legacy text completion (JSON or SSE events)."""
    model = _model(body)
    if "prompt" not in body:
        raise RequestError("You must provide a prompt parameter.", param="prompt")
    try:
        prompts = _legacy_prompts(body["prompt"])
    except RequestError as exc:
        raise RequestError(str(exc), param="prompt") from None
    n = _n(body)
    limit = _optional_positive_int(body, "max_tokens")
    prompt_tokens = sum(tokens for _, tokens in prompts)
    choices: list[tuple[str, str]] = []
    completion_tokens = 0
    for text, _ in prompts:
        for index in range(n):
            answer, truncated = truncate_to_tokens(answer_text(text, index), limit)
            completion_tokens += count_tokens(answer)
            choices.append((answer, "length" if truncated else "stop"))
    usage = _usage(prompt_tokens, completion_tokens)
    common = {"id": request_id, "object": "text_completion", "created": created, "model": model}

    if not body.get("stream"):
        payload = {
            **common,
            "choices": [
                {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
                for index, (text, finish) in enumerate(choices)
            ],
            "usage": usage,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        return Prepared(body=_dumps(payload), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    include_usage = _include_usage(body)
    extra = {"usage": None} if include_usage else {}

    def chunk(index: int, text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        return _sse({**common, "system_fingerprint": SYSTEM_FINGERPRINT, "choices": [choice], **extra})

    events: list[bytes] = []
    for index, (text, finish) in enumerate(choices):
        events.extend(chunk(index, piece) for piece in _pieces(text))
        events.append(chunk(index, "", finish))
    usage_event = None
    if include_usage:
        usage_event = len(events)
        events.append(_sse({**common, "system_fingerprint": SYSTEM_FINGERPRINT, "choices": [], "usage": usage}))
    events.append(_SSE_DONE)
    return Prepared(
        events=events, usage_event=usage_event, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )


def prepare_embeddings(body: dict[str, Any]) -> Prepared:
    """Build an embeddings response: deterministic unit vectors, float or base64 float32."""
    model = _model(body)
    if "input" not in body:
        raise RequestError("You must provide an input parameter.", param="input")
    try:
        inputs = _legacy_prompts(body["input"])
    except RequestError as exc:
        raise RequestError(str(exc), param="input") from None
    if any(not text for text, _ in inputs):
        raise RequestError("'input' cannot be an empty string.", param="input")
    dimensions = body.get("dimensions")
    if dimensions is None:
        dimensions = DEFAULT_EMBEDDING_DIMENSIONS
    elif (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS
    ):
        raise RequestError(
            f"Invalid 'dimensions': expected an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}.", param="dimensions"
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestError("Invalid 'encoding_format': 'float' or 'base64'.", param="encoding_format")
    data = []
    for index, (text, _) in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        embedding: Any = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
            if encoding == "base64"
            else list(vector)
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    prompt_tokens = sum(tokens for _, tokens in inputs)
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    return Prepared(body=_dumps(payload), prompt_tokens=prompt_tokens)


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": OWNED_BY}


_MODELS_BODY = _dumps({"object": "list", "data": [_model_object(m) for m in MODELS]})

# ---------------------------------------------------------------------------------------------
# The ASGI application
# ---------------------------------------------------------------------------------------------

_ENDPOINTS: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("POST", "chat"),
    "/v1/completions": ("POST", "completions"),
    "/v1/embeddings": ("POST", "embeddings"),
    "/v1/models": ("GET", "models"),
}
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


def _empty_stats() -> dict[str, Any]:
    return {
        "requests": 0,
        "ok": 0,
        "chat": 0,
        "completions": 0,
        "embeddings": 0,
        "models": 0,
        "errors": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "streams": 0,
        "dropped_streams": 0,
        "resets": 0,
        "hangs": 0,
        "by_status": {},
        "by_model": {},
        "auth_suffixes": {},
    }


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            return text[7:].strip() if text[:7].lower() == "bearer " else text
    return None


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class FakeUpstream:
    """The raw ASGI app. State: the knobs and the counters, both guarded by one lock.

    The lock matters because ``run_in_thread`` serves from its own thread while tests call
    ``configure``/``stats``/``reset`` from theirs; it is only held for a few dict updates.
    """

    def __init__(self, **knobs: Any) -> None:
        self._lock = threading.Lock()
        self._knobs = Knobs()
        # Not for security: a seeded generator makes error_rate failures reproducible.
        self._rng = random.Random(0)  # noqa: S311
        self._stats = _empty_stats()
        self._nonce = secrets.token_hex(4)
        self._sequence = 0
        self._hangers: set[asyncio.Future[None]] = set()
        if knobs:
            self.configure(**knobs)

    # -- control --------------------------------------------------------------------------------

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change some knobs (validated; ValueError on a bad one); returns all knobs."""
        clean = validate_knobs(changes)
        with self._lock:
            self._knobs = dataclasses.replace(self._knobs, **clean)
            if "seed" in clean:
                self._rng = random.Random(clean["seed"])  # noqa: S311
            return self._knobs.public()

    @property
    def knobs(self) -> Knobs:
        """The current knobs (immutable snapshot)."""
        return self._knobs

    def reset(self) -> None:
        """Zero every counter and put every knob back to its default."""
        with self._lock:
            self._knobs = Knobs()
            self._rng = random.Random(0)  # noqa: S311
            self._stats = _empty_stats()

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters.

        ``requests`` counts every /v1 request; ``ok + errors == requests`` once all have
        finished (a hanging request counts in ``errors`` and ``hangs`` when it starts); ``chat``,
        ``completions``, ``embeddings``, ``models`` count attempts per endpoint; ``streams``
        counts streamed answers started and ``dropped_streams`` those cut by
        ``drop_after_chunks``; ``resets`` counts connections closed without a response;
        ``prompt_tokens``/``completion_tokens`` sum the usage objects actually sent;
        ``by_status`` maps status -> count; ``by_model`` maps model ->
        ``{"requests", "prompt_tokens", "completion_tokens"}``; ``auth_suffixes`` maps the last
        4 characters of each bearer token ("" when absent) -> count.
        """
        with self._lock:
            snapshot = dict(self._stats)
            snapshot["by_status"] = dict(self._stats["by_status"])
            snapshot["by_model"] = {k: dict(v) for k, v in self._stats["by_model"].items()}
            snapshot["auth_suffixes"] = dict(self._stats["auth_suffixes"])
        return snapshot

    def release_hangers(self) -> None:
        """End every hanging request (its connection is reset); call in the server's loop.

        The server calls it when it begins to shut down: otherwise a graceful shutdown would
        wait for requests that, by design, never finish.
        """
        for future in list(self._hangers):
            if not future.done():
                future.set_result(None)

    # -- counters -------------------------------------------------------------------------------

    def _count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._stats[key] += amount

    def _finish(self, status: int | None) -> None:
        """Count a finished /v1 request; ``None``: the connection was closed without a status."""
        with self._lock:
            stats = self._stats
            stats["ok" if status is not None and status < 400 else "errors"] += 1
            if status is not None:
                by_status = stats["by_status"]
                by_status[str(status)] = by_status.get(str(status), 0) + 1

    def _count_usage(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self._stats["prompt_tokens"] += prompt_tokens
            self._stats["completion_tokens"] += completion_tokens
            entry = self._stats["by_model"].get(model)
            if entry is not None:
                entry["prompt_tokens"] += prompt_tokens
                entry["completion_tokens"] += completion_tokens

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        return f"{prefix}{self._nonce}{sequence:012x}"

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
            await self._respond(send, 404, error_body(404, f"Unknown path {path!r}."))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.release_hangers()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        head = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode("ascii"))]
        if headers:
            head.extend(headers)
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    async def _control(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        method = scope["method"]
        body = await _read_body(receive)
        if path == "/_stats" and method == "GET":
            await self._respond(send, 200, _dumps(self.stats()))
        elif path == "/_reset" and method == "POST":
            self.reset()
            await self._respond(send, 200, _dumps({"ok": True}))
        elif path == "/_config" and method == "GET":
            await self._respond(send, 200, _dumps(self._knobs.public()))
        elif path == "/_config" and method == "POST":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object of knobs")
                await self._respond(send, 200, _dumps(self.configure(**changes)))
            except ValueError as exc:
                await self._respond(send, 400, error_body(400, str(exc)))
        elif path == "/_health" and method == "GET":
            await self._respond(send, 200, _dumps({"ok": True}))
        else:
            await self._respond(send, 404, error_body(404, f"Unknown control endpoint {method} {path}."))

    def _decide_fault(self) -> str | None:
        """Which injected fault this request gets: "hang", "reset", "error" or None.

        Read from the knobs as they are now (not at arrival), so a change made during
        ``latency_ms`` applies; the countdown knobs are consumed here.
        """
        with self._lock:
            current = self._knobs
            if current.hang:
                return "hang"
            if current.reset_connection:
                return "reset"
            if current.reset_next > 0:
                self._knobs = dataclasses.replace(current, reset_next=current.reset_next - 1)
                return "reset"
            if current.fail_next > 0:
                self._knobs = dataclasses.replace(current, fail_next=current.fail_next - 1)
                return "error"
            if current.error_rate > 0 and self._rng.random() < current.error_rate:
                return "error"
        return None

    async def _v1(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        raw = await _read_body(receive)
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

        with self._lock:
            stats = self._stats
            stats["requests"] += 1
            if kind is not None:
                stats[kind] += 1
            suffix = token[-4:] if token else ""
            stats["auth_suffixes"][suffix] = stats["auth_suffixes"].get(suffix, 0) + 1
            if model is not None:
                entry = stats["by_model"].setdefault(model, {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
                entry["requests"] += 1
            knobs = self._knobs

        if knobs.latency_ms > 0:
            await asyncio.sleep(knobs.latency_ms / 1000)
        request_id = "req_" + self._nonce + secrets.token_hex(8)
        id_header = [(b"x-request-id", request_id.encode("ascii"))]

        if knobs.api_key is not None and token != knobs.api_key:
            shown = f"...{token[-4:]}" if token else "(none)"
            self._finish(401)
            await self._respond(send, 401, error_body(401, f"Incorrect API key provided: {shown}."), id_header)
            return

        fault = self._decide_fault()
        if fault == "hang":
            await self._hang(scope, receive)
            return
        if fault == "reset":
            self._count("resets")
            self._finish(None)
            await self._close(scope, receive, abortive=True)
            return
        if fault == "error":
            status = knobs.error_status
            headers = list(id_header)
            if status == 429:
                seconds = knobs.retry_after
                text = str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
                headers += [(b"retry-after", text.encode()), (b"retry-after-ms", str(int(seconds * 1000)).encode())]
            self._finish(status)
            await self._respond(send, status, error_body(status), headers)
            return

        if route is None:
            self._finish(404)
            await self._respond(send, 404, error_body(404, f"Invalid URL ({method} {path})."), id_header)
            return
        if method != route[0]:
            self._finish(405)
            await self._respond(send, 405, error_body(405, f"Method {method} not allowed on {path}."), id_header)
            return
        if parse_error is not None:
            self._finish(400)
            await self._respond(send, 400, error_body(400, parse_error), id_header)
            return

        try:
            prepared = self._prepare(kind or "", path, body)
        except RequestError as exc:
            self._finish(exc.status)
            await self._respond(
                send, exc.status, error_body(exc.status, str(exc), param=exc.param, code=exc.code), id_header
            )
            return

        if prepared.body is not None:
            if prepared.prompt_tokens or prepared.completion_tokens:
                self._count_usage(model or "", prepared.prompt_tokens, prepared.completion_tokens)
            self._finish(200)
            await self._respond(send, 200, prepared.body, id_header)
            return
        await self._stream(scope, receive, send, prepared, model or "", knobs, id_header)

    def _prepare(self, kind: str, path: str, body: Any) -> Prepared:
        if kind == "models":
            if path == "/v1/models":
                return Prepared(body=_MODELS_BODY)
            return Prepared(body=_dumps(_model_object(path[len("/v1/models/") :])))
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        created = int(time.time())
        if kind == "chat":
            return prepare_chat(body, request_id=self._next_id("chatcmpl-"), created=created)
        if kind == "completions":
            return prepare_completion(body, request_id=self._next_id("cmpl-"), created=created)
        return prepare_embeddings(body)

    async def _stream(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        prepared: Prepared,
        model: str,
        knobs: Knobs,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        events = prepared.events or []
        self._count("streams")
        await send({"type": "http.response.start", "status": 200, "headers": [*_SSE_HEADERS, *headers]})
        drop = knobs.drop_after_chunks
        delay = knobs.chunk_delay_ms / 1000
        usage_delay = knobs.usage_delay_ms / 1000
        if drop is None and delay <= 0 and usage_delay <= 0:
            # Nothing to pace or cut: one write is much cheaper than one per event.
            await send({"type": "http.response.body", "body": b"".join(events), "more_body": False})
            if prepared.usage_event is not None:
                self._count_usage(model, prepared.prompt_tokens, prepared.completion_tokens)
            self._finish(200)
            return
        last = len(events) - 1
        for position, event in enumerate(events):
            if drop is not None and (position >= drop or position == last):
                self._count("dropped_streams")
                self._finish(None)
                await self._close(scope, receive, abortive=False)
                return
            if position and delay > 0:
                await asyncio.sleep(delay)
            if position == prepared.usage_event and usage_delay > 0:
                await asyncio.sleep(usage_delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if position == prepared.usage_event:
                self._count_usage(model, prepared.prompt_tokens, prepared.completion_tokens)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._finish(200)

    async def _close(self, scope: Scope, receive: Receive, *, abortive: bool) -> None:
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
            await asyncio.wait_for(_wait_disconnect(receive), timeout=2.0)

    async def _hang(self, scope: Scope, receive: Receive) -> None:
        """Answer nothing until the client disconnects or the server stops."""
        self._count("hangs")
        self._count("errors")
        released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hangers.add(released)
        disconnected = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait({released, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._hangers.discard(released)
            disconnected.cancel()
        if released.done():
            await self._close(scope, receive, abortive=True)


def iter_sse_data(raw: bytes) -> Iterator[str]:
    """The ``data:`` payloads of an SSE body, in order (a helper for raw-HTTP tests)."""
    for block in raw.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                yield line[6:].decode("utf-8")

