"""Single-flight: identical requests in flight at once make exactly one upstream call.

The first request to arrive takes a lock (`SET NX` in Redis, so across workers and nodes; process
memory without Redis) and becomes the leader. It publishes what it receives to a stream named by
its flight id: every chunk as it arrives for streams, the whole response otherwise, then `done`.
Followers read that stream from the start, so a late follower still gets every chunk. When the
leader fails, or disappears (its lock expires without `done`), followers are released to try on
their own. With the shared state down, everyone leads: no deduplication, no errors.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from leo_optima.core.state import StateUnavailable, get_state

STREAM_TTL = 60.0
POLL_MS = 300


class Released(Exception):
    """The leader failed or vanished: the follower should call the upstream itself."""


@dataclass
class Leader:
    lock_key: str
    stream_key: str
    flight_id: str
    active: bool = True

    async def publish(self, kind: str, data: bytes = b"") -> None:
        if not self.active:
            return
        try:
            await get_state().xadd(self.stream_key, {"k": kind.encode(), "d": data}, STREAM_TTL)
        except StateUnavailable:
            self.active = False

    async def finish(self, ok: bool) -> None:
        """Publish the end marker and free the lock; later arrivals then find the exact cache."""
        if not self.active:
            return
        await self.publish("done" if ok else "error")
        try:
            await get_state().delete(self.lock_key)
        except StateUnavailable:
            pass
        self.active = False


@dataclass
class Follower:
    lock_key: str
    stream_key: str
    flight_id: str
    wait_started: float

    async def events(self, timeout: float) -> AsyncIterator[tuple[str, bytes]]:
        """Yield (kind, data) as the leader publishes: 'chunk' or 'result'. Raises Released."""
        state = get_state()
        last = "0"
        deadline = time.monotonic() + timeout
        while True:
            try:
                entries = await state.xread(self.stream_key, last, POLL_MS)
            except StateUnavailable:
                raise Released("shared state unavailable") from None
            for entry_id, fields in entries:
                last = entry_id
                kind = fields.get(b"k", b"").decode()
                if kind == "done":
                    return
                if kind == "error":
                    raise Released("leader failed")
                yield kind, fields.get(b"d", b"")
            if not entries:
                if time.monotonic() > deadline:
                    raise Released("leader too slow")
                try:
                    holder = await state.get(self.lock_key)
                except StateUnavailable:
                    raise Released("shared state unavailable") from None
                if holder is None or holder.decode() != self.flight_id:
                    # The lock is gone without a done marker we saw: one more read, then give up.
                    tail = await state.xread(self.stream_key, last, 1)
                    if not tail:
                        raise Released("leader vanished")
                    for entry_id, fields in tail:
                        last = entry_id
                        kind = fields.get(b"k", b"").decode()
                        if kind == "done":
                            return
                        if kind == "error":
                            raise Released("leader failed")
                        yield kind, fields.get(b"d", b"")


async def join(tenant_id: int, key_hash: str, stream: bool, lock_ttl: float) -> Leader | Follower | None:
    """Lead or follow the flight for this request; None when the shared state is unavailable."""
    lock_key = f"leo:sf:{tenant_id}:{key_hash}:{int(stream)}"
    state = get_state()
    for _ in range(3):
        flight_id = uuid.uuid4().hex
        try:
            if await state.set_nx(lock_key, flight_id.encode(), lock_ttl):
                return Leader(lock_key, f"{lock_key}:{flight_id}", flight_id)
            holder = await state.get(lock_key)
        except StateUnavailable:
            return None
        if holder is not None:
            fid = holder.decode()
            return Follower(lock_key, f"{lock_key}:{fid}", fid, time.monotonic())
    return None
