"""The plan for one call: which model answers it, and which lookups, stores and sharing it gets.

Routing is decided here, first, because the model that answers is part of the cache scope
(`canonical.canonicalize`). The plan is then made from the tenant's settings, the request's
`Cache-Control` and the request itself; the stages read it and the semantic stage keeps the
query's vector on it, so the conversation is embedded once for both lookup and store.
"""

from __future__ import annotations

from typing import Any

from ..pricing import count_tokens
from ..providers.registry import allowed_models
from ..semantic.scope import tools_allow_semantic
from .canonical import Canonical, has_non_text, is_nondeterministic
from .config import TenantConfig
from .ledger import Record
from .routing import RoutingRule, route
from .types import Call

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


class Plan:
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


async def routed_model(call: Call, rec: Record, cfg: TenantConfig) -> str:
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
