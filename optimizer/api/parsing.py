"""Parsing and validating `/v1/*` request bodies and LEO's request headers.

Validation is deliberately shallow: LEO checks what it needs to route, cache and count, and passes
every other field through untouched for the upstream to judge (OpenAI adds fields often).
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from ..pipeline.types import Options, ProxyError

MAX_N = 128
MAX_TOKENS_LIMIT = 1_000_000
MAX_NAMESPACE = 100
# Deeper JSON than any real request (tool schemas included) would make the pipeline's recursive
# steps (deepcopy, canonical dumps) hit Python's recursion limit: refuse it at the door.
MAX_JSON_DEPTH = 64
# Token ids in a token-array prompt or input: no tokenizer has more than 2**31 ids, and OpenAI
# refuses ids its tokenizer does not know; bounding them keeps every later step on plain ints.
MAX_TOKEN_ID = 2**31 - 1
# Attribution for the ledger's breakdowns: the OpenAI `user` field and free-form tags.
MAX_USER = 256
MAX_TAGS = 16
MAX_TAG_NAME = 64
MAX_TAG_VALUE = 256
_TAG_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


def _bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> ProxyError:
    return ProxyError(400, message, param=param, code=code)


def read_json(request: HttpRequest) -> dict[str, Any]:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ProxyError(413, "Request body too large.", code="request_too_large") from None
    if not raw:
        raise _bad("We could not parse the JSON body of your request: the body is empty.", code="invalid_json")
    try:
        body = json.loads(raw)
    except RecursionError:
        raise _bad("We could not parse the JSON body of your request: it is nested too deeply.",
                   code="invalid_json") from None
    except (ValueError, UnicodeDecodeError):
        raise _bad("We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                   "using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
                   code="invalid_json") from None
    if not isinstance(body, dict):
        raise _bad("The JSON body must be an object.", code="invalid_json")
    if _depth_exceeds(body, MAX_JSON_DEPTH):
        raise _bad(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.", code="invalid_json")
    # JSON may escape lone UTF-16 surrogates ("\\ud800"), which Python parses into strings that
    # cannot be encoded as UTF-8 later (hashing, caching, the upstream call). Cheap test first.
    if b"\\ud" in raw or b"\\uD" in raw:
        try:
            json.dumps(body, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise _bad("The JSON body contains an invalid Unicode escape (a lone surrogate).",
                       code="invalid_json") from None
    return body


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iteratively (a recursive walk would itself overflow), whether containers nest deeper than `limit`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


def _require_model(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise _bad("You must provide a model parameter.", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise _bad("`model` must be a non-empty string.", "model")
    _refuse_nul(model, "model")  # the model name lands in the ledger


def _refuse_nul(value: str, param: str) -> None:
    """Text that reaches the database: PostgreSQL's text cannot hold NUL, so refuse it at the door."""
    if "\x00" in value:
        raise _bad(f"`{param}` must not contain NUL characters.", param)


def query_text(request: HttpRequest, name: str) -> str | None:
    """A query parameter as text, or None when absent or empty; NUL is refused."""
    value = request.GET.get(name) or None
    if value is not None:
        _refuse_nul(value, name)
    return value


def _check_int(body: dict[str, Any], name: str, low: int, high: int) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"`{name}` must be an integer.", name)
    if not low <= value <= high:
        raise _bad(f"`{name}` must be between {low} and {high}, got {value}.", name)


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"`{name}` must be a number.", name)
    if not low <= value <= high:
        raise _bad(f"`{name}` must be between {low} and {high}.", name)


def _check_stream(body: dict[str, Any]) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("`stream` must be a boolean.", "stream")
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise _bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
        if not isinstance(options, dict):
            raise _bad("`stream_options` must be an object.", "stream_options")
        if "include_usage" in options and not isinstance(options["include_usage"], bool):
            raise _bad("`stream_options.include_usage` must be a boolean.", "stream_options.include_usage")


def _check_sampling(body: dict[str, Any]) -> None:
    _check_int(body, "n", 1, MAX_N)
    _check_int(body, "max_tokens", 1, MAX_TOKENS_LIMIT)
    _check_int(body, "max_completion_tokens", 1, MAX_TOKENS_LIMIT)
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    _check_stream(body)


def _check_user(body: dict[str, Any]) -> None:
    user = body.get("user")
    if user is None:
        return
    if not isinstance(user, str):
        raise _bad("`user` must be a string.", "user")
    if len(user) > MAX_USER:
        raise _bad(f"`user` is limited to {MAX_USER} characters.", "user")
    _refuse_nul(user, "user")  # stored in the ledger


def validate_chat(body: dict[str, Any]) -> None:
    _require_model(body)
    _check_user(body)
    messages = body.get("messages")
    if messages is None:
        raise _bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise _bad("`messages` must be a non-empty array.", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _bad(f"Invalid value for 'messages[{i}]': each message needs a string 'role'.", f"messages[{i}]")
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"Invalid type for 'messages[{i}].content': expected a string or an array.",
                       f"messages[{i}].content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                _check_part(part, f"messages[{i}].content[{j}]")
    _check_sampling(body)


def _check_part(part: Any, param: str) -> None:
    """A content part: an object with a string `type`; a text part's `text` is a string (a number or
    null there would otherwise reach the pipeline's text handling)."""
    if not isinstance(part, dict):
        raise _bad(f"Invalid value for '{param}': parts must be objects.", param)
    kind = part.get("type")
    if not isinstance(kind, str):
        raise _bad(f"Invalid value for '{param}.type': expected a string.", f"{param}.type")
    if kind == "text" and not isinstance(part.get("text"), str):
        raise _bad(f"Invalid type for '{param}.text': expected a string.", f"{param}.text")


def _is_tokens(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= MAX_TOKEN_ID for t in value))


def _check_text_or_tokens(value: Any, param: str, *, allow_empty: bool) -> None:
    """OpenAI's shapes for a completions `prompt` and an embeddings `input`: a string, an array of
    strings, an array of token ids, or an array of token arrays. Token arrays are forwarded (and
    cached) as they are; anything else, `[null]` or a mixed array included, is a 400."""
    if isinstance(value, str):
        if not allow_empty and not value:
            raise _bad(f"`{param}` must be a non-empty string or array.", param)
        return
    if not isinstance(value, list) or not value:
        raise _bad(f"`{param}` must be a non-empty string or array.", param)
    if all(isinstance(v, str) for v in value):
        if not allow_empty and not all(value):
            raise _bad(f"`{param}` must not contain empty strings.", param)
        return
    if _is_tokens(value) or all(_is_tokens(v) for v in value):
        return
    raise _bad(f"Invalid value for '{param}': expected a string, an array of strings, an array of token ids "
               f"(integers from 0 to {MAX_TOKEN_ID}), or an array of non-empty token arrays.", param)


def _refuse_messages(body: dict[str, Any]) -> None:
    # The cache key reads `messages` as a chat's; on the other endpoints it is no argument at all.
    if "messages" in body:
        raise _bad("Unrecognized request argument supplied: messages", "messages", "unknown_parameter")


def validate_completions(body: dict[str, Any]) -> None:
    _require_model(body)
    _refuse_messages(body)
    _check_user(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise _bad("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    _check_text_or_tokens(prompt, "prompt", allow_empty=True)
    _check_sampling(body)


def validate_embeddings(body: dict[str, Any]) -> None:
    _require_model(body)
    _refuse_messages(body)
    _check_user(body)
    value = body.get("input")
    if value is None:
        raise _bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    _check_text_or_tokens(value, "input", allow_empty=False)
    if body.get("stream"):
        raise _bad("Embeddings cannot be streamed.", "stream")


def _tag(name: Any, value: Any, param: str) -> tuple[str, str]:
    if not isinstance(name, str) or not _TAG_NAME.fullmatch(name) or len(name) > MAX_TAG_NAME:
        raise _bad(f"{param}: a tag name is 1 to {MAX_TAG_NAME} letters, digits or `_.:-`.", param)
    if not isinstance(value, str):
        raise _bad(f"{param}: the value of tag `{name}` must be a string.", param)
    if len(value) > MAX_TAG_VALUE or any(ord(c) < 32 for c in value):
        raise _bad(f"{param}: the value of tag `{name}` must be at most {MAX_TAG_VALUE} printable characters.",
                   param)
    return name, value


def tags_of(request: HttpRequest, body: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The request's tags: the body's `metadata` (an object of strings, as OpenAI has it), then
    `X-LEO-Tags: team=search,env=prod`, whose values win on the same name. Bounded, or a 400."""
    tags: dict[str, str] = {}
    metadata = (body or {}).get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _bad("`metadata` must be an object of strings.", "metadata")
        for name, value in metadata.items():
            key, text = _tag(name, value, "metadata")
            tags[key] = text
    header = request.headers.get("X-LEO-Tags", "")
    for item in filter(None, (part.strip() for part in header.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise _bad("X-LEO-Tags is a comma-separated list of name=value pairs.", "X-LEO-Tags")
        key, text = _tag(name.strip(), value.strip(), "X-LEO-Tags")
        tags[key] = text
    if len(tags) > MAX_TAGS:
        raise _bad(f"At most {MAX_TAGS} tags (X-LEO-Tags and `metadata` together).",
                   "X-LEO-Tags" if header else "metadata")
    return tuple(tags.items())


def options_from_headers(request: HttpRequest, body: dict[str, Any] | None = None) -> Options:
    cache_control = {d.strip().lower() for d in request.headers.get("Cache-Control", "").split(",") if d.strip()}
    ttl_raw = request.headers.get("X-LEO-Cache-TTL")
    ttl = None
    if ttl_raw is not None:
        try:
            ttl = int(ttl_raw)
        except ValueError:
            raise _bad("X-LEO-Cache-TTL must be a whole number of seconds.", "X-LEO-Cache-TTL") from None
        if not 0 <= ttl <= 365 * 24 * 3600:
            raise _bad("X-LEO-Cache-TTL must be between 0 and 31536000.", "X-LEO-Cache-TTL")
    namespace = request.headers.get("X-LEO-Cache-Namespace", "")
    if len(namespace) > MAX_NAMESPACE:
        raise _bad(f"X-LEO-Cache-Namespace is limited to {MAX_NAMESPACE} characters.", "X-LEO-Cache-Namespace")
    _refuse_nul(namespace, "X-LEO-Cache-Namespace")  # stored with the cache entry
    return Options(no_cache="no-cache" in cache_control, no_store="no-store" in cache_control or ttl == 0,
                   ttl=ttl if ttl else None, namespace=namespace, tags=tags_of(request, body))
