"""The micro-batcher: concurrent lookups' texts embedded together, off the event loop.

``MicroBatcher.submit`` queues a text for one background thread, which takes everything queued (up
to ``max_batch``, waiting at most ``wait`` seconds for more when set), embeds the distinct texts in
one ``infer`` call and resolves each request's future on its own event loop. With no wait, a lone
request starts at once (no added latency at one connection) and, under load, the texts that arrive
while a batch runs form the next batch: one thread hop per batch instead of per request, no thread
pool, and duplicate texts in a batch are embedded once.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

Infer = Callable[[list[str]], np.ndarray]
_Waiter = tuple[str, "asyncio.Future[np.ndarray]", asyncio.AbstractEventLoop]


class MicroBatcher:
    """One background thread that embeds whatever lookups are queued, a batch at a time.

    Requests from any event loop put ``(text, future, loop)`` on the queue; the thread resolves
    each future through its loop's ``call_soon_threadsafe``. The thread starts on first use and
    again in a forked child."""

    def __init__(self, infer: Infer, max_batch: int, wait: float) -> None:
        self._infer = infer
        self.max_batch = max(1, max_batch)
        self.wait = wait
        self._queue: deque[_Waiter] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.batches = 0
        self.texts = 0
        self.largest = 0

    def submit(self, text: str) -> asyncio.Future[np.ndarray]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        with self._cond:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="leo-embed", daemon=True)
                self._thread.start()
            self._queue.append((text, future, loop))
            self._cond.notify()
        return future

    def _take(self) -> list[_Waiter]:
        with self._cond:
            while not self._queue:
                self._cond.wait()
            if self.wait > 0 and len(self._queue) < self.max_batch:
                deadline = time.monotonic() + self.wait
                while len(self._queue) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            n = min(len(self._queue), self.max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while True:
            batch = self._take()
            distinct = list(dict.fromkeys(text for text, _, _ in batch))
            try:
                vectors = dict(zip(distinct, self._infer(distinct), strict=True))
            except BaseException as exc:  # every waiter gets the error; the thread lives on
                for _, future, loop in batch:
                    _settle(loop, _reject, future, exc)
                continue
            self.batches += 1
            self.texts += len(batch)
            self.largest = max(self.largest, len(batch))
            for text, future, loop in batch:
                _settle(loop, _resolve, future, vectors[text])


def _settle(loop: asyncio.AbstractEventLoop, how: Any, future: asyncio.Future[np.ndarray], value: Any) -> None:
    try:
        loop.call_soon_threadsafe(how, future, value)
    except RuntimeError:  # that loop closed meanwhile (a finished asyncio.run): nobody is waiting
        pass


def _resolve(future: asyncio.Future[np.ndarray], vector: np.ndarray) -> None:
    if not future.done():  # the request may have been cancelled meanwhile
        future.set_result(vector)


def _reject(future: asyncio.Future[np.ndarray], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
