"""The fake's state: the knobs and the counters, and the fault each request is given.

``FakeUpstream`` holds one ``Controls``; its public ``configure``/``reset``/``stats`` are these.
Everything here is guarded by one lock because ``run_in_thread`` serves from its own thread while
tests call ``configure``/``stats``/``reset`` from theirs; it is only held for a few dict updates.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import threading
from typing import Any

from .knobs import Knobs, validate_knobs


def _empty_stats() -> dict[str, Any]:
    return {
        "requests": 0,
        "ok": 0,
        "chat": 0,
        "completions": 0,
        "embeddings": 0,
        "models": 0,
        "errors": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "streams": 0,
        "dropped_streams": 0,
        "resets": 0,
        "hangs": 0,
        "by_status": {},
        "by_model": {},
        "auth_suffixes": {},
    }


class Controls:
    """The knobs, the seeded error_rate draws, the counters and the response-id sequence."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._knobs = Knobs()
        # Not for security: a seeded generator makes error_rate failures reproducible.
        self._rng = random.Random(0)  # noqa: S311
        self._stats = _empty_stats()
        # Per process: ids from two fakes (or two runs) never collide.
        self.nonce = secrets.token_hex(4)
        self._sequence = 0

    # -- knobs ----------------------------------------------------------------------------------

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change some knobs (validated; ValueError on a bad one); returns all knobs."""
        clean = validate_knobs(changes)
        with self._lock:
            self._knobs = dataclasses.replace(self._knobs, **clean)
            if "seed" in clean:
                self._rng = random.Random(clean["seed"])  # noqa: S311
            return self._knobs.public()

    @property
    def knobs(self) -> Knobs:
        """The current knobs (immutable snapshot)."""
        return self._knobs

    def reset(self) -> None:
        """Zero every counter and put every knob back to its default."""
        with self._lock:
            self._knobs = Knobs()
            self._rng = random.Random(0)  # noqa: S311
            self._stats = _empty_stats()

    def decide_fault(self) -> str | None:
        """Which injected fault this request gets: "hang", "reset", "error" or None.

        Read from the knobs as they are now (not at arrival), so a change made during
        ``latency_ms`` applies; the countdown knobs are consumed here.
        """
        with self._lock:
            current = self._knobs
            if current.hang:
                return "hang"
            if current.reset_connection:
                return "reset"
            if current.reset_next > 0:
                self._knobs = dataclasses.replace(current, reset_next=current.reset_next - 1)
                return "reset"
            if current.fail_next > 0:
                self._knobs = dataclasses.replace(current, fail_next=current.fail_next - 1)
                return "error"
            if current.error_rate > 0 and self._rng.random() < current.error_rate:
                return "error"
        return None

    # -- counters -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters.

        ``requests`` counts every /v1 request; ``ok + errors == requests`` once all have
        finished (a hanging request counts in ``errors`` and ``hangs`` when it starts); ``chat``,
        ``completions``, ``embeddings``, ``models`` count attempts per endpoint; ``streams``
        counts streamed answers started and ``dropped_streams`` those cut by
        ``drop_after_chunks``; ``resets`` counts connections closed without a response;
        ``prompt_tokens``/``completion_tokens`` sum the usage objects actually sent;
        ``by_status`` maps status -> count; ``by_model`` maps model ->
        ``{"requests", "prompt_tokens", "completion_tokens"}``; ``auth_suffixes`` maps the last
        4 characters of each bearer token ("" when absent) -> count.
        """
        with self._lock:
            snapshot = dict(self._stats)
            snapshot["by_status"] = dict(self._stats["by_status"])
            snapshot["by_model"] = {k: dict(v) for k, v in self._stats["by_model"].items()}
            snapshot["auth_suffixes"] = dict(self._stats["auth_suffixes"])
        return snapshot

    def arrive(self, kind: str | None, token: str | None, model: str | None) -> Knobs:
        """Count a /v1 request as it arrives; returns the knobs it is served with."""
        with self._lock:
            stats = self._stats
            stats["requests"] += 1
            if kind is not None:
                stats[kind] += 1
            suffix = token[-4:] if token else ""
            stats["auth_suffixes"][suffix] = stats["auth_suffixes"].get(suffix, 0) + 1
            if model is not None:
                entry = stats["by_model"].setdefault(model, {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
                entry["requests"] += 1
            return self._knobs

    def count(self, key: str, amount: int = 1) -> None:
        """Add to one counter (``streams``, ``resets``, ``hangs``, ...)."""
        with self._lock:
            self._stats[key] += amount

    def finish(self, status: int | None) -> None:
        """Count a finished /v1 request; ``None``: the connection was closed without a status."""
        with self._lock:
            stats = self._stats
            stats["ok" if status is not None and status < 400 else "errors"] += 1
            if status is not None:
                by_status = stats["by_status"]
                by_status[str(status)] = by_status.get(str(status), 0) + 1

    def count_usage(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Add a usage object actually sent to the totals and to its model's."""
        with self._lock:
            self._stats["prompt_tokens"] += prompt_tokens
            self._stats["completion_tokens"] += completion_tokens
            entry = self._stats["by_model"].get(model)
            if entry is not None:
                entry["prompt_tokens"] += prompt_tokens
                entry["completion_tokens"] += completion_tokens

    def next_id(self, prefix: str) -> str:
        """A response id unique in this process (``chatcmpl-...``, ``cmpl-...``)."""
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        return f"{prefix}{self.nonce}{sequence:012x}"
