"""Answering with a response LEO already holds: a cache hit or a composed answer.

The answer goes back in the form the client asked for, JSON or a replayed SSE stream, and, when
this call leads a single-flight, to the flight's followers in theirs. Serving settles the quota and
finishes the ledger row (a replayed stream does so when it ends, so a client that leaves mid-stream
is recorded as such).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from leo_optima.core.aio import background
from tenants import quotas

from ..models import Technique
from ..pricing import Price, count_tokens
from . import singleflight
from .admission import prompt_text, settle
from .exact_cache import Cached
from .ledger import Record
from .replies import leo_headers
from .responses import fresh, replay_as_stream, replay_completion_as_stream
from .types import Call, Reply


def serve_cached(call: Call, rec: Record, cached: Cached, technique: str, price: Price,
                 reservation: quotas.Reservation, leader: singleflight.Leader | None = None,
                 query_text: str = "") -> Reply:
    """Serve a cache hit (exact or semantic), recording what it saved against `price`."""
    prompt_tokens = cached.prompt_tokens
    if technique == Technique.SEMANTIC and query_text and cached.request_text:
        # The counterfactual is *this* prompt: scale the stored prompt's upstream count by the
        # two texts' local estimates (the upstream never saw this prompt).
        this_prompt = count_tokens(prompt_text(call.endpoint, call.body))
        stored_prompt = this_prompt - count_tokens(query_text) + count_tokens(cached.request_text)
        prompt_tokens = round(cached.prompt_tokens * this_prompt / max(1, stored_prompt))
    rec.served_from_cache(technique, price, prompt_tokens, cached.completion_tokens)
    rec.cache_key = cached.key_hash
    response = fresh(cached.response, f"chatcmpl-{call.request_id}" if call.endpoint == "chat"
                     else f"cmpl-{call.request_id}")
    return serve_response(call, rec, response, reservation, leader)


def _replay(call: Call, response: dict[str, Any], include_usage: bool) -> list[bytes]:
    if call.endpoint == "chat":
        return replay_as_stream(response, include_usage)
    return replay_completion_as_stream(response, include_usage)


def serve_response(call: Call, rec: Record, response: dict[str, Any], reservation: quotas.Reservation,
                   leader: singleflight.Leader | None) -> Reply:
    """Answer with a response LEO already holds (a cache hit or a composed answer), as JSON or as a
    replayed stream; hand it to the flight's followers too."""
    headers = leo_headers(call, rec)
    rec.response = response
    if leader is not None:
        background(_publish_whole(leader, call, response))
    if not call.stream:
        rec.finish()
        settle(call, rec, reservation)
        return Reply(200, headers, body=response)
    chunks = _replay(call, response, call.include_usage)

    async def gen() -> AsyncIterator[bytes]:
        try:
            for chunk in chunks:
                yield chunk
        except BaseException:
            rec.fail(499, "client_disconnected")
            raise
        finally:
            rec.finish()
            settle(call, rec, reservation)

    return Reply(200, headers, stream=gen())


async def _publish_whole(leader: singleflight.Leader, call: Call, response: dict[str, Any]) -> None:
    """A leader served from a cache: hand followers the same answer in their form."""
    if call.stream:
        for chunk in _replay(call, response, True)[:-1]:
            await leader.publish("usage" if b'"choices":[]' in chunk else "chunk", chunk)
    else:
        await leader.publish("result", json.dumps(response).encode())
    await leader.finish(True)
