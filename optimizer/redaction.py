"""Redaction of secrets in stored request bodies (the opt-in `store_bodies` setting).

The rules are the log formatter's (`leo_optima.core.logging.redact`: API keys of the common providers
and LEO's, Bearer and Basic credentials, AWS key ids, passwords in URLs, `password=`/`api_key:`
style values), so a secret kept out of the logs is kept out of stored bodies the same way, plus
two shapes that appear in pasted text rather than in logs: PEM private key blocks and JWTs.
Each becomes `[REDACTED]`. Email addresses, names and other personal data are kept: the setting
exists to debug conversations, which such data is part of, and the owner who turns it on decides
what their users send (docs/portal.md). No list of patterns catches every secret; the retention
limit is the second line of defence.
"""

from __future__ import annotations

import re
from typing import Any

from leo_optima.core.logging import REDACTED
from leo_optima.core.logging import redact as redact_logged_secrets

_BODY_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
)


def redact_text(text: str) -> tuple[str, int]:
    """`text` with secrets replaced, and how many were."""
    clean = redact_logged_secrets(text)
    for pattern in _BODY_PATTERNS:
        clean = pattern.sub(REDACTED, clean)
    return clean, clean.count(REDACTED) - text.count(REDACTED)


def redact(value: Any) -> tuple[Any, int]:
    """A JSON value with every string in it redacted (object keys too), and the count. Depth is
    bounded by the API's parsing (64 levels), so the recursion is too."""
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
