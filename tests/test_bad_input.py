"""Bad input never gets a 5xx, and every error is in OpenAI's envelope.

Three layers:
- hypothesis over the request parsing itself (`optimizer/api/parsing.py`), in process: any JSON
  value and any byte string either validates or raises a 400/413 `ProxyError`, never anything else;
- schemathesis over the live server, generating valid and invalid requests from `/api/schema`
  (drf-spectacular, annotated in optimizer/api/schema.py) for every `/v1/*` operation;
- a named list of hostile bodies and headers (oversized, deeply nested, invalid UTF-8, lone
  surrogates, NaN, huge `n` / `max_tokens`, unknown models, bad stream options ...).

Each layer prints how many inputs it tried (pytest -s shows them; docs/reliability.md lists them).
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import httpx
import pytest
from django.test import RequestFactory
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optimizer.api import parsing
from optimizer.pipeline.types import ProxyError
from tests.conftest import TenantKit
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)


ENVELOPE_KEYS = {"message", "type", "param", "code"}
FUZZ_EXAMPLES = int(os.environ.get("LEO_FUZZ_EXAMPLES", "150"))  # per generation mode
FUZZ_RANDOM = os.environ.get("LEO_FUZZ_RANDOM") == "1"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
# Bodies shaped like real requests, with each field drawn from anything JSON can hold, so the
# validators see plausible structures with wrong types rather than only random noise.
FIELDS = ["model", "messages", "prompt", "input", "n", "max_tokens", "max_completion_tokens", "temperature",
          "top_p", "stream", "stream_options", "tools", "user"]
# OpenAI's token-array shapes, and near misses of them (nulls, bools, negatives, mixed arrays).
tokens = st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=5)
near_tokens = st.lists(st.integers(min_value=-3, max_value=2**40) | st.none() | st.booleans() | st.text(max_size=3)
                       | st.floats(allow_nan=False), max_size=4)
text_or_tokens = (tokens | st.lists(tokens, min_size=1, max_size=3) | st.lists(st.text(max_size=10), max_size=3)
                  | near_tokens | st.lists(near_tokens | tokens, max_size=3) | st.just([None]) | json_values)
content_parts = st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]) | json_values},
                                               optional={"text": json_values}), max_size=3)
shaped_bodies = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["gpt-4o-mini", "", " ", "x" * 300]) | json_values,
    "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]) | json_values},
                                               optional={"content": json_values | content_parts}), max_size=3)
    | json_values,
    "prompt": text_or_tokens, "input": text_or_tokens,
    "n": st.integers(min_value=-5, max_value=10**9) | json_values,
    "max_tokens": st.integers(min_value=-5, max_value=10**12) | json_values,
    "temperature": st.floats() | json_values, "top_p": st.floats() | json_values,
    "stream": json_values, "stream_options": json_values,
})

def _validate_or_400(validate: Any, body: Any) -> None:
    try:
        if not isinstance(body, dict):
            raise ProxyError(400, "The JSON body must be an object.")
        validate(body)
    except ProxyError as exc:
        assert exc.status == 400
        envelope = exc.envelope()["error"]
        assert set(envelope) >= ENVELOPE_KEYS and envelope["message"]


@pytest.mark.parametrize("validate", [parsing.validate_chat, parsing.validate_completions,
                                      parsing.validate_embeddings], ids=["chat", "completions", "embeddings"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values | shaped_bodies)
def test_validators_accept_or_raise_a_400(validate: Any, body: Any) -> None:
    _validate_or_400(validate, body)


@pytest.mark.parametrize("endpoint", ["chat", "completions", "embeddings"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=shaped_bodies)
@example(body={"model": "m", "prompt": [1, 2, 3]})
@example(body={"model": "m", "prompt": [[1, 2], [3]]})
@example(body={"model": "m", "input": [1, 2, 3]})
@example(body={"model": "m", "prompt": "hi", "messages": [None]})
@example(body={"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
def test_what_the_validators_accept_the_pipeline_can_read(endpoint: str, body: dict[str, Any]) -> None:
    """Past the door, the pipeline's text helpers (the cache key, the token estimate) take any
    accepted body: a token array or a text part reached them as a TypeError, a 500, before."""
    from optimizer.pipeline.admission import prompt_text
    from optimizer.pipeline.canonical import canonicalize

    validate = {"chat": parsing.validate_chat, "completions": parsing.validate_completions,
                "embeddings": parsing.validate_embeddings}[endpoint]
    try:
        validate(body)
    except ProxyError as exc:
        assert exc.status == 400
        return
    canonicalize(1, endpoint, body)
    assert isinstance(prompt_text(endpoint, body), str)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_read_json_parses_or_raises_a_400(raw: bytes) -> None:
    request = RequestFactory().post("/v1/chat/completions", data=raw, content_type="application/json")
    try:
        body = parsing.read_json(request)
    except ProxyError as exc:
        assert exc.status == 400 and exc.code == "invalid_json"
    else:
        assert isinstance(body, dict)


@settings(max_examples=200, deadline=None)
@given(ttl=st.text(max_size=12), namespace=st.text(max_size=120), cache_control=st.text(max_size=40))
@example(ttl="60", namespace="a\x00b", cache_control="")
def test_leo_headers_parse_or_raise_a_400(ttl: str, namespace: str, cache_control: str) -> None:
    headers = {"HTTP_X_LEO_CACHE_TTL": ttl, "HTTP_X_LEO_CACHE_NAMESPACE": namespace,
               "HTTP_CACHE_CONTROL": cache_control}
    request = RequestFactory().post("/v1/chat/completions", **headers)
    try:
        options = parsing.options_from_headers(request)
    except ProxyError as exc:
        assert exc.status == 400 and exc.param in ("X-LEO-Cache-TTL", "X-LEO-Cache-Namespace")
    else:
        assert options.ttl is None or 0 < options.ttl <= 365 * 24 * 3600
        assert "\x00" not in options.namespace  # it is stored with the entry


# --- over the live server ---------------------------------------------------------------------

def assert_openai_error(response: httpx.Response, *statuses: int, name: str = "") -> dict[str, Any]:
    """Not a 5xx; an error is OpenAI's envelope (and, when given, one of `statuses`)."""
    assert response.status_code < 500, (name, response.status_code, response.text[:300])
    if statuses:
        assert response.status_code in statuses, (name, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), (
            name, response.status_code, response.text[:300])
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == ENVELOPE_KEYS, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return body["error"]
    return {}


@pytest.fixture
def quiet_kit(kit: TenantKit) -> TenantKit:
    """A tenant with the semantic cache off: fuzzing need not load the embedding model."""
    from optimizer.models import OptimizerSettings

    OptimizerSettings.objects.update_or_create(tenant=kit.tenant, defaults={"semantic_cache": False})
    return kit


HOSTILE: list[tuple[str, bytes | None, dict[str, Any] | None, dict[str, str], tuple[int, ...]]] = [
    # (name, raw body, json body, extra headers, expected statuses)
    ("empty body", b"", None, {}, (400,)),
    ("not json", b"{model: gpt}", None, {}, (400,)),
    ("invalid utf-8", b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}', None, {},
     (400,)),
    ("utf-16 bytes", json.dumps({"model": "gpt-4o-mini"}).encode("utf-16"), None, {}, (400,)),
    ("array body", b"[1, 2, 3]", None, {}, (400,)),
    ("string body", b'"hello"', None, {}, (400,)),
    ("deep nesting", b"[" * 200_000 + b"]" * 200_000, None, {}, (400, 413)),
    ("deep object nesting", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, None, {}, (400, 413)),
    ("deep nesting inside a message", None, None, {}, (200, 400)),  # filled in below
    ("oversized body", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 3_000_000}]},
     {}, (413,)),
    ("huge n", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "n": 10**9}, {},
     (400,)),
    ("n zero", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "n": 0}, {}, (400,)),
    ("huge max_tokens", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                               "max_tokens": 10**15}, {}, (400,)),
    ("bigint max_tokens", b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":'
     + b"9" * 5000 + b"}", None, {}, (400,)),
    ("float max_tokens", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                                "max_tokens": 1.5}, {}, (400,)),
    ("NaN temperature", b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":NaN}',
     None, {}, (400,)),
    ("Infinity top_p", b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"top_p":Infinity}',
     None, {}, (400,)),
    ("unknown model", None, {"model": "gpt-does-not-exist", "messages": [{"role": "user", "content": "hi"}]}, {},
     (404,)),
    ("model not a string", None, {"model": ["gpt-4o"], "messages": [{"role": "user", "content": "hi"}]}, {}, (400,)),
    ("missing messages", None, {"model": "gpt-4o-mini"}, {}, (400,)),
    ("message not an object", None, {"model": "gpt-4o-mini", "messages": ["hi"]}, {}, (400,)),
    ("content a number", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}, {}, (400,)),
    ("stream not a bool", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                                 "stream": "yes"}, {}, (400,)),
    ("stream_options without stream", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                                             "stream_options": {"include_usage": True}}, {}, (400,)),
    ("stream_options not an object", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                                            "stream": True, "stream_options": "usage"}, {}, (400,)),
    ("include_usage not a bool", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                                        "stream": True, "stream_options": {"include_usage": "yes"}}, {}, (400,)),
    ("bad cache ttl header", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
     {"X-LEO-Cache-TTL": "soon"}, (400,)),
    ("negative cache ttl", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
     {"X-LEO-Cache-TTL": "-5"}, (400,)),
    ("long namespace", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
     {"X-LEO-Cache-Namespace": "n" * 500}, (400,)),
    # PostgreSQL text cannot hold NUL: a NUL in anything that reaches a query must be refused first.
    ("NUL in model", None, {"model": "gpt-4o-mini\u0000", "messages": [{"role": "user", "content": "hi"}]}, {},
     (400,)),
    ("NUL in content", None, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "h\u0000i"}],
                              "user": "u\u0000"}, {"Cache-Control": "no-cache, no-store"}, (200, 400)),
    ("embeddings streamed", None, {"model": "text-embedding-3-small", "input": "x", "stream": True}, {}, (400,)),
    ("embeddings empty input", None, {"model": "text-embedding-3-small", "input": []}, {}, (400,)),
]


def _hostile_cases() -> list[tuple[str, str, bytes, dict[str, str], tuple[int, ...]]]:
    out = []
    for name, raw, body, headers, statuses in HOSTILE:
        if name == "deep nesting inside a message":
            # Valid JSON that Python parses, nested as deep as its parser allows inside a content part.
            nested: Any = "x"
            for _ in range(900):
                nested = {"a": nested}
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
                                                                                          "extra": nested}]}]}
        path = "/v1/embeddings" if name.startswith("embeddings") else "/v1/chat/completions"
        out.append((name, path, raw if raw is not None else json.dumps(body).encode(), headers, statuses))
    return out


def test_hostile_bodies_get_openai_errors_and_never_reach_the_upstream(quiet_kit: TenantKit, fake_upstream: Any
                                                                       ) -> None:
    cases = _hostile_cases()
    before = fake_upstream.stats()["requests"]
    with quiet_kit.http() as http:
        for name, path, raw, headers, statuses in cases:
            r = http.post(path, content=raw, headers={"Content-Type": "application/json", **headers})
            error = assert_openai_error(r, *statuses, name=name)
            assert r.headers["x-leo-request-id"].startswith("req_"), name
            if r.status_code == 413:
                assert error["code"] == "request_too_large", name
        # Lone UTF-16 surrogates are valid JSON escapes but not encodable text: a 400, not a 500.
        r = http.post("/v1/chat/completions", content=b'{"model":"gpt-4o-mini","messages":[{"role":"user",'
                                                      b'"content":"\\ud800 hi"}]}',
                      headers={"Content-Type": "application/json", "Cache-Control": "no-cache, no-store"})
        assert_openai_error(r, 200, 400)
    reached = fake_upstream.stats()["requests"] - before
    # Only the two well-formed-but-odd requests (deep part nesting, lone surrogate) may go upstream.
    assert reached <= 2
    print(f"\nbad input: {len(cases) + 1} hostile bodies and headers, 0 server errors")


# --- OpenAI's other input shapes (issue #13, item 8) -------------------------------------------

def test_token_arrays_are_forwarded_and_cached_as_they_are(quiet_kit: TenantKit, fake_upstream: Any) -> None:
    """`prompt` and `input` may be token ids or token arrays (the openai SDK sends them as such);
    LEO forwards them untouched, and the same token prompt is then an exact-cache hit."""
    from fake_upstream import answer_tag
    from optimizer.models import RequestLog
    from tests.conftest import wait_for_rows

    client = quiet_kit.client()
    salt = int(uuid.uuid4().int % 50_000)  # fresh tokens, so no earlier run's answer is cached
    one, many = [salt, 2, 3], [[salt, 7], [9]]
    first = client.completions.with_raw_response.create(model="gpt-3.5-turbo-instruct", prompt=one)
    assert first.headers["x-leo-cache"] == "miss"
    body = first.parse()
    # The fake upstream tags an answer with its prompt's hash and counts a token array by its length:
    # it received the array itself, not a text made of it.
    assert f"ANSWER[{answer_tag(' '.join(map(str, one)))}]" in body.choices[0].text
    assert body.usage.prompt_tokens == 3
    again = client.completions.with_raw_response.create(model="gpt-3.5-turbo-instruct", prompt=one)
    assert again.headers["x-leo-cache"] == "exact" and again.parse().choices[0].text == body.choices[0].text
    # a different token array is a different question
    other = client.completions.with_raw_response.create(model="gpt-3.5-turbo-instruct", prompt=[salt, 2, 4])
    assert other.headers["x-leo-cache"] == "miss"
    both = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=many)
    assert [answer_tag(" ".join(map(str, p))) in c.text for c, p in zip(both.choices, many)] == [True, True]
    for value in ([salt, 2, 3], [[salt, 7], [9]], ["a", "b"]):
        emb = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=value)
        assert emb.http_response.status_code == 200 and len(emb.parse().data) == (1 if value == [salt, 2, 3] else 2)
    assert client.embeddings.create(model="text-embedding-3-small", input=[salt, 2, 3]).usage.prompt_tokens == 3
    # Every one of them has its ledger row.
    rows = wait_for_rows(RequestLog, 8, tenant=quiet_kit.tenant)
    assert len(rows) == 8 and {r.status_code for r in rows} == {200}


INVALID_SHAPES: list[tuple[str, str, dict[str, Any], str]] = [
    # (name, path, body, param)
    ("prompt [null]", "/v1/completions", {"prompt": [None]}, "prompt"),
    ("prompt null inside a token array", "/v1/completions", {"prompt": [1, None]}, "prompt"),
    ("prompt mixed text and tokens", "/v1/completions", {"prompt": [1, "a"]}, "prompt"),
    ("prompt empty array", "/v1/completions", {"prompt": []}, "prompt"),
    ("prompt empty token array", "/v1/completions", {"prompt": [[]]}, "prompt"),
    ("prompt negative token", "/v1/completions", {"prompt": [-1]}, "prompt"),
    ("prompt huge token", "/v1/completions", {"prompt": [2**40]}, "prompt"),
    ("prompt boolean tokens", "/v1/completions", {"prompt": [True, False]}, "prompt"),
    ("prompt float tokens", "/v1/completions", {"prompt": [1.5]}, "prompt"),
    ("prompt nested too far", "/v1/completions", {"prompt": [[[1]]]}, "prompt"),
    ("prompt an object", "/v1/completions", {"prompt": {"text": "hi"}}, "prompt"),
    ("input [null]", "/v1/embeddings", {"input": [None]}, "input"),
    ("input mixed token arrays and text", "/v1/embeddings", {"input": [[1], "a"]}, "input"),
    ("input empty string in array", "/v1/embeddings", {"input": ["a", ""]}, "input"),
    ("text part with a number", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content[0].text"),
    ("text part with null", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]}, "messages[0].content[0].text"),
    ("text part without text", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ("messages on completions", "/v1/completions", {"prompt": "hi", "messages": [None]}, "messages"),
    ("part without a type", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, "messages[0].content[0].type"),
]


def test_invalid_prompt_input_and_part_shapes_are_400s(quiet_kit: TenantKit, fake_upstream: Any) -> None:
    models = {"/v1/completions": "gpt-3.5-turbo-instruct", "/v1/embeddings": "text-embedding-3-small",
              "/v1/chat/completions": "gpt-4o-mini"}
    before = fake_upstream.stats()["requests"]
    with quiet_kit.http() as http:
        for name, path, body, param in INVALID_SHAPES:
            r = http.post(path, json={"model": models[path], **body})
            error = assert_openai_error(r, 400, name=name)
            assert error["param"] == param, (name, error)
    assert fake_upstream.stats()["requests"] == before


def test_wrong_methods_paths_and_content_types(quiet_kit: TenantKit) -> None:
    with quiet_kit.http() as http:
        assert_openai_error(http.get("/v1/chat/completions"), 405)
        assert_openai_error(http.put("/v1/embeddings", json={}), 405)
        assert_openai_error(http.post("/v1/models", json={}), 405)
        assert_openai_error(http.delete("/v1/analytics"), 405)
        assert_openai_error(http.get("/v1/analytics", params={"start": "yesterday"}), 400)
        assert_openai_error(http.get("/v1/models/no-such-model"), 404)
        assert_openai_error(http.delete("/v1/cache", params={"older_than": "old"}), 400)
        assert_openai_error(http.delete("/v1/cache", params={"model": "\x00"}), 400)  # NUL: PostgreSQL refuses it
        assert_openai_error(http.get("/v1/analytics", params={"start": "2026-01-01\x00"}), 400)
        # PostgreSQL refuses offsets past 15:59 that Python parses (a 500 the schemathesis fuzz found)
        r = http.get("/v1/analytics", params={"start": "1999-12-31T00:00:00-23:59", "end": "2000-01-01T00:00:00+16:00"})
        assert_openai_error(r, 200)
        assert_openai_error(http.post("/v1/feedback", json={"request_id": "req_\x00", "correct": True}), 400)
        assert_openai_error(http.post("/v1/feedback", json={"request_id": "x" * 500, "correct": "maybe"}), 400)
        r = http.post("/v1/chat/completions", content=b'{"model":"gpt-4o-mini"}', headers={"Content-Type":
                                                                                          "text/plain"})
        assert_openai_error(r, 400)
        # Ids and paths no route matches still get the envelope.
        assert_openai_error(http.delete("/v1/cache/abc"), 404)
        assert_openai_error(http.get("/v1/models/%0A"), 404)  # a newline in the path, too


def test_schemathesis_fuzz_of_every_v1_operation(quiet_kit: TenantKit, leo_server: Any) -> None:
    """Valid and invalid requests generated from the served OpenAPI schema, sent with a real key."""
    import schemathesis
    from schemathesis.generation.modes import GenerationMode

    raw_schema = httpx.get(leo_server.url + "/api/schema", params={"format": "json"}, timeout=30).json()
    v1 = {p for p in raw_schema["paths"] if p.startswith("/v1/")}
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/analytics",
            "/v1/feedback", "/v1/cache", "/v1/cache/{entry_id}"} <= v1
    chat = raw_schema["paths"]["/v1/chat/completions"]["post"]
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "messages" in raw_schema["components"]["schemas"][ref]["properties"]  # described, not empty
    schema = schemathesis.openapi.from_dict(raw_schema)
    auth = {"Authorization": f"Bearer {quiet_kit.key}"}
    seen: dict[str, int] = {}
    statuses: dict[int, int] = {}
    session = httpx.Client(base_url=leo_server.url, timeout=30)

    # A generated model name is nearly always unknown (a 404 before the pipeline runs): every other
    # generated body gets a model this key may call, so the pipeline sees the generated prompts,
    # inputs and messages (token arrays included) too.
    valid_model = {"/v1/chat/completions": "gpt-4o-mini", "/v1/completions": "gpt-3.5-turbo-instruct",
                   "/v1/embeddings": "text-embedding-3-small"}
    sent = iter(range(10**9))

    def check(case: Any) -> None:
        if case.path in valid_model and isinstance(case.body, dict) and next(sent) % 2:
            case.body["model"] = valid_model[case.path]
        request = case.as_transport_kwargs(base_url=leo_server.url, headers=auth)
        method, url = request.pop("method"), request.pop("url")
        kwargs = {k: v for k, v in request.items() if k in ("headers", "params", "json", "content", "data")}
        # Generated headers may contain characters httpx refuses to send; those never reach LEO.
        try:
            response = session.request(method, url, **kwargs)
        except (httpx.LocalProtocolError, UnicodeEncodeError, ValueError, TypeError):
            return
        key = f"{case.method} {case.path}"
        seen[key] = seen.get(key, 0) + 1
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            assert response.status_code == 200
            return
        if response.status_code >= 500:  # the server's own account of it, for the report
            print(leo_server.log()[-3000:])
        assert_openai_error(response, name=f"{method} {url} {kwargs}"[:400])

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = schema.as_strategy(generation_mode=mode)

        # Derandomized, so CI sees the same inputs every run; LEO_FUZZ_EXAMPLES=N LEO_FUZZ_RANDOM=1
        # explores further (what docs/reliability.md reports was run that way too).
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=not FUZZ_RANDOM,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case: Any) -> None:
            check(case)

        run()
    session.close()
    total = sum(seen.values())
    print(f"\nschemathesis: {total} generated requests over {len(seen)} operations, statuses {sorted(statuses.items())}")
    assert total >= FUZZ_EXAMPLES
    assert len(seen) >= 6
    assert not any(s >= 500 for s in statuses)
