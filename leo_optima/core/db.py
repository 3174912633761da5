"""Running ORM code from the async hot path, and what the databases cannot store.

`run_db` runs a function in a worker thread (not the single thread-sensitive executor, which would
serialise every request of a worker) and releases that thread's connection afterwards
(`release_connections`), since threads of the executor live outside Django's request cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")


def release_connections() -> None:
    """Give back what this thread's connections hold, for threads outside Django's request cycle.

    A PostgreSQL connection goes back to the psycopg pool. A healthy SQLite connection stays with its
    thread: opening one costs about a millisecond (a file open plus Django registering its SQL
    functions), paid on every lookup of the hot path otherwise, and the executor's few threads are
    reused. One that saw an error, or is inside a transaction, is closed so the next call starts clean.
    """
    for conn in connections.all(initialized_only=True):
        if (conn.vendor == "sqlite" and conn.connection is not None and not conn.errors_occurred
                and not conn.in_atomic_block and conn.get_autocommit()):
            continue
        conn.close()


def _closing(fn: Callable[P, R]) -> Callable[P, R]:
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            release_connections()

    return wrapper


async def run_db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    return await sync_to_async(_closing(fn), thread_sensitive=False)(*args, **kwargs)


def has_nul(value: Any) -> bool:
    """Whether any string in a JSON-like value holds a NUL character, which PostgreSQL's text and
    jsonb refuse (a DataError on save). Iterative, so deep nesting cannot exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def refuse_nul(value: Any) -> None:
    """Model field validator: a NUL anywhere in the value is a form error (admin and portal alike)
    instead of a DataError from PostgreSQL on save."""
    if has_nul(value):
        raise ValidationError("Text here must not contain NUL characters (\\u0000).", code="null_characters")
