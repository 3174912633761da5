"""The process-local state (the embedded mode's stand-in for Redis) stays within its bounds."""

from __future__ import annotations

import asyncio

from leo_optima.core.state import LocalState


def run(coro):  # noqa: ANN001, ANN201 - a tiny helper for coroutines under test
    return asyncio.run(coro)


def test_cached_answers_are_evicted_least_recently_used_first_within_the_byte_budget() -> None:
    state = LocalState(max_items=1_000, max_bytes=10_000)

    async def scenario() -> list[bytes | None]:
        for i in range(5):
            await state.set(f"k{i}", bytes(3_000), ttl=60)  # 3 fit under 10,000 bytes
            if i == 2:
                await state.get("k0")  # k0 becomes the most recently used
        return [await state.get(f"k{i}") for i in range(5)]

    held = run(scenario())
    assert [v is not None for v in held] == [True, False, False, True, True]
    assert state._bytes <= 10_000


def test_the_item_count_is_bounded_too() -> None:
    state = LocalState(max_items=3, max_bytes=10**9)

    async def scenario() -> int:
        for i in range(10):
            await state.add(f"counter{i}", 1, ttl=60)
        return sum([await state.get(f"counter{i}") is not None for i in range(10)])

    assert run(scenario()) == 3


def test_replacing_expiring_and_deleting_keep_the_byte_count_exact() -> None:
    state = LocalState()

    async def scenario() -> None:
        await state.set("a", b"x" * 100, ttl=60)
        await state.set("a", b"x" * 10, ttl=60)  # replaced, not added
        await state.set("gone", b"y" * 50, ttl=-1)  # already expired
        assert await state.get("gone") is None
        await state.add("n", 5, ttl=60)
        await state.add("n", 995, ttl=60)  # "5" -> "1000"
        assert await state.get("n") == b"1000"
        assert state._bytes == len("a") + 10 + len("n") + 4
        await state.delete("a", "n")
        assert state._bytes == 0

    run(scenario())


def test_one_answer_larger_than_the_budget_is_still_kept() -> None:
    state = LocalState(max_bytes=100)

    async def scenario() -> bytes | None:
        await state.set("small", b"s", ttl=60)
        await state.set("big", bytes(1_000), ttl=60)
        assert await state.get("small") is None
        return await state.get("big")

    assert run(scenario()) == bytes(1_000)
