"""API key format and digests.

A key is `leo_` + 43 url-safe characters (32 random bytes). The database keeps only the first
12 characters as a lookup prefix and an HMAC-SHA256 of the whole key, peppered with a server
secret (`LEO_KEY_PEPPER`), so a stolen database dump cannot be used to call the gateway and
cannot be brute-forced offline without the pepper. Retired peppers (`LEO_KEY_PEPPER_OLD`) still
verify, so the pepper rotates without locking anyone out; a key that verifies with an old pepper is
re-digested with the current one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings

KEY_PREFIX = "leo_"
PREFIX_LENGTH = 12  # "leo_" + 8 characters: 48 bits, enough to make lookups unique in practice
KEY_RANDOM_BYTES = 32


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    prefix: str
    digest: str


def generate() -> NewKey:
    plaintext = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    return NewKey(plaintext=plaintext, prefix=plaintext[:PREFIX_LENGTH], digest=digest(plaintext))


def digest(plaintext: str, pepper: str | None = None) -> str:
    key = (pepper if pepper is not None else settings.LEO_KEY_PEPPER).encode()
    return hmac.new(key, plaintext.encode(), hashlib.sha256).hexdigest()


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 200 and value.isascii()


def verify(plaintext: str, stored_digest: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). Constant-time against every pepper, current first."""
    if hmac.compare_digest(digest(plaintext), stored_digest):
        return True, False
    for old in settings.LEO_KEY_PEPPER_OLD:
        if hmac.compare_digest(digest(plaintext, old), stored_digest):
            return True, True
    return False, False
