"""The request path: admit, look up, deduplicate, optimize, call upstream, store, record.

    routing decision -> canonicalize -> exact cache -> single-flight -> semantic cache -> decomposition
                     -> prompt optimization -> upstream (fallback chain) -> store -> ledger

(Routing is decided first because the model that answers is part of the cache scope; the routed
model is used when the upstream is called.)

Every stage is a module of its own; this one only orders them. It knows nothing of HTTP: it takes a
`Call` and returns a `Reply` whose body is a JSON dict or an async iterator of SSE bytes. Exactly
one ledger row is written per call, whatever happens, streams included (from the iterator's
`finally`, so client disconnects and cut streams are recorded too).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError

from leo_optima.core.aio import background
from leo_optima.core.db import run_db
from tenants import quotas

from ..models import RequestLog, Technique
from ..providers import openai_compat as provider
from ..providers.base import ProviderError, Upstream, UpstreamStream
from ..providers.registry import allowed_models, upstreams_for
from ..semantic.scope import tools_allow_semantic
from . import exact_cache, singleflight
from .canonical import Canonical, canonicalize, has_non_text, is_nondeterministic, text_of
from .config import TenantConfig, tenant_config
from .exact_cache import Cached
from .ledger import Record
from .pricing import Price, chat_prompt_tokens, count_tokens, price_of, tokenize_count
from .responses import DONE, StreamAssembler, answer_text, fresh, is_storable, replay_as_stream, sse, usage_of
from .routing import RoutingRule, route
from .types import Call, ProxyError, Reply, database_unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
DEFAULT_COMPLETION_ALLOWANCE = 512


# --- entry point ------------------------------------------------------------------------------

async def handle(call: Call) -> Reply:
    rec = Record(principal=call.principal, request_id=call.request_id, endpoint=call.endpoint,
                 model=str(call.body.get("model") or ""), stream=call.stream,
                 end_user=str(call.body.get("user") or ""), tags=dict(call.options.tags))
    try:
        reply = await (_embeddings(call, rec) if call.endpoint == "embeddings" else _generate(call, rec))
        rec.replied()
        return reply
    except ProxyError as exc:
        rec.fail(exc.status, exc.code or exc.type)
        rec.finish()
        return _error_reply(call, rec, exc)
    except ProviderError as exc:
        err = provider_error(exc)
        rec.fail(err.status, exc.kind)
        rec.finish()
        return _error_reply(call, rec, err)
    except asyncio.CancelledError:
        rec.fail(499, "client_disconnected")
        rec.finish()
        raise
    except (OperationalError, InterfaceError) as exc:  # down or restarting: a retryable 503; the row is written once it is back
        log.warning("database unavailable: %s", type(exc).__name__, extra={"request_id": call.request_id})
        err = database_unavailable()
        rec.fail(err.status, err.code or "database_unavailable")
        rec.finish()
        return _error_reply(call, rec, err)
    except Exception as exc:  # never a 500 with a stack trace, never a lost ledger row
        log.exception("pipeline failure", extra={"request_id": call.request_id})
        rec.fail(500, "internal_error")
        rec.finish()
        return _error_reply(call, rec, ProxyError(500, f"Internal error in the gateway ({type(exc).__name__}); "
                                                        f"request id {call.request_id}.", type="server_error",
                                                  code="internal_error"))


def provider_error(exc: ProviderError) -> ProxyError:
    headers = {}
    if exc.status == 429 and exc.retry_after is not None:
        headers["Retry-After"] = str(int(exc.retry_after))
    kind = {429: "rate_limit_error", 504: "timeout"}.get(exc.status, "upstream_error")
    if 400 <= exc.status < 500 and exc.status != 429:
        kind = "invalid_request_error"
    return ProxyError(exc.status, str(exc), type=kind, code=exc.kind, headers=headers, body=exc.body)


def _error_reply(call: Call, rec: Record, exc: ProxyError) -> Reply:
    return Reply(exc.status, {**exc.headers, **_leo_headers(call, rec)}, body=exc.envelope())


def _leo_headers(call: Call, rec: Record) -> dict[str, str]:
    headers = {"X-LEO-Request-Id": call.request_id, "X-LEO-Cache": _cache_header(rec.technique),
               "X-LEO-Tokens-Saved": str(rec.tokens_saved),
               "X-LEO-Cost-Saved-USD": f"{rec.saved_usd.quantize(Decimal('0.00000001')):f}"}
    if rec.similarity is not None:
        headers["X-LEO-Similarity"] = f"{rec.similarity:.4f}"
    if rec.served_model and rec.served_model != rec.model:
        headers["X-LEO-Route"] = f"{rec.model}->{rec.served_model}"
    if rec.provider:
        headers["X-LEO-Provider"] = rec.provider
    return headers


def _cache_header(technique: str) -> str:
    return {Technique.EXACT: "exact", Technique.SEMANTIC: "semantic", Technique.DEDUP: "dedup",
            Technique.DECOMPOSED: "decomposed", Technique.BYPASS: "bypass"}.get(technique, "miss")


# --- admission --------------------------------------------------------------------------------

async def _check_model(call: Call, kinds: tuple[str, ...]) -> None:
    model = call.body.get("model")
    owners = await allowed_models(call.principal)
    if model not in owners:
        raise ProxyError(404, f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found", param="model")


def _prompt_text(call: Call) -> str:
    return prompt_text(call.endpoint, call.body)


def prompt_text(endpoint: str, body: dict[str, Any]) -> str:
    """The text a request sends, for local estimates (admission reserves count_tokens of it)."""
    if endpoint == "chat":
        return "\n".join(text_of(m.get("content")) for m in body.get("messages") or [])
    value = body.get("prompt") if endpoint == "completions" else body.get("input")
    if isinstance(value, list):
        value = [value] if any(isinstance(v, int) for v in value) else value  # one token array
        return "\n".join(v if isinstance(v, str) else " ".join(map(str, v)) for v in value)
    return str(value or "")


async def _month_usage(tenant_id: int) -> tuple[int, Decimal]:
    from django.db.models import Sum
    from django.utils import timezone

    def query() -> tuple[int, Decimal]:
        now = timezone.now()
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        agg = RequestLog.objects.filter(tenant_id=tenant_id, created_at__gte=start).aggregate(
            p=Sum("prompt_tokens"), c=Sum("completion_tokens"), usd=Sum("cost_usd"))
        return int((agg["p"] or 0) + (agg["c"] or 0)), Decimal(agg["usd"] or 0)

    return await run_db(query)


async def _key_month_spend(api_key_id: int) -> Decimal:
    """The key's spend this UTC month, from the ledger (starts the key's budget counter)."""
    from django.db.models import Sum
    from django.utils import timezone

    def query() -> Decimal:
        start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        agg = RequestLog.objects.filter(api_key_id=api_key_id, created_at__gte=start).aggregate(usd=Sum("cost_usd"))
        return Decimal(agg["usd"] or 0)

    return await run_db(query)


def completion_allowance(endpoint: str, body: dict[str, Any]) -> int:
    """The completion tokens one upstream call of `body` may bill: max_tokens (or a default) per choice."""
    if endpoint == "embeddings":
        return 0
    allowance = body.get("max_completion_tokens") or body.get("max_tokens")
    n = body.get("n") if isinstance(body.get("n"), int) else 1
    completion = (allowance if isinstance(allowance, int) and allowance > 0 else DEFAULT_COMPLETION_ALLOWANCE)
    return completion * max(1, n or 1)


def quota_exceeded(exc: quotas.QuotaExceeded) -> ProxyError:
    minute = exc.kind.endswith("minute")
    return ProxyError(429, str(exc), type="rate_limit_error" if minute else "insufficient_quota",
                      code="rate_limit_exceeded" if minute else "insufficient_quota",
                      headers={"Retry-After": str(exc.retry_after)})


async def _admit(call: Call, price: Price) -> tuple[quotas.Reservation, int]:
    est_prompt = count_tokens(_prompt_text(call))
    completion = completion_allowance(call.endpoint, call.body)
    try:
        reservation = await quotas.admit(call.principal, est_prompt + completion, price.cost(est_prompt, completion),
                                         lambda: _month_usage(call.principal.tenant_id),
                                         lambda: _key_month_spend(call.principal.api_key_id))
    except quotas.QuotaExceeded as exc:
        raise quota_exceeded(exc) from None
    return reservation, est_prompt


async def reserve_more(call: Call, price: Price, reservation: quotas.Reservation, prompt_tokens: int,
                       completion_tokens: int) -> None:
    """Reserve what upstream calls beyond the admitted one may bill, before making them; raises
    quotas.QuotaExceeded (and reserves nothing) when the limits have no room for them."""
    await quotas.reserve_more(call.principal, reservation, prompt_tokens + completion_tokens,
                              price.cost(prompt_tokens, completion_tokens),
                              lambda: _month_usage(call.principal.tenant_id),
                              lambda: _key_month_spend(call.principal.api_key_id))


def _settle(call: Call, rec: Record, reservation: quotas.Reservation) -> None:
    background(quotas.settle(call.principal, reservation, rec.prompt_tokens + rec.completion_tokens, rec.cost_usd))


# --- upstream ---------------------------------------------------------------------------------

async def _through_chain(call: Call, rec: Record, model: str,
                         attempt: Callable[[Upstream], Awaitable[T]]) -> tuple[T, Upstream]:
    """Try the model's upstreams in fallback order; a non-retryable error (a 4xx the client caused,
    a timeout) ends the chain at once."""
    last: ProviderError | None = None
    chain = await upstreams_for(call.principal, model)
    if not chain:  # not allowed, or only the platform could serve it and it does not offer it
        raise ProxyError(404, f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found", param="model")
    for upstream in chain:
        try:
            rec.upstream_calls += 1
            result = await attempt(upstream)
        except ProviderError as exc:
            rec.stage("upstream_error", provider=upstream.name, kind=exc.kind)
            last = exc
            if not exc.retryable:
                raise
            continue
        rec.provider = upstream.name
        return result, upstream
    assert last is not None
    raise last


async def _call_json(call: Call, rec: Record, body: dict[str, Any], model: str) -> dict[str, Any]:
    result, upstream = await _through_chain(
        call, rec, model, lambda up: provider.request_json(up, PATHS[call.endpoint], body))
    rec.upstream_latency_ms += result.latency_ms
    rec.stage("upstream", provider=upstream.name, ms=round(result.latency_ms, 2))
    return result.body


async def _open_stream(call: Call, rec: Record, body: dict[str, Any], model: str) -> UpstreamStream:
    stream, upstream = await _through_chain(
        call, rec, model, lambda up: provider.open_stream(up, PATHS[call.endpoint], body))
    rec.upstream_latency_ms += stream.first_byte_ms
    rec.stage("upstream", provider=upstream.name, first_byte_ms=round(stream.first_byte_ms, 2))
    return stream


# --- embeddings: passed through, recorded -----------------------------------------------------

async def _embeddings(call: Call, rec: Record) -> Reply:
    await _check_model(call, ("embedding",))
    price = await price_of(rec.model)
    reservation, _ = await _admit(call, price)
    try:
        body = await _call_json(call, rec, call.body, rec.model)
        prompt_tokens, _ = usage_of(body)
        rec.upstream_used(price, price, prompt_tokens, 0)
        rec.technique = Technique.MISS
        return Reply(200, _leo_headers(call, rec), body=body)
    finally:
        _settle(call, rec, reservation)
        rec.finish()


# --- chat and completions ---------------------------------------------------------------------

# Semantic matching compares questions. In a message that carries pasted context (a document, a
# log) the context dominates the embedding, so two different questions about the same document
# score as near-duplicates and the verifier, which sees no changed number or name, lets the wrong
# answer through (tests/bench/savings.py measured 5 of 12 such requests served another question's
# answer). Such messages are looked up exactly only.
SEMANTIC_MAX_CHARS = 300


def question_sized(text: str) -> bool:
    """Whether a user message is short enough, and one paragraph, for a semantic lookup."""
    text = text.strip()
    return len(text) <= SEMANTIC_MAX_CHARS and "\n\n" not in text


class _Plan:
    """What the optimizer decided for one call."""

    def __init__(self, call: Call, cfg: TenantConfig, canon: Canonical, model: str) -> None:
        body = call.body
        self.cfg = cfg
        self.canon = canon
        self.model = model  # the model that answers: the requested one, or where a routing rule sent it
        nondeterministic = is_nondeterministic(body) and cfg.non_deterministic == "bypass"
        self.cacheable = (cfg.exact_cache or cfg.semantic_cache) and not nondeterministic
        self.lookup = self.cacheable and not call.options.no_cache
        self.store = self.cacheable and not call.options.no_store
        self.exact = cfg.exact_cache and self.lookup
        tools = bool(body.get("tools") or body.get("functions"))
        self.tools = tools
        # Whether this request's answer belongs in the semantic cache; looked up only when lookups
        # are allowed, but stored either way (`no-cache` means "do not serve me a stored answer",
        # not "keep mine out of the cache").
        self.semantic_scope = (cfg.semantic_cache and self.cacheable and call.endpoint == "chat"
                               and tools_allow_semantic(body)
                               and not body.get("response_format") and not has_non_text(body.get("messages") or [])
                               and bool(canon.last_user.strip()) and (body.get("n") or 1) == 1
                               and question_sized(canon.last_user))
        self.semantic = self.semantic_scope and self.lookup
        self.dedup = cfg.dedup and not call.options.no_cache
        self.ttl = call.options.ttl if call.options.ttl is not None else cfg.cache_ttl_seconds
        self.embedding: Any = None  # the query's vector, computed once for lookup and store
        self.embedded_text = ""


async def _generate(call: Call, rec: Record) -> Reply:
    await _check_model(call, ("chat", "completion"))
    requested_price = await price_of(rec.model)
    cfg = await tenant_config(call.principal.tenant_id)
    if cfg.store_bodies:  # the tenant opted in to keeping prompts and answers (redacted, for a while)
        rec.keep_body(cfg.body_retention_days, call.endpoint, call.body)
    reservation, est_prompt = await _admit(call, requested_price)
    settled = False
    try:
        routed_to = await _route(call, rec, cfg)
        canon = canonicalize(call.principal.tenant_id, call.endpoint, call.body, call.options.namespace, routed_to)
        plan = _Plan(call, cfg, canon, routed_to or rec.model)
        if not plan.cacheable or (call.options.no_cache and call.options.no_store):
            rec.technique = Technique.BYPASS
            rec.stage("bypass", reason="policy" if not plan.cacheable else "cache-control")

        # 1. exact cache
        if plan.exact:
            hit = await exact_cache.lookup(call.principal.tenant_id, canon.key)
            rec.stage("exact", hit=hit is not None)
            if hit is not None:
                exact_cache.count_hit(call.principal.tenant_id, canon.key)
                return _serve_cached(call, rec, hit, Technique.EXACT, requested_price, reservation)

        # 2. single-flight
        flight: singleflight.Leader | singleflight.Follower | None = None
        if plan.dedup:
            flight = await singleflight.join(call.principal.tenant_id, canon.key, call.stream,
                                             settings.LEO_UPSTREAM_READ_TIMEOUT + 30)
            if isinstance(flight, singleflight.Follower):
                reply = await _follow(call, rec, flight, requested_price, reservation)
                if reply is not None:
                    return reply
                flight = None  # released: go on alone

        settled = True  # from here the answer path settles the quota itself
        return await _answer(call, rec, plan, requested_price, reservation, est_prompt,
                             flight if isinstance(flight, singleflight.Leader) else None)
    finally:
        if not settled:
            _settle(call, rec, reservation)


def _serve_cached(call: Call, rec: Record, cached: Cached, technique: str, price: Price,
                  reservation: quotas.Reservation, leader: singleflight.Leader | None = None,
                  query_text: str = "") -> Reply:
    prompt_tokens = cached.prompt_tokens
    if technique == Technique.SEMANTIC and query_text and cached.request_text:
        # The counterfactual is *this* prompt: scale the stored prompt's upstream count by the
        # two texts' local estimates (the upstream never saw this prompt).
        this_prompt = count_tokens(_prompt_text(call))
        stored_prompt = this_prompt - count_tokens(query_text) + count_tokens(cached.request_text)
        prompt_tokens = round(cached.prompt_tokens * this_prompt / max(1, stored_prompt))
    rec.served_from_cache(technique, price, prompt_tokens, cached.completion_tokens)
    rec.cache_key = cached.key_hash
    response = fresh(cached.response, f"chatcmpl-{call.request_id}" if call.endpoint == "chat"
                     else f"cmpl-{call.request_id}")
    return serve_response(call, rec, response, reservation, leader)


def serve_response(call: Call, rec: Record, response: dict[str, Any], reservation: quotas.Reservation,
                   leader: singleflight.Leader | None) -> Reply:
    """Answer with a response LEO already holds (a cache hit or a composed answer), as JSON or as a
    replayed stream; hand it to the flight's followers too."""
    headers = _leo_headers(call, rec)
    rec.response = response
    if leader is not None:
        background(_publish_whole(leader, call, response))
    if not call.stream:
        rec.finish()
        _settle(call, rec, reservation)
        return Reply(200, headers, body=response)
    chunks = replay_as_stream(response, call.include_usage) if call.endpoint == "chat" else \
        _replay_completion(response, call.include_usage)

    async def gen() -> AsyncIterator[bytes]:
        try:
            for chunk in chunks:
                yield chunk
        except BaseException:
            rec.fail(499, "client_disconnected")
            raise
        finally:
            rec.finish()
            _settle(call, rec, reservation)

    return Reply(200, headers, stream=gen())


def _replay_completion(response: dict[str, Any], include_usage: bool) -> list[bytes]:
    base = {k: response.get(k) for k in ("id", "created", "model")}
    out = [sse({**base, "object": "text_completion", "choices": [
        {"index": c.get("index", 0), "text": c.get("text", ""), "logprobs": None,
         "finish_reason": c.get("finish_reason")}]}) for c in response.get("choices") or []]
    if include_usage:
        out.append(sse({**base, "object": "text_completion", "choices": [], "usage": response.get("usage")}))
    out.append(DONE)
    return out


async def _publish_whole(leader: singleflight.Leader, call: Call, response: dict[str, Any]) -> None:
    """A leader served from a cache: hand followers the same answer in their form."""
    if call.stream:
        chunks = replay_as_stream(response, True) if call.endpoint == "chat" else _replay_completion(response, True)
        for chunk in chunks[:-1]:
            await leader.publish("usage" if b'"choices":[]' in chunk else "chunk", chunk)
    else:
        await leader.publish("result", json.dumps(response).encode())
    await leader.finish(True)


async def _follow(call: Call, rec: Record, follower: singleflight.Follower, price: Price,
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
        _settle(call, rec, reservation)
        return Reply(200, _leo_headers(call, rec), body=response)

    rec.technique = Technique.DEDUP
    headers = _leo_headers(call, rec)
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
            _settle(call, rec, reservation)

    return Reply(200, headers, stream=gen())


async def _answer(call: Call, rec: Record, plan: _Plan, requested_price: Price, reservation: quotas.Reservation,
                  est_prompt: int, leader: singleflight.Leader | None) -> Reply:
    """Semantic cache, decomposition, then the upstream. Owns quota settlement and the leader's end."""
    try:
        from . import semantic_stage

        if plan.semantic:
            hit = await semantic_stage.lookup(call, rec, plan)
            if hit is not None:
                return _serve_cached(call, rec, hit, Technique.SEMANTIC, requested_price, reservation, leader,
                                     plan.embedded_text)

        if plan.lookup and call.endpoint == "chat" and plan.cfg.decomposition:
            from . import decomposition_stage

            reply = await decomposition_stage.try_decompose(call, rec, plan, requested_price, reservation, leader)
            if reply is not None:
                return reply

        body, served_model, original_prompt = await _optimize(call, rec, plan, est_prompt)
        served_price = requested_price if served_model == rec.model else await price_of(served_model)
        rec.served_model = served_model
        if call.stream:
            return await _stream_from_upstream(call, rec, plan, body, served_model, served_price, requested_price,
                                               original_prompt, reservation, leader)
        response = await _call_json(call, rec, body, served_model)
        prompt_tokens, completion_tokens = usage_of(response)
        rec.upstream_used(served_price, requested_price, prompt_tokens, completion_tokens,
                          _scaled_original(prompt_tokens, original_prompt))
        await _store(call, plan, response)
        if leader is not None:
            await leader.publish("result", json.dumps(response).encode())
            await leader.finish(True)
        rec.response = response
        rec.finish()
        _settle(call, rec, reservation)
        return Reply(200, _leo_headers(call, rec), body=response)
    except BaseException:
        if leader is not None:
            background(leader.finish(False))
        if not rec.finished:
            # handle() records the failure; the quota gives back what was reserved but unused
            _settle(call, rec, reservation)
        raise


def _scaled_original(upstream_prompt_tokens: int, ratio: tuple[int, int] | None) -> int | None:
    """The original prompt's tokens, from the upstream's count of the optimized prompt and our
    before/after estimate (the upstream never saw the original)."""
    if ratio is None or ratio[1] <= 0 or ratio[0] <= ratio[1]:
        return None
    return round(upstream_prompt_tokens * ratio[0] / ratio[1])


async def _optimize(call: Call, rec: Record, plan: _Plan, est_prompt: int
                    ) -> tuple[dict[str, Any], str, tuple[int, int] | None]:
    """Prompt optimization, and the routed model (decided by `_route`) put in the body.
    Returns (upstream body, served model, (tokens before, after))."""
    body = call.body
    ratio: tuple[int, int] | None = None
    if call.endpoint == "chat" and plan.cfg.prompt_mode != "off":
        from .prompt_opt import optimize

        result = optimize(body, plan.cfg.prompt_mode, count_tokens)  # type: ignore[arg-type]
        if result.tokens_after < result.tokens_before:
            body = result.request
            ratio = (result.tokens_before, result.tokens_after)
            rec.stage("prompt_opt", before=result.tokens_before, after=result.tokens_after, changes=result.changes)
    model = plan.model  # routing was decided before the cache lookups (`_route`)
    if model != rec.model:
        body = {**body, "model": model}
    if call.stream:
        # Always ask for usage so the ledger has the upstream's count; stripped if the client did not ask.
        body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
    return body, model, ratio


async def _route(call: Call, rec: Record, cfg: TenantConfig) -> str:
    """The model a routing rule sends this request to, or "" when none does. Decided before the
    cache is consulted, on the request as the client sent it, because the model that answers is
    part of the cache scope: with a rule limited to some keys, the same body is answered by the
    cheaper model for those keys and by the requested one for the others, and the two must never
    be served each other's answers."""
    if call.endpoint != "chat" or not cfg.routing or not cfg.routing_rules:
        return ""
    rules = [RoutingRule(**{k: v for k, v in r.items() if k != "api_keys"})
             for r in cfg.routing_rules if _rule_covers_key(r, call.principal.key_prefix)]
    decision = route(call.body, rules, count_tokens)
    if not decision.routed or decision.model not in await allowed_models(call.principal):
        return ""
    rec.stage("routing", to=decision.model, reason=decision.reason)
    return decision.model


def _rule_covers_key(rule: dict[str, Any], key_prefix: str) -> bool:
    """Routing opt-in per key: a rule with `api_keys` (key prefixes, as the portal shows them)
    applies only to requests made with one of those keys; without it, to every key. Per model,
    the rule's `from_model` already decides; per tenant, `OptimizerSettings.routing`."""
    keys = rule.get("api_keys")
    if not keys:
        return True
    return key_prefix in keys


async def _store(call: Call, plan: _Plan, response: dict[str, Any]) -> None:
    if not plan.store or not is_storable(response):
        return
    from . import semantic_stage

    if plan.semantic_scope and plan.embedding is None:  # not looked up (no-cache): embed it now
        plan.embedding, plan.embedded_text = await semantic_stage.embed(call.body.get("messages") or [])
    prompt_tokens, completion_tokens = usage_of(response)
    request_text = plan.embedded_text or plan.canon.last_user or _prompt_text(call)[:2000]
    cached = Cached(response=response, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    request_text=request_text, key_hash=plan.canon.key)
    tenant_id = call.principal.tenant_id
    await exact_cache.put(tenant_id, cached, plan.ttl)
    embedding = None
    on_saved = None
    if plan.semantic_scope and plan.embedding is not None:
        embedding = semantic_stage.to_bytes(plan.embedding)
        # Searchable in this worker from now on, before its row is written.
        on_saved = semantic_stage.remember(tenant_id, plan.canon.partition, cached, plan.embedding, plan.ttl)
    exact_cache.record_entry(tenant_id, cached, scope_hash=plan.canon.partition if embedding else plan.canon.scope,
                             model=str(call.body.get("model")), namespace=call.options.namespace, ttl=plan.ttl,
                             embedding=embedding, on_saved=on_saved)


async def _stream_from_upstream(call: Call, rec: Record, plan: _Plan, body: dict[str, Any], served_model: str,
                                served_price: Price, requested_price: Price, original_prompt: tuple[int, int] | None,
                                reservation: quotas.Reservation, leader: singleflight.Leader | None) -> Reply:
    """Relay an upstream stream. The upstream is read by a task of its own, not by the client's
    response: a client that leaves does not stop it, so the usage chunk (sent last) is still read
    and the leader's followers still get every chunk. It stops early only when the client left
    mid-answer and no one can be following (no flight): then the rest is not worth paying for, and
    the tokenizer counts what was used."""
    upstream = await _open_stream(call, rec, body, served_model)
    headers = _leo_headers(call, rec)
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
            _account_stream(call, rec, plan, body, served_model, served_price, requested_price, original_prompt,
                            reservation, leader, asm, ok=state["ok"], client_left=state["client_left"])

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


def _account_stream(call: Call, rec: Record, plan: _Plan, body: dict[str, Any], served_model: str,
                    served_price: Price, requested_price: Price, original_prompt: tuple[int, int] | None,
                    reservation: quotas.Reservation, leader: singleflight.Leader | None, asm: StreamAssembler,
                    *, ok: bool, client_left: bool) -> None:
    """Record a relayed stream once the upstream is done with it, and settle its quota."""
    response = asm.response()
    rec.response = response
    prompt_tokens, completion_tokens = usage_of(response)
    if not asm.usage:  # an upstream that ignores include_usage, or a cut stream: the model's tokenizer counts
        prompt_tokens = _sent_prompt_tokens(call.endpoint, body, served_model)
        completion_tokens = tokenize_count(served_model, answer_text(response))
        rec.stage("usage_estimated", by="tokenizer")
    rec.upstream_used(served_price, requested_price, prompt_tokens, completion_tokens,
                      _scaled_original(prompt_tokens, original_prompt))
    if ok and asm.complete and not client_left:
        background(_store_then_finish(call, plan, response, leader))
    elif leader is not None:
        # Followers got every chunk when the upstream finished; a client that left is no reason to fail them.
        background(leader.finish(ok and asm.complete))
    rec.finish()
    _settle(call, rec, reservation)


def _sent_prompt_tokens(endpoint: str, body: dict[str, Any], model: str) -> int:
    """The prompt as sent upstream, counted with the model's tokenizer."""
    if endpoint == "chat":
        return chat_prompt_tokens(model, body.get("messages") or [])
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return sum(tokenize_count(model, p) if isinstance(p, str) else len(p) if isinstance(p, list) else 1
                   for p in prompt)
    return tokenize_count(model, str(prompt or ""))


async def _store_then_finish(call: Call, plan: _Plan, response: dict[str, Any],
                             leader: singleflight.Leader | None) -> None:
    try:
        await _store(call, plan, response)
    finally:
        if leader is not None:
            await leader.finish(True)

