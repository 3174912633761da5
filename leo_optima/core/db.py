"""Running ORM code from the async hot path, and what the databases cannot store.

`run_db` runs a function in a worker thread (not the single thread-sensitive executor, which would
serialise every request of a worker) and closes that thread's connection afterwards, returning it to
the psycopg pool, since threads of the executor live outside Django's request cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")


def _closing(fn: Callable[P, R]) -> Callable[P, R]:
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

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
