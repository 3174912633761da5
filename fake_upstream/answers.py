"""The answers: a parsed request body -> a ``Prepared`` JSON body or list of SSE events.

Pure (no I/O, no state): the app passes in the response id and creation time. What the answers
say comes from ``content``; a stream reports exactly the usage of the JSON answer to the same
request (in its final chunk, when ``stream_options.include_usage`` is true).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import struct
from typing import Any

from .content import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    answer_tag,
    answer_text,
    count_tokens,
    embedding_vector,
    last_user_text,
    message_text,
    stream_pieces,
    truncate_to_tokens,
)
from .protocol import (
    SSE_DONE,
    RequestError,
    choice_count,
    dumps,
    forced_tool,
    legacy_prompts,
    model_name,
    optional_positive_int,
    sse,
    usage_object,
    wants_usage,
)

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
MAX_EMBEDDING_DIMENSIONS = 8192
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_OVERHEAD_TOKENS = 3
TOOL_ARGUMENT_CHUNK_CHARS = 24


@dataclasses.dataclass
class Prepared:
    """A computed answer: a JSON body or a list of SSE events, and the usage it reports."""

    body: bytes | None = None
    events: list[bytes] | None = None
    usage_event: int | None = None  # index in ``events`` of the chunk carrying usage
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _tool_call_id(tag: str, index: int) -> str:
    return "call_" + hashlib.sha256(f"{tag}:{index}".encode()).hexdigest()[:24]


def prepare_chat(body: dict[str, Any], *, request_id: str, created: int) -> Prepared:
    """Build the chat completion (JSON or SSE events) for a parsed request body."""
    model = model_name(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise RequestError("'messages' must be a non-empty array of message objects.", param="messages")
    n = choice_count(body)
    limit = optional_positive_int(body, "max_completion_tokens") or optional_positive_int(body, "max_tokens")
    tool_name = forced_tool(body)
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
    usage = usage_object(prompt_tokens, completion_tokens)
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
        return Prepared(body=dumps(payload), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    include_usage = wants_usage(body)
    extra = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(
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
            events.extend(chunk(index, {"content": piece}) for piece in stream_pieces(content or ""))
        events.append(chunk(index, {}, finish))
    usage_event = None
    if include_usage:
        usage_event = len(events)
        events.append(
            sse(
                {"object": "chat.completion.chunk", **common, "service_tier": "default", "choices": [], "usage": usage}
            )
        )
    events.append(SSE_DONE)
    return Prepared(
        events=events, usage_event=usage_event, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )


def prepare_completion(body: dict[str, Any], *, request_id: str, created: int) -> Prepared:
    """Build a legacy text completion (JSON or SSE events)."""
    model = model_name(body)
    if "prompt" not in body:
        raise RequestError("You must provide a prompt parameter.", param="prompt")
    try:
        prompts = legacy_prompts(body["prompt"])
    except RequestError as exc:
        raise RequestError(str(exc), param="prompt") from None
    n = choice_count(body)
    limit = optional_positive_int(body, "max_tokens")
    prompt_tokens = sum(tokens for _, tokens in prompts)
    choices: list[tuple[str, str]] = []
    completion_tokens = 0
    for text, _ in prompts:
        for index in range(n):
            answer, truncated = truncate_to_tokens(answer_text(text, index), limit)
            completion_tokens += count_tokens(answer)
            choices.append((answer, "length" if truncated else "stop"))
    usage = usage_object(prompt_tokens, completion_tokens)
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
        return Prepared(body=dumps(payload), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    include_usage = wants_usage(body)
    extra = {"usage": None} if include_usage else {}

    def chunk(index: int, text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        return sse({**common, "system_fingerprint": SYSTEM_FINGERPRINT, "choices": [choice], **extra})

    events: list[bytes] = []
    for index, (text, finish) in enumerate(choices):
        events.extend(chunk(index, piece) for piece in stream_pieces(text))
        events.append(chunk(index, "", finish))
    usage_event = None
    if include_usage:
        usage_event = len(events)
        events.append(sse({**common, "system_fingerprint": SYSTEM_FINGERPRINT, "choices": [], "usage": usage}))
    events.append(SSE_DONE)
    return Prepared(
        events=events, usage_event=usage_event, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )


def prepare_embeddings(body: dict[str, Any]) -> Prepared:
    """Build an embeddings response: deterministic unit vectors, float or base64 float32."""
    model = model_name(body)
    if "input" not in body:
        raise RequestError("You must provide an input parameter.", param="input")
    try:
        inputs = legacy_prompts(body["input"])
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
    return Prepared(body=dumps(payload), prompt_tokens=prompt_tokens)


def model_object(model_id: str) -> dict[str, Any]:
    """A ``GET /v1/models`` entry; any id is answered (the gateway decides what exists)."""
    return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": OWNED_BY}


# Built once: the model list never changes.
MODELS_BODY = dumps({"object": "list", "data": [model_object(m) for m in MODELS]})
