"""The answer from the upstream, relayed to the client as JSON or as a stream, and accounted.

Either way the ledger row gets the upstream's own usage (the model's tokenizer counts it when a
stream has none), the answer is stored when it may be, the flight's followers get it, and the
quota is settled with what was used.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from leo_optima.core.aio import background
from tenants import quotas

from ..pricing import Price, chat_prompt_tokens, tokenize_count
from ..providers.base import ProviderError
from . import singleflight
from .admission import settle
from .ledger import Record
from .optimize_stage import Outgoing
from .plan import Plan
from .replies import leo_headers
from .responses import DONE, StreamAssembler, answer_text, sse, usage_of
from .store import store, store_then_finish
from .types import Call, Reply
from .upstream import call_json, open_stream


async def json_reply(call: Call, rec: Record, plan: Plan, out: Outgoing, requested_price: Price,
                     reservation: quotas.Reservation, leader: singleflight.Leader | None) -> Reply:
    """One JSON call upstream; its answer stored, published to followers, recorded and settled."""
    response = await call_json(call, rec, out.body, out.model)
    prompt_tokens, completion_tokens = usage_of(response)
    rec.upstream_used(out.price, requested_price, prompt_tokens, completion_tokens,
                      out.original_prompt(prompt_tokens))
    await store(call, plan, response)
    if leader is not None:
        await leader.publish("result", json.dumps(response).encode())
        await leader.finish(True)
    rec.response = response
    rec.finish()
    settle(call, rec, reservation)
    return Reply(200, leo_headers(call, rec), body=response)


async def stream_reply(call: Call, rec: Record, plan: Plan, out: Outgoing, requested_price: Price,
                       reservation: quotas.Reservation, leader: singleflight.Leader | None) -> Reply:
    """Relay an upstream stream. The upstream is read by a task of its own, not by the client's
    response: a client that leaves does not stop it, so the usage chunk (sent last) is still read
    and the leader's followers still get every chunk. It stops early only when the client left
    mid-answer and no one can be following (no flight): then the rest is not worth paying for, and
    the tokenizer counts what was used."""
    upstream = await open_stream(call, rec, out.body, out.model)
    headers = leo_headers(call, rec)
    asm = StreamAssembler(call.endpoint)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    state = {"ok": False, "client_left": False}

    async def pump() -> None:
        try:
            async for event in upstream.events:
                asm.add(event)
                chunk = sse(event)
                usage_only = not event.get("choices") and bool(event.get("usage"))
                if leader is not None:
                    await leader.publish("usage" if usage_only else "chunk", chunk)
                if not (usage_only and not call.include_usage):
                    queue.put_nowait(chunk)
            state["ok"] = True
        except ProviderError as exc:
            queue.put_nowait(sse({"error": {"message": str(exc), "type": "upstream_error", "param": None,
                                            "code": exc.kind}}))
            rec.fail(exc.status, exc.kind)
        except asyncio.CancelledError:
            pass  # stopped on purpose (see above): what was received is counted below
        finally:
            queue.put_nowait(None)
            background(upstream.close())
            _account_stream(call, rec, plan, out, requested_price, reservation, leader, asm,
                            ok=state["ok"], client_left=state["client_left"])

    reader = background(pump())

    async def gen() -> AsyncIterator[bytes]:
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
            if state["ok"]:
                yield DONE
        except BaseException:
            state["client_left"] = True
            if not rec.finished:  # the upstream may have finished first: then its row stands
                rec.fail(499, "client_disconnected")
            if leader is None and not asm.complete:
                reader.cancel()
            raise

    return Reply(200, headers, stream=gen())


def _account_stream(call: Call, rec: Record, plan: Plan, out: Outgoing, requested_price: Price,
                    reservation: quotas.Reservation, leader: singleflight.Leader | None, asm: StreamAssembler,
                    *, ok: bool, client_left: bool) -> None:
    """Record a relayed stream once the upstream is done with it, and settle its quota."""
    response = asm.response()
    rec.response = response
    prompt_tokens, completion_tokens = usage_of(response)
    if not asm.usage:  # an upstream that ignores include_usage, or a cut stream: the model's tokenizer counts
        prompt_tokens = _sent_prompt_tokens(call.endpoint, out.body, out.model)
        completion_tokens = tokenize_count(out.model, answer_text(response))
        rec.stage("usage_estimated", by="tokenizer")
    rec.upstream_used(out.price, requested_price, prompt_tokens, completion_tokens,
                      out.original_prompt(prompt_tokens))
    if ok and asm.complete and not client_left:
        background(store_then_finish(call, plan, response, leader))
    elif leader is not None:
        # Followers got every chunk when the upstream finished; a client that left is no reason to fail them.
        background(leader.finish(ok and asm.complete))
    rec.finish()
    settle(call, rec, reservation)


def _sent_prompt_tokens(endpoint: str, body: dict[str, Any], model: str) -> int:
    """The prompt as sent upstream, counted with the model's tokenizer."""
    if endpoint == "chat":
        return chat_prompt_tokens(model, body.get("messages") or [])
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return sum(tokenize_count(model, p) if isinstance(p, str) else len(p) if isinstance(p, list) else 1
                   for p in prompt)
    return tokenize_count(model, str(prompt or ""))
