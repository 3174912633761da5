"""Fan-out of semantic index changes to every worker: one Redis stream, read by each worker.

Each web worker keeps its own replica of the semantic index (`semantic_replica`). A worker that
stores an entry puts it in its own replica at once; the others learn of it here. When the
write-behind writer has written the entry's row (so it has its id), it publishes
``add (id, tenant, partition, vector)``; a purge or eviction publishes ``del (tenant, ids)``.
Every worker's feed thread applies what it reads to its replica.

The feed only makes replication fast; the database stays the source of truth and the poll in
`semantic_replica` stays the catch-up path: a message lost (Redis down, a worker restarting, the
stream trimmed past a slow reader) only means waiting for the poll, and a lookup still checks an
entry's row before serving it. Without `REDIS_URL` there is no feed: one process has nothing to
tell, and the management commands' purges reach a server only through the database.

This module only moves messages (a sync Redis client, for the writer's and the feed's threads);
`semantic_replica` decides what they do to the replica.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

log = logging.getLogger(__name__)

STREAM = "leo:semantic:feed"
MAXLEN = 2_000  # ~1.6 KB each (the vector); a reader further behind than this catches up from the poll
PUBLISH_TIMEOUT = 0.25  # the writer thread must not stall on a dead Redis
COOLDOWN = 2.0  # after a failure, skip publishing for this long (the poll catches up)
IDS_PER_MESSAGE = 1000


@dataclass(frozen=True)
class Added:
    entry_id: int
    tenant_id: int
    partition: str
    vector: bytes


@dataclass(frozen=True)
class Removed:
    tenant_id: int
    entry_ids: list[int]


Message = Added | Removed


class FeedUnavailable(Exception):
    """Redis cannot be reached; the reader waits and retries."""


def parse(fields: dict[bytes, bytes]) -> Message | None:
    """A stream entry as a message, or None for one this version does not understand."""
    try:
        op = fields[b"op"]
        tenant_id = int(fields[b"t"])
        if op == b"add":
            return Added(int(fields[b"i"]), tenant_id, fields[b"p"].decode("ascii"), bytes(fields[b"v"]))
        if op == b"del":
            return Removed(tenant_id, [int(i) for i in fields[b"i"].split(b",") if i])
    except (KeyError, ValueError, UnicodeDecodeError):
        pass
    return None


class Feed:
    """Publisher and reader of the stream, over their own connections."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._publisher: redis.Redis | None = None
        self._down_until = 0.0
        self._lock = threading.Lock()

    def _publish(self, messages: list[dict[str, bytes | str]]) -> None:
        if not messages or time.monotonic() < self._down_until:
            return
        try:
            with self._lock:
                if self._publisher is None:
                    self._publisher = redis.Redis.from_url(self._url, socket_timeout=PUBLISH_TIMEOUT,
                                                           socket_connect_timeout=PUBLISH_TIMEOUT)
                pipe = self._publisher.pipeline(transaction=False)
                for fields in messages:
                    pipe.xadd(STREAM, fields, maxlen=MAXLEN, approximate=True)  # type: ignore[arg-type]
                pipe.execute()
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + COOLDOWN
            log.warning("semantic feed: publish failed (%s); other workers catch up from the database",
                        type(exc).__name__)

    def publish_added(self, entry_id: int, tenant_id: int, partition: str, vector: bytes) -> None:
        self._publish([{"op": "add", "t": str(tenant_id), "p": partition, "i": str(entry_id), "v": vector}])

    def publish_removed(self, tenant_id: int, entry_ids: list[int]) -> None:
        self._publish([{"op": "del", "t": str(tenant_id),
                        "i": ",".join(map(str, entry_ids[i:i + IDS_PER_MESSAGE]))}
                       for i in range(0, len(entry_ids), IDS_PER_MESSAGE)])

    def reader(self, block_ms: int) -> Reader:
        return Reader(self._url, block_ms)


class Reader:
    """One worker's position in the stream. Not thread-safe: one feed thread owns it."""

    def __init__(self, url: str, block_ms: int) -> None:
        # The socket must outlast the blocking read.
        self._client = redis.Redis.from_url(url, socket_timeout=block_ms / 1000 + 2.0, socket_connect_timeout=2.0)
        self._block_ms = block_ms
        self._last: str | None = None

    def read(self) -> list[Message]:
        """The messages published since the last read (since the first call, on the first),
        waiting up to `block_ms` for one."""
        try:
            if self._last is None:
                newest = self._client.xrevrange(STREAM, count=1)
                self._last = newest[0][0].decode() if newest else "0-0"
            result = self._client.xread({STREAM: self._last}, block=self._block_ms, count=1000)
        except redis.RedisError as exc:
            raise FeedUnavailable(type(exc).__name__) from exc
        out: list[Message] = []
        for _stream, entries in result or []:
            for entry_id, fields in entries:
                self._last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                message = parse(fields)
                if message is not None:
                    out.append(message)
        return out


_feed: Feed | None = None
_feed_lock = threading.Lock()


def get_feed() -> Feed | None:
    """The process's feed, or None without `REDIS_URL`."""
    global _feed
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    if _feed is None:
        with _feed_lock:
            if _feed is None:
                _feed = Feed(url)
    return _feed


def publish_added(entry_id: int, tenant_id: int, partition: str, vector: bytes) -> None:
    feed = get_feed()
    if feed is not None:
        feed.publish_added(entry_id, tenant_id, partition, vector)


def publish_removed(tenant_id: int, entry_ids: list[int]) -> None:
    feed = get_feed()
    if feed is not None and entry_ids:
        feed.publish_removed(tenant_id, entry_ids)
