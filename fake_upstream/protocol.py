"""OpenAI's wire format: JSON and SSE encoding, the usage object, the error envelope, and the
checks on request fields shared by the endpoints (a bad field raises ``RequestError``, which the
app turns into a 400 envelope)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .content import count_tokens

SSE_DONE = b"data: [DONE]\n\n"


def dumps(obj: Any) -> bytes:
    """Compact JSON, as bytes."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def sse(obj: Any) -> bytes:
    """One SSE event carrying ``obj`` as JSON."""
    return b"data: " + dumps(obj) + b"\n\n"


def iter_sse_data(raw: bytes) -> Iterator[str]:
    """The ``data:`` payloads of an SSE body, in order (a helper for raw-HTTP tests)."""
    for block in raw.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                yield line[6:].decode("utf-8")


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """OpenAI's ``usage`` object for a chat or legacy completion."""
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
    return dumps(
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
# Request fields
# ---------------------------------------------------------------------------------------------


def optional_positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"Invalid '{name}': expected an integer >= 1.", param=name, code="invalid_value")
    return value


def choice_count(body: dict[str, Any]) -> int:
    """``n``: how many choices to answer with (1 to 128)."""
    n = optional_positive_int(body, "n") or 1
    if n > 128:
        raise RequestError("Invalid 'n': at most 128.", param="n", code="invalid_value")
    return n


def model_name(body: dict[str, Any]) -> str:
    """The required ``model``; any non-empty name is accepted (the gateway decides what exists)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("You must provide a model parameter.", param="model")
    return model


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def forced_tool(body: dict[str, Any]) -> str | None:
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


def legacy_prompts(prompt: Any) -> list[tuple[str, int]]:
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
