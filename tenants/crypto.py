"""Encryption at rest for tenants' provider keys.

MultiFernet over `LEO_ENCRYPTION_KEYS`: the first key encrypts, every key decrypts, so an operator
adds a new key in front, runs `manage.py rotate_provider_keys`, then drops the old key.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.LEO_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:  # a key was dropped before rotation finished
        raise ValueError("provider key cannot be decrypted with the configured LEO_ENCRYPTION_KEYS") from exc


def rotate(token: str) -> str:
    return fernet().rotate(token.encode()).decode()
