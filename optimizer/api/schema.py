"""OpenAPI descriptions of the `/v1/*` request bodies, for drf-spectacular (served at /api/schema).

The proxy views parse JSON themselves (optimizer/api/parsing.py), so DRF cannot infer their bodies;
these serializers only *describe* them, for clients and for the schemathesis fuzz suite
(tests/test_bad_input.py). They name the fields LEO checks; any other field passes through to the
upstream, as OpenAI adds fields often, so the objects allow additional properties.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers

from .parsing import MAX_N, MAX_TOKEN_ID, MAX_TOKENS_LIMIT

V = TypeVar("V")


_TOKENS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID}}


def _text_or_tokens(min_length: int) -> dict[str, Any]:
    """OpenAI's shapes for `prompt` and `input`: text, texts, token ids, or token arrays. Described in
    full so the schemathesis fuzz sends token arrays (and, negated, nulls and mixed arrays) too."""
    return {"oneOf": [{"type": "string", "minLength": min_length},
                      {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": min_length}},
                      _TOKENS,
                      {"type": "array", "minItems": 1, "items": _TOKENS}]}


@extend_schema_field(_text_or_tokens(0))
class PromptField(serializers.JSONField):
    pass


@extend_schema_field(_text_or_tokens(1))
class InputField(serializers.JSONField):
    pass


@extend_schema_field({"oneOf": [
    {"type": "string", "nullable": True},  # OpenAPI 3.0's null
    {"type": "array", "items": {"oneOf": [
        {"type": "object", "required": ["type", "text"], "additionalProperties": False,
         "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}},
        {"type": "object", "required": ["type", "image_url"], "additionalProperties": False,
         "properties": {"type": {"type": "string", "enum": ["image_url"]},
                        "image_url": {"type": "object", "required": ["url"],
                                      "properties": {"url": {"type": "string"}}}}},
    ]}},
]})
class ContentField(serializers.JSONField):
    """A message's content: text, null (an assistant's tool call), or content parts."""


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant", "tool"])
    content = ContentField()


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(required=False)


class _SamplingSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200)
    n = serializers.IntegerField(min_value=1, max_value=MAX_N, required=False)
    max_tokens = serializers.IntegerField(min_value=1, max_value=MAX_TOKENS_LIMIT, required=False)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False)
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False)
    stream = serializers.BooleanField(required=False)
    stream_options = StreamOptionsSerializer(required=False)


class ChatCompletionRequestSerializer(_SamplingSerializer):
    messages = MessageSerializer(many=True, min_length=1)  # type: ignore[call-arg]
    max_completion_tokens = serializers.IntegerField(min_value=1, max_value=MAX_TOKENS_LIMIT, required=False)


class CompletionRequestSerializer(_SamplingSerializer):
    prompt = PromptField()


class EmbeddingRequestSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200)
    input = InputField()
    dimensions = serializers.IntegerField(min_value=1, required=False)
    encoding_format = serializers.ChoiceField(choices=["float", "base64"], required=False)


_ERRORS = {400: OpenApiResponse(OpenApiTypes.OBJECT, description="OpenAI error envelope"),
           401: OpenApiResponse(OpenApiTypes.OBJECT, description="OpenAI error envelope"),
           404: OpenApiResponse(OpenApiTypes.OBJECT, description="OpenAI error envelope"),
           413: OpenApiResponse(OpenApiTypes.OBJECT, description="OpenAI error envelope"),
           429: OpenApiResponse(OpenApiTypes.OBJECT, description="OpenAI error envelope")}
OK = {200: OpenApiTypes.OBJECT, **_ERRORS}


def _body(serializer: type[serializers.Serializer]) -> dict[str, type[serializers.Serializer]]:
    # DEFAULT_PARSER_CLASSES is empty (the views read JSON themselves), so name the media type here.
    return {"application/json": serializer}


def _describe_post(serializer: type[serializers.Serializer], summary: str) -> Callable[[type[V]], type[V]]:
    """Describe an inherited async `post`. extend_schema_view would wrap an inherited method in a
    *sync* function (drf-spectacular's isolate_view_method), which makes adrf treat the view as sync
    and return an un-awaited coroutine; so give the class its own async override and annotate that."""

    def decorate(view: type[V]) -> type[V]:
        inherited = view.post  # type: ignore[attr-defined]

        async def post(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            return await inherited(self, request, *args, **kwargs)

        view.post = extend_schema(request=_body(serializer), responses=OK, summary=summary)(post)  # type: ignore[attr-defined]
        return view

    return decorate


chat = _describe_post(ChatCompletionRequestSerializer, "Create a chat completion (JSON or SSE)")
completions = _describe_post(CompletionRequestSerializer, "Create a legacy completion")
embeddings = _describe_post(EmbeddingRequestSerializer, "Create embeddings")
models = extend_schema_view(get=extend_schema(responses=OK, operation_id="v1_models_list",
                                              summary="List the models this key may call"))
model_detail = extend_schema_view(get=extend_schema(responses=OK, summary="One model"))
analytics = extend_schema_view(get=extend_schema(
    responses=OK, summary="The calling tenant's figures",
    parameters=[OpenApiParameter("start", OpenApiTypes.DATETIME, required=False),
                OpenApiParameter("end", OpenApiTypes.DATETIME, required=False)]))
cache = extend_schema_view(
    get=extend_schema(responses=OK, summary="Cache statistics"),
    delete=extend_schema(responses=OK, operation_id="v1_cache_purge", summary="Purge cache entries", parameters=[
        OpenApiParameter("model", OpenApiTypes.STR, required=False),
        OpenApiParameter("older_than", OpenApiTypes.INT, required=False)]))
cache_entry = extend_schema_view(delete=extend_schema(responses=OK, summary="Delete one cache entry"))
