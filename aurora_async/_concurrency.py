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


class Interrupted(Exception):
    """:func:`unless_set`'s event fired before the work finished."""


async def unless_set(event: asyncio.Event, work: Awaitable[T], *, discard: Callable[[T], None]) -> T:
    """``await work``, unless ``event`` is set first: then the work is cancelled and awaited, and
    :class:`Interrupted` is raised. The work runs as a task of its own that never outlives this call
    (also when the caller is cancelled); a result nobody will take is handed to ``discard``."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(event.wait())
    handed_over = False
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
        if not event.is_set():
            handed_over = True
            return task.result()  # the work's result, or its exception
    finally:
        waiter.cancel()
        task.cancel()
        await asyncio.wait((task, waiter))
        if not handed_over and task.done() and not task.cancelled() and task.exception() is None:
            discard(task.result())
    raise Interrupted
