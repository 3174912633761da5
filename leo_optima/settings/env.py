"""Environment reading on top of django-environ.

Two rules the project holds to:
- a malformed value fails loudly at start-up (a typo in `LEO_CACHE_TTL` must not silently become 0);
- a secret may come from `NAME` or from a file named by `NAME_FILE` (Docker/Kubernetes secrets),
  and no secret has a default in code: `scripts/setup.sh` generates local ones into `.env`.

`NAME_FILE` is django-environ's own `FileAwareEnv`: every setting read through `env` honours it
(`DATABASE_URL_FILE` too), and the file wins over `NAME`. An empty `NAME_FILE` (compose passes
`${NAME_FILE:-}`) counts as unset.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from tenants.egress import EgressPolicy

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.FileAwareEnv()
# `.env` at the repository root holds the locally generated secrets; real environment wins.
if (BASE_DIR / ".env").is_file():
    # Loaded through the plain Env, straight into os.environ: FileAwareEnv's loader would read every
    # NAME_FILE it meets on the way, before secret() can report an unreadable one by name.
    environ.Env.read_env(str(BASE_DIR / ".env"), overwrite=False)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _from_env_or_file(name: str) -> str:
    """`NAME` or the contents of the file named by `NAME_FILE`, stripped (files end in a newline)."""
    try:
        return env.str(name, default="").strip()
    except OSError as exc:
        # The message names the file and the reason, never its contents.
        raise ImproperlyConfigured(f"{name}_FILE points at an unreadable file: {exc}") from None


def secret(name: str) -> str:
    """A required secret from `NAME` or the file named by `NAME_FILE`."""
    value = _from_env_or_file(name)
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set. Run `make setup` to generate local secrets into .env, "
            f"or set {name} (or {name}_FILE) in the environment."
        )
    return value


def optional_secret(name: str) -> str:
    """A secret that may be absent (Stripe, Sentry): empty string when unset."""
    return _from_env_or_file(name)


def strict_bool(name: str, default: bool) -> bool:
    """A boolean that refuses anything but the usual spellings."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no)")


def _strict_number(name: str, default: float, minimum: float | None, cast: type, kind: str) -> Any:
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not {kind}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be >= {minimum}")
    return value


def strict_int(name: str, default: int, minimum: int | None = 0) -> int:
    return int(_strict_number(name, default, minimum, int, "an integer"))


def strict_float(name: str, default: float, minimum: float | None = 0.0) -> float:
    return float(_strict_number(name, default, minimum, float, "a number"))


def strict_url(name: str, default: str = "", schemes: tuple[str, ...] = ("http", "https")) -> str:
    raw = env.str(name, default=default)
    if raw and raw.split("://", 1)[0] not in schemes:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a URL with scheme {'/'.join(schemes)}")
    return raw.rstrip("/")


def trusted_proxies(name: str = "LEO_TRUSTED_PROXIES") -> list[str]:
    """The proxies whose X-Forwarded-For/-Proto the server believes: IP addresses or networks,
    comma-separated; empty (the default) believes nobody, so no client can name its own address.

    The one reader of that list: Django settings, deploy/gunicorn.conf.py and scripts/serve.sh all
    call this, so the servers' `forwarded_allow_ips` cannot drift from what the docs say. `*` is
    refused: it would let anyone who reaches the port reset the per-address throttles.
    """
    entries = [e.strip() for e in env.str(name, default="").split(",") if e.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not an IP address or network (e.g. 10.0.0.5 or 172.30.0.0/24)"
            ) from exc
    return entries
def egress_allow(name: str) -> EgressPolicy:
    """Comma-separated host names, IP addresses and CIDR ranges; a typo fails start-up."""
    raw = env.str(name, default="")
    try:
        return EgressPolicy.from_env_value(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r}: {exc}") from None
