"""Shared, async state for the hot path: cache values, counters, locks and streams.

Redis when `REDIS_URL` is set (shared by every worker and node), otherwise process-local memory
(the embedded default runs one process). Every caller treats `StateUnavailable` as "no shared
state right now": caches miss, single-flight degrades to per-process, rate limits fall back to
per-process limits. A short circuit breaker keeps a dead Redis from adding a timeout to every request.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions
from django.conf import settings


class StateUnavailable(Exception):
    """The shared store cannot be reached; callers degrade rather than fail."""


class State(Protocol):
    shared: bool

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: float) -> None: ...
    async def delete(self, *keys: str) -> None: ...
    async def set_nx(self, key: str, value: bytes, ttl: float) -> bool: ...
    async def admit(self, checks: list[tuple[str, int, int, float]]) -> tuple[bool, int]: ...
    async def add(self, key: str, amount: int, ttl: float) -> int: ...
    async def xadd(self, key: str, fields: dict[str, bytes], ttl: float) -> None: ...
    async def xread(self, key: str, last_id: str, block_ms: int) -> list[tuple[str, dict[bytes, bytes]]]: ...
    async def ping(self) -> bool: ...


# --- process-local ------------------------------------------------------------------------------

@dataclass
class _Item:
    value: bytes
    expires: float


@dataclass
class _Stream:
    entries: list[tuple[str, dict[bytes, bytes]]] = field(default_factory=list)
    expires: float = 0.0
    event: asyncio.Event = field(default_factory=asyncio.Event)


class LocalState:
    """In-process store. Everything runs on the event loop thread, so each method is atomic."""

    shared = False

    def __init__(self, max_items: int = 100_000, max_bytes: int = 32 * 2**20) -> None:
        # Both bounds hold: the count for counters and locks, the bytes for cached answers. A
        # count alone let 100,000 answers of about 1 KB hold some 150 MB of a worker's memory.
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._streams: dict[str, _Stream] = {}
        self._max = max_items
        self._max_bytes = max_bytes
        self._bytes = 0  # keys and values held, the part that grows with what is cached
        self._next_sweep = 0.0

    @staticmethod
    def _size(key: str, item: _Item) -> int:
        return len(key) + len(item.value)

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= self._size(key, item)

    def _live(self, key: str) -> _Item | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item.expires <= time.monotonic():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item

    async def get(self, key: str) -> bytes | None:
        item = self._live(key)
        return item.value if item else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self._drop(key)
        item = _Item(value, time.monotonic() + ttl)
        self._items[key] = item
        self._bytes += self._size(key, item)
        # Least recently used first; the item just set stays even when it alone is over budget.
        while len(self._items) > 1 and (len(self._items) > self._max or self._bytes > self._max_bytes):
            self._drop(next(iter(self._items)))

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._drop(key)
            self._streams.pop(key, None)

    async def set_nx(self, key: str, value: bytes, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, ttl)
        return True

    async def admit(self, checks: list[tuple[str, int, int, float]]) -> tuple[bool, int]:
        """checks: (key, amount, limit, ttl). All-or-nothing; returns (admitted, index of the failed check)."""
        for i, (key, amount, limit, _ttl) in enumerate(checks):
            item = self._live(key)
            current = int(item.value) if item else 0
            if current + amount > limit:
                return False, i
        for key, amount, _limit, ttl in checks:
            await self.add(key, amount, ttl)
        return True, -1

    async def add(self, key: str, amount: int, ttl: float) -> int:
        item = self._live(key)
        value = str((int(item.value) if item else 0) + amount).encode()
        if item is None:
            await self.set(key, value, ttl)
        else:
            self._bytes += len(value) - len(item.value)
            item.value = value
        return int(value)

    async def xadd(self, key: str, fields: dict[str, bytes], ttl: float) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:  # streams outlive their flights by `ttl`: sweep, once a second
            self._next_sweep = now + 1.0
            for old in [k for k, st in self._streams.items() if st.expires < now]:
                del self._streams[old]
        stream = self._streams.setdefault(key, _Stream())
        stream.entries.append((str(len(stream.entries) + 1), {k.encode(): v for k, v in fields.items()}))
        stream.expires = time.monotonic() + ttl
        stream.event.set()
        stream.event = asyncio.Event()

    async def xread(self, key: str, last_id: str, block_ms: int) -> list[tuple[str, dict[bytes, bytes]]]:
        stream = self._streams.get(key)
        start = int(last_id.split("-")[0]) if last_id not in ("0", "0-0") else 0
        if stream is None or len(stream.entries) <= start:
            if stream is None:
                stream = self._streams.setdefault(key, _Stream(expires=time.monotonic() + 60))
            try:
                await asyncio.wait_for(stream.event.wait(), block_ms / 1000)
            except TimeoutError:
                return []
        return stream.entries[start:]

    async def ping(self) -> bool:
        return True


# --- Redis --------------------------------------------------------------------------------------

# All-or-nothing admission: every counter must stay within its limit, then all are incremented.
_ADMIT = """
for i = 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current + tonumber(ARGV[3*i-2]) > tonumber(ARGV[3*i-1]) then return i end
end
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[3*i-2])
  if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[3*i]) end
end
return 0
"""

_ADD = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""


class RedisState:
    """Redis-backed store with a circuit breaker: after a failure, skip Redis for `cooldown` seconds."""

    shared = True

    def __init__(self, url: str, timeout: float = 0.5, cooldown: float = 2.0) -> None:
        self._url = url
        self._timeout = timeout
        self._cooldown = cooldown
        self._down_until = 0.0
        self._clients: dict[int, object] = {}

    def _client(self):  # type: ignore[no-untyped-def]
        # A client per event loop: redis.asyncio connections belong to the loop that made them.
        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get(loop_id)
        if client is None:
            client = aioredis.Redis.from_url(
                self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
                health_check_interval=30, max_connections=256,
            )
            self._clients[loop_id] = client
        return client

    async def _call(self, name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if time.monotonic() < self._down_until:
            raise StateUnavailable("redis circuit open")
        try:
            return await getattr(self._client(), name)(*args, **kwargs)
        except (TimeoutError, OSError) as exc:
            self._trip()
            raise StateUnavailable(str(exc)) from exc
        except Exception as exc:
            if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
                self._trip()
                raise StateUnavailable(str(exc)) from exc
            raise

    def _trip(self) -> None:
        self._down_until = time.monotonic() + self._cooldown

    async def get(self, key: str) -> bytes | None:
        return await self._call("get", key)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self._call("set", key, value, px=max(1, int(ttl * 1000)))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._call("delete", *keys)

    async def set_nx(self, key: str, value: bytes, ttl: float) -> bool:
        return bool(await self._call("set", key, value, px=max(1, int(ttl * 1000)), nx=True))

    async def admit(self, checks: list[tuple[str, int, int, float]]) -> tuple[bool, int]:
        args: list[int] = []
        for _key, amount, limit, ttl in checks:
            args += [amount, limit, max(1, int(ttl * 1000))]
        failed = int(await self._call("eval", _ADMIT, len(checks), *[c[0] for c in checks], *args))
        return failed == 0, failed - 1

    async def add(self, key: str, amount: int, ttl: float) -> int:
        return int(await self._call("eval", _ADD, 1, key, amount, max(1, int(ttl * 1000))))

    async def xadd(self, key: str, fields: dict[str, bytes], ttl: float) -> None:
        client = self._client()
        if time.monotonic() < self._down_until:
            raise StateUnavailable("redis circuit open")
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.xadd(key, fields)
                pipe.pexpire(key, max(1, int(ttl * 1000)))
                await pipe.execute()
        except Exception as exc:
            self._trip()
            raise StateUnavailable(str(exc)) from exc

    async def xread(self, key: str, last_id: str, block_ms: int) -> list[tuple[str, dict[bytes, bytes]]]:
        result = await self._call("xread", {key: last_id}, block=block_ms, count=1000)
        if not result:
            return []
        return [(eid.decode() if isinstance(eid, bytes) else eid, data) for eid, data in result[0][1]]

    async def ping(self) -> bool:
        return bool(await self._call("ping"))


_state: State | None = None


def get_state() -> State:
    global _state
    if _state is None:
        url = getattr(settings, "REDIS_URL", "")
        _state = RedisState(url) if url else LocalState()
    return _state


def reset_state_for_tests(state: State | None = None) -> None:
    global _state
    _state = state
