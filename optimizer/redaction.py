"""Redaction of secrets in stored request bodies (the opt-in `store_bodies` setting).

What is replaced, by `[REDACTED:<kind>]`: API keys of the common shapes (OpenAI and Anthropic
`sk-...`, LEO `leo_...`, GitHub `gh?_...`, Slack `xox?-...`, Stripe `sk_/rk_live|test_...`),
`Bearer` tokens, JWTs, AWS access key ids and labelled AWS secret keys, PEM private key blocks,
and the value of `password=`/`api_key:`-style assignments. Email addresses, names and other
personal data are kept: the setting exists to debug conversations, which such data is part of,
and an owner who turns it on decides what their users send (docs/portal.md says so). No regex
list catches every secret; the retention limit is the second line of defence.
"""

from __future__ import annotations

import re
from typing import Any

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
                               re.DOTALL)),
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("api_key", re.compile(r"\b(?:sk|rk|pk)[-_](?:live_|test_|proj-|ant-)?[A-Za-z0-9_-]{16,}")),
    ("api_key", re.compile(r"\bleo_[A-Za-z0-9_-]{16,}")),
    ("api_key", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    ("api_key", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("aws_key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("secret", re.compile(r"(?i)\b(aws_secret_access_key|password|passwd|secret|api[_-]?key|token)"
                          r"(\s*[=:]\s*)(\"[^\"]{4,}\"|'[^']{4,}'|[^\s\"',;]{4,})")),
)


def redact_text(text: str) -> tuple[str, int]:
    """`text` with secrets replaced, and how many were."""
    count = 0
    for kind, pattern in _PATTERNS:
        if kind == "secret":
            text, n = pattern.subn(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED:secret]", text)
        else:
            text, n = pattern.subn(f"[REDACTED:{kind}]", text)
        count += n
    return text, count


def redact(value: Any) -> tuple[Any, int]:
    """A JSON value with every string in it redacted (keys included), and the count."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        out, total = [], 0
        for item in value:
            clean, n = redact(item)
            out.append(clean)
            total += n
        return out, total
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        total = 0
        for key, item in value.items():
            clean_key, n1 = redact_text(str(key))
            clean, n2 = redact(item)
            result[clean_key] = clean
            total += n1 + n2
        return result, total
    return value, 0
