"""Model routing: send simple requests for an expensive model to a cheaper one.

Stage 7 of the pipeline. A tenant (or one of its keys) opts in with ``RoutingRule``s such as
``RoutingRule("gpt-4o", "gpt-4o-mini", max_prompt_tokens=300)``. ``route(request, rules,
count_tokens)`` picks the first rule whose ``from_model`` matches the requested model and whose
classifier says the request is simple, and returns a ``RouteDecision``. The pipeline owns the
opt-in (which rules apply to which tenant, key or model), sets the ``X-LEO-Route`` header from
``RouteDecision.header``, and counts savings against the *requested* model
(``RouteDecision.requested_model``): the counterfactual is what the requested model would have
charged.

The classifier
--------------
A request is **simple** when every one of these holds (each failed check is named in
``Classification.reasons`` and in ``RouteDecision.reason``):

1. ``no-tools``: no ``tools``, ``functions``, ``tool_choice``, ``function_call`` or
   ``response_format`` (structured output and tool use are where small models fail most);
2. ``text-only``: every content part is text (no images or audio);
3. ``short``: the prompt, counted over all messages with the chat framing of
   ``prompt_opt.count_prompt_tokens``, is at most ``max_prompt_tokens``;
4. ``few-turns``: at most ``max_messages`` non-system messages;
5. ``no-code`` (unless ``allow_code``): no fenced code block, no inline code, and no two lines
   that look like source code (``def``/``class``/``import``/``function``/``#include``/``SELECT``
   starts, lines ending in ``;`` or ``{``);
6. ``no-reasoning`` (unless ``allow_reasoning``): none of the multi-step cues "step by step",
   "prove", "proof", "derive", "analyze"/"analyse", "compare", "contrast", "evaluate",
   "trade-off", "pros and cons", "justify", "critique", "debug", "refactor", "optimize",
   "algorithm", "in detail", "comprehensive", "in depth", nor a request to write or implement
   an essay, code, program, function, script, story, article, report, proof, query or regex;
7. ``no-math`` (unless ``allow_math``): no arithmetic between numbers (``3*4``, ``2 + 2``,
   ``x^2``, ``1/3``), no LaTeX (``\\frac``, ``\\int``, ``$...$``) and no "solve", "equation",
   "integral", "derivative", "calculate";
8. ``short-answer``: when the rule sets ``max_completion_tokens``, the request's ``max_tokens``
   / ``max_completion_tokens`` is set and no larger (an unbounded answer is not "simple").

Cues and code are looked for in every message of the conversation, including the system prompt:
a system prompt that asks for analysis makes every request under it non-simple. The checks are
deliberately conservative: a wrong refusal costs the saving, a wrong route costs answer quality.

Examples (rule ``gpt-4o -> gpt-4o-mini``, 300 tokens): "What is the capital of France?" is routed;
"Explain step by step how TCP works" is not (``no-reasoning``); "What does ``x = [1,2]`` do?" is not
(``no-code``); "What is 17*23?" is not (``no-math``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optimizer.pipeline.prompt_opt import count_prompt_tokens, message_text

CountTokens = Callable[[str], int]

__all__ = [
    "Classification",
    "RouteDecision",
    "RoutingRule",
    "classify",
    "route",
    "routed_request",
]

_TOOL_FIELDS = ("tools", "functions", "tool_choice", "function_call", "response_format")
_SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True)
class RoutingRule:
    """Send requests for ``from_model`` that the classifier calls simple to ``to_model``.

    ``from_model`` is an exact model name or an ``fnmatch`` pattern (``"gpt-4o-2024-*"``).
    A rule never routes a model to itself.
    """

    from_model: str
    to_model: str
    max_prompt_tokens: int = 300
    max_messages: int = 4
    allow_code: bool = False
    allow_reasoning: bool = False
    allow_math: bool = False
    #: When set, the request must cap its answer at no more than this many tokens.
    max_completion_tokens: int | None = None
    #: Extra words or phrases (case-insensitive) that make a request non-simple for this rule.
    extra_cues: tuple[str, ...] = ()
    #: A label for logs and the reason string; defaults to "from->to".
    name: str = ""

    def __post_init__(self) -> None:
        # Rules often come from JSON settings, where extra_cues arrives as a list.
        object.__setattr__(self, "extra_cues", tuple(self.extra_cues))
        if not self.from_model or not self.to_model:
            raise ValueError("a routing rule needs both from_model and to_model")
        if self.max_prompt_tokens < 1 or self.max_messages < 1:
            raise ValueError("max_prompt_tokens and max_messages must be positive")

    @property
    def label(self) -> str:
        return self.name or f"{self.from_model}->{self.to_model}"

    def matches(self, model: str) -> bool:
        """Whether this rule applies to a request for ``model``."""
        if model == self.to_model:
            return False
        if model == self.from_model:
            return True
        return any(c in self.from_model for c in "*?[") and fnmatch.fnmatchcase(model, self.from_model)


@dataclass(frozen=True)
class Classification:
    """The classifier's verdict: simple when ``reasons`` (the failed checks) is empty."""

    prompt_tokens: int
    reasons: tuple[str, ...] = ()

    @property
    def simple(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class RouteDecision:
    """Which model to call and why. ``model`` is the requested model when not routed."""

    model: str
    routed: bool
    reason: str
    requested_model: str = ""
    rule: RoutingRule | None = field(default=None, compare=False)

    @property
    def header(self) -> str:
        """The ``X-LEO-Route`` header value: ``"gpt-4o->gpt-4o-mini"`` or ``"none"``."""
        return f"{self.requested_model}->{self.model}" if self.routed else "none"


_FENCE = re.compile(r"```|~~~")
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |function\b|const |let |var |public |private |"
    r"#include|SELECT\b|INSERT\b|UPDATE\b|for\s*\(|while\s*\(|if\s*\(|return\b|@\w+)"
    r"|[;{]\s*$",
    re.MULTILINE,
)
_REASONING = re.compile(
    r"\b(?:step[- ]by[- ]step|prove|proof|derive|derivation|analy[sz]e|analysis|compare|"
    r"comparison|contrast|evaluate|trade-?offs?|pros and cons|justify|critique|debug|refactor|"
    r"optimi[sz]e|algorithm|in detail|detailed|comprehensive|in[- ]depth|thorough(?:ly)?|"
    r"reason through|think through)\b"
    r"|\b(?:write|draft|compose|create|generate|implement|build)\b(?:\W+\w+){0,4}?\W+"
    r"(?:essay|code|program|function|script|class|story|article|report|paper|thesis|proof|"
    r"app|application|implementation|query|sql|regex|poem)s?\b",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\d\s*[+*/^×÷=<>]\s*\(?-?\d"
    r"|\d\s+-\s+\d"
    r"|\b[a-z]\s*\^\s*\d"
    r"|\\(?:frac|int|sum|sqrt|lim|prod|partial)\b"
    r"|\$[^$\n]+\$"
    r"|\b(?:solve|equation|integral|derivative|calculate|compute|probability|theorem)\b",
    re.IGNORECASE,
)


def _has_code(text: str) -> bool:
    if _FENCE.search(text) or _INLINE_CODE.search(text):
        return True
    return len(_CODE_LINE.findall(text)) >= 2


def _answer_cap(request: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def classify(request: Mapping[str, Any], rule: RoutingRule, count_tokens: CountTokens) -> Classification:
    """Run the documented classifier for one rule's limits; see the module docstring."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return Classification(0, ("no-messages",))
    reasons: list[str] = []
    if any(request.get(k) not in (None, [], {}) for k in _TOOL_FIELDS):
        reasons.append("no-tools")
    if any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, Mapping) and p.get("type") != "text" for p in m["content"])
        for m in messages
    ):
        reasons.append("text-only")
    tokens = count_prompt_tokens(messages, count_tokens)
    if tokens > rule.max_prompt_tokens:
        reasons.append("short")
    turns = sum(1 for m in messages if m.get("role") not in _SYSTEM_ROLES)
    if turns > rule.max_messages:
        reasons.append("few-turns")
    text = "\n".join(message_text(m.get("content")) for m in messages)
    if not rule.allow_code and _has_code(text):
        reasons.append("no-code")
    lowered = text.lower()
    if not rule.allow_reasoning and (
        _REASONING.search(text) or any(c.lower() in lowered for c in rule.extra_cues)
    ):
        reasons.append("no-reasoning")
    if not rule.allow_math and _MATH.search(text):
        reasons.append("no-math")
    if rule.max_completion_tokens is not None:
        cap = _answer_cap(request)
        if cap is None or cap > rule.max_completion_tokens:
            reasons.append("short-answer")
    return Classification(tokens, tuple(reasons))


def route(
    request: Mapping[str, Any], rules: Sequence[RoutingRule], count_tokens: CountTokens
) -> RouteDecision:
    """Pick the model for ``request``: the first matching rule whose classifier says simple.

    Rules are tried in order, so a tenant can list a strict rule to a very cheap model before a
    looser one to a mid-priced model. With no matching rule, or when every matching rule
    refuses, the requested model is kept and ``reason`` says why.
    """
    model = str(request.get("model", ""))
    matching = [r for r in rules if r.matches(model)]
    if not matching:
        reason = "no routing rules" if not rules else f"no rule for model {model}"
        return RouteDecision(model, False, reason, model)
    refusals: list[str] = []
    for rule in matching:
        verdict = classify(request, rule, count_tokens)
        if verdict.simple:
            reason = (
                f"rule {rule.label}: simple ({verdict.prompt_tokens} prompt tokens"
                f" <= {rule.max_prompt_tokens})"
            )
            return RouteDecision(rule.to_model, True, reason, model, rule)
        refusals.append(f"rule {rule.label}: not simple ({', '.join(verdict.reasons)})")
    return RouteDecision(model, False, "; ".join(refusals), model)


def routed_request(request: Mapping[str, Any], decision: RouteDecision) -> dict[str, Any]:
    """A shallow copy of ``request`` with the decided model (the input is not mutated)."""
    new = dict(request)
    new["model"] = decision.model
    return new
