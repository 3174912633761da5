"""A single-flight follower: served from the leader's flight instead of its own upstream call.

The leader publishes its answer whole (JSON) or chunk by chunk (a stream); the follower is
recorded as `dedup`, its usage and savings those of the answer it was given. Released before
anything was sent (the leader failed or left), the follower goes on alone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from django.conf import settings
from tenants import quotas

from ..models import Technique
from ..pricing import Price
from . import singleflight
from .admission import settle
from .ledger import Record
from .replies import leo_headers
from .responses import DONE, StreamAssembler, sse, usage_of
from .types import Call, Reply


async def follow(call: Call, rec: Record, follower: singleflight.Follower, price: Price,
                 reservation: quotas.Reservation) -> Reply | None:
    """Wait on the leader's flight. None means: released before anything was sent, go alone."""
    events = follower.events(settings.LEO_UPSTREAM_READ_TIMEOUT + 30)
    rec.stage("dedup", role="follower")
    try:
        first = await events.__anext__()
    except (singleflight.Released, StopAsyncIteration):
        rec.stage("dedup_released")
        return None
    kind, data = first
    if kind == "result":
        response = json.loads(data)
        prompt_tokens, completion_tokens = usage_of(response)
        rec.served_from_cache(Technique.DEDUP, price, prompt_tokens, completion_tokens)
        rec.response = response
        rec.finish()
        settle(call, rec, reservation)
        return Reply(200, leo_headers(call, rec), body=response)

    rec.technique = Technique.DEDUP
    headers = leo_headers(call, rec)
    asm = StreamAssembler(call.endpoint)

    async def gen() -> AsyncIterator[bytes]:
        ok = False
        try:
            k, d = kind, data
            while True:
                asm.add(json.loads(d[6:]))
                if k != "usage" or call.include_usage:
                    yield d
                try:
                    k, d = await events.__anext__()
                except StopAsyncIteration:
                    break
            yield DONE
            ok = True
        except singleflight.Released:
            # Chunks already reached the client: it cannot be restarted, so end with an error event.
            yield sse({"error": {"message": "The upstream stream failed.", "type": "upstream_error",
                                 "param": None, "code": "stream_cut"}})
            rec.fail(502, "stream_cut")
        except BaseException:
            rec.fail(499, "client_disconnected")
            raise
        finally:
            if ok:
                rec.response = asm.response()
                p, c = usage_of(rec.response)
                rec.served_from_cache(Technique.DEDUP, price, p, c)
            rec.finish()
            settle(call, rec, reservation)

    return Reply(200, headers, stream=gen())
