"""Small structured-concurrency helpers on plain asyncio: one owner for background tasks, races,
interruptible waits, back-off, and objects to await or use with ``async with``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class TaskOwner:
    """The one owner of an object's background tasks: it starts them (:meth:`spawn`), and stops them
    all and waits for their end (:meth:`aclose`; :meth:`cancel` when it cannot wait). A task group
    would do, but a cluster lives as long as its last connection, across tasks, and a task group must
    be left by the task that entered it."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    def spawn(self, work: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``work`` as a task of this owner."""
        if self._closed:
            work.close()
            raise RuntimeError(f"cannot start {name}: its owner is closed")
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel(self) -> None:
        """Stop every task (they end at their next await); start no more."""
        self._closed = True
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        """:meth:`cancel`, and wait until every task has ended."""
        self.cancel()
        while self._tasks:
            await asyncio.wait(set(self._tasks))


class Backoff:
    """Exponential back-off: pause ``n`` is ``min(ceiling, initial * 2**n)``; with an ``rng``, "equal
    jitter" draws it between half of that and the whole. :meth:`delay` gives pause ``n``;
    :meth:`pause` sleeps the next one (and :meth:`reset` starts over)."""

    def __init__(self, initial: float, ceiling: float, *, rng: random.Random | None = None) -> None:
        self.initial, self.ceiling = initial, max(initial, ceiling)
        self._rng = rng
        self._attempt = 0

    def delay(self, attempt: int) -> float:
        """Pause number ``attempt`` (from 0)."""
        top = min(self.ceiling, self.initial * 2 ** min(attempt, 32))
        return top if self._rng is None else self._rng.uniform(top / 2, top)

    def reset(self) -> None:
        self._attempt = 0

    async def pause(self, deadline: float) -> None:
        """Sleep the next pause, never past ``deadline`` (the loop's clock)."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(min(self.delay(self._attempt), max(0.0, deadline - loop.time())))
        self._attempt += 1


class AwaitableContext(Generic[T]):
    """What ``connect()`` and friends return: ``await`` it for the object, or use it as an async
    context manager that closes the object at the end (``close`` is called with it)."""

    def __init__(
        self, make: Callable[[], Awaitable[T]], close: Callable[[T, BaseException | None], Awaitable[Any]]
    ) -> None:
        self._make = make
        self._close = close
        self._made: T | None = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._make().__await__()

    async def __aenter__(self) -> T:
        self._made = await self._make()
        return self._made

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._made is not None:
            made, self._made = self._made, None
            await self._close(made, exc)


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
