"""Secret redaction: the rules that keep credentials out of logs, error reports and stored bodies.

``redact(text)`` replaces anything that looks like a credential (a bearer token, a provider's API
key, a password in a URL, a ``key=value`` pair whose key names a secret) with ``[REDACTED]``;
``redact_value`` does the same through dicts, lists and tuples and replaces whole the values under
sensitive keys. The log filter and formatter (``leo_optima.core.logging``), Sentry's scrubbers
(``leo_optima.core.sentry``) and stored request bodies (``optimizer/redaction.py``) all use these
rules, so there is one list of what a secret looks like.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_sensitive_key", "redact", "redact_value"]

REDACTED = "[REDACTED]"

# Character class for the body of a token: never a quote or backslash, so redacting a serialised
# JSON line cannot break its syntax.
_T = r"[A-Za-z0-9_\-]"

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: Bearer <anything>", whatever the token looks like.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), r"\1 " + REDACTED),
    # LEO keys: "leo_" + 20 or more token characters with at least one digit or capital letter, so
    # identifiers like metric names (leo_singleflight_waits_total) stay readable.
    (re.compile(rf"\bleo_(?={_T}*[0-9A-Z]){_T}{{20,}}"), REDACTED),
    # OpenAI, Anthropic ("sk-ant-..."), DeepSeek and most OpenAI-compatible providers.
    (re.compile(rf"\bsk-{_T}{{16,}}"), REDACTED),
    # Stripe secret, restricted and webhook secrets.
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"), REDACTED),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]{10,}"), REDACTED),
    # Google API keys, AWS access key ids, Groq, Hugging Face, xAI, GitHub, Slack tokens.
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bgsk_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(rf"\bxai-{_T}{{20,}}"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), REDACTED),
    # Passwords in URLs: scheme://user:password@host (DATABASE_URL, REDIS_URL, EMAIL_URL, DSNs).
    (re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^:/@\s\"'\\]*:)[^@\s\"'\\]+@"), r"\1" + REDACTED + "@"),
    # key=value and "key": "value" pairs whose key names a secret.
    (
        re.compile(
            r"(?i)((?:api[_-]?key|apikey|secret|password|passwd|token|pepper|authorization)"
            r"\\?[\"']?\s*[:=]\s*\\?[\"']?)(?!\[REDACTED\]|(?i:bearer|basic)\s)([^\s\"'\\,&}]{4,})"
        ),
        r"\1" + REDACTED,
    ),
)

_SENSITIVE_KEY_RE = re.compile(
    r"(?i)^(?:.*[_-])?(?:authorization|proxy-authorization|cookie|set-cookie|password|passwd|"
    r"secret|token|api[_-]?key|apikey|pepper|dsn|private[_-]?key|(?:secret|encryption)[_-]keys?|"
    r"sessionid|csrftoken|x-api-key)$"
)


# Every pattern above needs one of these substrings, so a plain substring test (fast, in C) lets the
# common case skip the regexes, which cost about a millisecond per access line otherwise. Keep the
# lists (and the "bearer"/"basic" test below) a superset of the patterns: add to them with each new
# pattern.
_PREFIXES = ("leo_", "sk-", "sk_", "rk_", "whsec_", "AIza", "AKIA", "ASIA", "gsk_", "hf_", "xai-", "ghp_", "gho_",
             "ghu_", "ghs_", "ghr_", "xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "://")
_KEY_WORDS = ("key", "secret", "passw", "token", "pepper", "authoriz")


def redact(text: str) -> str:
    """Replace anything that looks like a credential in ``text`` with ``[REDACTED]``."""
    if not text:
        return text
    low = text.lower()
    if not any(p in text for p in _PREFIXES) and "bearer" not in low and "basic" not in low:
        if not any(w in low for w in _KEY_WORDS):
            return text
        pattern, replacement = _SECRET_PATTERNS[-1]  # only the key=value rule can apply
        return pattern.sub(replacement, text)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_sensitive_key(key: object) -> bool:
    """Whether a mapping key or header name names a secret (``api_key``, ``Authorization``...)."""
    return isinstance(key, str) and bool(_SENSITIVE_KEY_RE.match(key))


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Recursively redact strings inside dicts, lists and tuples; values under sensitive keys are
    replaced whole. Other types are returned unchanged."""
    if _depth > 8:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_sensitive_key(k) and v not in (None, "") else redact_value(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v, _depth + 1) for v in value)
    return value
