"""Small structured-concurrency helpers on plain asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


async def race_first(
    attempts: Sequence[Callable[[], Awaitable[T | None]]],
    *,
    discard: Callable[[T], None],
) -> T | None:
    """Run ``attempts`` concurrently; return the first non-None result, or None if none produced one.

    Every other attempt is cancelled and awaited before this returns (also when the caller is
    cancelled); a result that arrives too late to win is handed to ``discard`` (close it there).
    Exceptions of individual attempts count as "no result".
    """
    tasks = [asyncio.ensure_future(attempt()) for attempt in attempts]
    winner: T | None = None
    try:
        pending = set(tasks)
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                result = _result(task)
                if result is None:
                    continue
                if winner is None:
                    winner = result
                else:
                    discard(result)
        return winner
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)  # all cancelled: quick, and nothing outlives the race
        for task in tasks:
            late = _result(task)
            if late is not None and late is not winner:
                discard(late)


def retrieve_exception(future: asyncio.Future[Any]) -> None:
    """Done callback for a shared future whose waiters may all have been cancelled: mark its
    exception retrieved, so that asyncio does not warn "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


def _result(task: asyncio.Future[T | None]) -> T | None:
    if task.cancelled() or task.exception() is not None:
        return None
    return task.result()
