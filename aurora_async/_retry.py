"""``retry_on_failover``: re-run a unit of work that a failover interrupted.

A unit of work interrupted by ``FailoverSuccessError`` or ``TransactionResolutionUnknownError`` can be
run again on the connection that failed over (or on a fresh one from a pool). Whether that is safe is
the application's call: a unit that was cut off during its COMMIT may have committed, so re-running it
must be idempotent (an upsert, a unique key, a check first). ``FailoverFailedError`` and every other
error are not retried.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, overload

from ._exceptions import FailoverSuccessError, TransactionResolutionUnknownError

log = logging.getLogger("aurora_async.failover")

P = ParamSpec("P")
T = TypeVar("T")
RETRYABLE = (FailoverSuccessError, TransactionResolutionUnknownError)


class RetryState:
    """What one retried unit of work knows about its attempts (``async for attempt in ...``)."""

    def __init__(self, attempts: int, deadline: float | None) -> None:
        self.attempts = attempts
        self.deadline = deadline
        self.number = 0  # 1 for the first attempt
        self.last_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<RetryState attempt {self.number} of {self.attempts}>"


@overload
def retry_on_failover(
    fn: Callable[P, Awaitable[T]],
    *,
    attempts: int = ...,
    deadline: float | None = ...,
    retry_if: Callable[[BaseException], bool] | None = ...,
) -> Callable[P, Awaitable[T]]: ...


@overload
def retry_on_failover(
    fn: None = None,
    *,
    attempts: int = ...,
    deadline: float | None = ...,
    retry_if: Callable[[BaseException], bool] | None = ...,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]: ...


def retry_on_failover(
    fn: Callable[P, Awaitable[T]] | None = None,
    *,
    attempts: int = 3,
    deadline: float | None = None,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> Any:
    """Re-run an async unit of work after ``FailoverSuccessError`` / ``TransactionResolutionUnknownError``.

    As a decorator (``@retry_on_failover`` or ``@retry_on_failover(attempts=5, deadline=30)``) or as a
    call (``await retry_on_failover(work, attempts=3)()``). Each attempt must do the whole unit again:
    the connection is on another instance and any transaction it had is gone. The work must be
    idempotent, because a unit that failed during its COMMIT may have committed.

    :param attempts: at most this many runs in all (>= 1); the last error is raised after that.
    :param deadline: seconds from the first attempt after which no new attempt starts.
    :param retry_if: also retry errors for which this returns True (another library's way of saying
        "the connection failed over", e.g. SQLAlchemy's ``DBAPIError`` with ``connection_invalidated``).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts!r}")
    if deadline is not None and deadline <= 0:
        raise ValueError(f"deadline must be a positive number of seconds, not {deadline!r}")

    def decorate(work: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(work)
        async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            async for attempt in attempts_of(attempts=attempts, deadline=deadline, retry_if=retry_if):
                async with attempt:
                    return await work(*args, **kwargs)
            raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

        return retried

    return decorate if fn is None else decorate(fn)


class _Attempt:
    """``async with attempt:`` swallows a retryable failover error unless it is the last chance."""

    def __init__(
        self, state: RetryState, last: Callable[[], bool], retry_if: Callable[[BaseException], bool] | None
    ) -> None:
        self._state = state
        self._last = last
        self._retry_if = retry_if
        self.failed = False

    async def __aenter__(self) -> RetryState:
        return self._state

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        retryable = isinstance(exc, RETRYABLE) or (
            isinstance(exc, Exception) and self._retry_if is not None and self._retry_if(exc)
        )
        if exc is None or not retryable or self._last():
            return False
        self.failed = True
        self._state.last_error = exc
        log.info("attempt %d interrupted by %s: retrying", self._state.number, type(exc).__name__)
        return True


async def attempts_of(
    *,
    attempts: int = 3,
    deadline: float | None = None,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> AsyncIterator[_Attempt]:
    """The async-iterator form, for a unit of work written inline::

        async for attempt in aurora_async.attempts_of(attempts=3):
            async with attempt:
                async with conn.transaction():
                    ...

    The loop ends after the first attempt that did not raise a failover error; the last allowed
    attempt's error propagates.
    """
    loop = asyncio.get_running_loop()
    ends = None if deadline is None else loop.time() + deadline
    state = RetryState(attempts, deadline)

    def last() -> bool:
        return state.number >= attempts or (ends is not None and loop.time() >= ends)

    while True:
        state.number += 1
        attempt = _Attempt(state, last, retry_if)
        yield attempt
        if not attempt.failed:
            return
