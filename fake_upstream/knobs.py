"""The knobs: what the fake does besides answering, and the checks on changes to them.

Set through constructor kwargs, ``configure()``, ``POST /_config`` and the command's flags;
``controls.Controls`` holds the current ``Knobs`` and applies them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class Knobs:
    """What the fake does besides answering; all default to a healthy, instant upstream.

    latency_ms: sleep before the response's first byte.
    chunk_delay_ms: sleep between stream chunks.
    usage_delay_ms: sleep before a stream's usage chunk (a provider that sends usage late).
    error_rate: share (0..1) of requests that fail with ``error_status``, drawn from a
        ``random.Random(seed)`` once per request, so a sequence of requests fails the same way
        on every run.
    error_status: the status of injected failures (429 also sends ``Retry-After``).
    retry_after: seconds sent in ``Retry-After`` (and ``retry-after-ms``) with 429s.
    seed: seeds the error_rate draws; setting it restarts the sequence.
    fail_next: the next N requests fail with ``error_status`` (counts down).
    reset_next: the next N requests get their connection closed without a response.
    drop_after_chunks: a stream sends K SSE events, then the connection is closed (no [DONE]).
    reset_connection: every request gets its connection closed without any response.
    hang: every request waits without answering until the client goes away (timeout tests).
    api_key: when set, requests must carry ``Authorization: Bearer <api_key>`` or get a 401.
    """

    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    usage_delay_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    retry_after: float = 1.0
    seed: int = 0
    fail_next: int = 0
    reset_next: int = 0
    drop_after_chunks: int | None = None
    reset_connection: bool = False
    hang: bool = False
    api_key: str | None = None

    def public(self) -> dict[str, Any]:
        """The knobs as JSON-able data, with ``api_key`` reduced to whether it is set."""
        data = dataclasses.asdict(self)
        data["api_key"] = None if self.api_key is None else "set"
        return data


_KNOB_NAMES = frozenset(f.name for f in dataclasses.fields(Knobs))


def _as_number(name: str, value: Any, *, minimum: float = 0.0, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number")
    number = float(value)
    if not math.isfinite(number) or number < minimum or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be between {minimum} and {maximum if maximum is not None else 'inf'}")
    return number


def _as_int(name: str, value: Any, *, minimum: int = 0, maximum: int | None = None) -> int:
    number = _as_number(name, value, minimum=minimum, maximum=maximum)
    if number != int(number):
        raise ValueError(f"{name} must be an integer")
    return int(number)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ValueError(f"{name} must be a boolean")


def validate_knobs(changes: dict[str, Any]) -> dict[str, Any]:
    """Check and coerce knob changes (from kwargs, JSON or CLI); raises ValueError."""
    unknown = set(changes) - _KNOB_NAMES
    if unknown:
        raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("latency_ms", "chunk_delay_ms", "usage_delay_ms", "retry_after"):
            clean[name] = _as_number(name, value)
        elif name == "error_rate":
            clean[name] = _as_number(name, value, maximum=1.0)
        elif name == "error_status":
            clean[name] = _as_int(name, value, minimum=400, maximum=599)
        elif name == "seed":
            clean[name] = _as_int(name, value, minimum=-(2**63), maximum=2**63 - 1)
        elif name in ("fail_next", "reset_next"):
            clean[name] = _as_int(name, value)
        elif name == "drop_after_chunks":
            clean[name] = None if value is None else _as_int(name, value)
        elif name in ("reset_connection", "hang"):
            clean[name] = _as_bool(name, value)
        elif name == "api_key":
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError("api_key must be a non-empty string or null")
            clean[name] = value
    return clean
