"""retry_on_failover / attempts_of without sockets: which errors are retried, how often, how long."""

from __future__ import annotations

import asyncio

import pytest

import aurora_async
from aurora_async import FailoverFailedError, FailoverSuccessError, TransactionResolutionUnknownError


async def test_retries_failover_errors_until_the_work_succeeds() -> None:
    calls = []

    @aurora_async.retry_on_failover(attempts=3)
    async def work(value: int) -> int:
        calls.append(value)
        if len(calls) == 1:
            raise FailoverSuccessError("moved")
        if len(calls) == 2:
            raise TransactionResolutionUnknownError("cut off")
        return value * 2

    assert await work(21) == 42
    assert calls == [21, 21, 21]
    assert work.__name__ == "work"


async def test_the_last_attempts_error_propagates() -> None:
    calls = 0

    async def always_moving() -> None:
        nonlocal calls
        calls += 1
        raise FailoverSuccessError(f"attempt {calls}")

    with pytest.raises(FailoverSuccessError, match="attempt 2"):
        await aurora_async.retry_on_failover(always_moving, attempts=2)()
    assert calls == 2


@pytest.mark.parametrize("error", [FailoverFailedError("gone"), ValueError("bug"), asyncio.CancelledError()])
async def test_other_errors_are_not_retried(error: BaseException) -> None:
    calls = 0

    @aurora_async.retry_on_failover
    async def work() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await work()
    assert calls == 1


async def test_no_new_attempt_starts_after_the_deadline() -> None:
    calls = 0

    @aurora_async.retry_on_failover(attempts=1000, deadline=0.05)
    async def slow() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)  # the work itself takes time (not a synchronisation wait)
        raise FailoverSuccessError("moved")

    with pytest.raises(FailoverSuccessError):
        await slow()
    assert 2 <= calls <= 5


async def test_inline_form_and_its_state() -> None:
    seen = []
    async for attempt in aurora_async.attempts_of(attempts=3):
        async with attempt as state:
            seen.append(state.number)
            if state.number < 3:
                raise TransactionResolutionUnknownError("again")
    assert seen == [1, 2, 3]
    assert isinstance(state.last_error, TransactionResolutionUnknownError)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        aurora_async.retry_on_failover(attempts=0)
    with pytest.raises(ValueError, match="deadline"):
        aurora_async.retry_on_failover(deadline=-1)


async def test_retry_if_adds_other_libraries_failover_errors() -> None:
    class Invalidated(Exception):
        connection_invalidated = True

    calls = 0

    @aurora_async.retry_on_failover(retry_if=lambda e: getattr(e, "connection_invalidated", False))
    async def work() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Invalidated()
        if calls == 2:
            raise FailoverSuccessError("still retried")
        return "done"

    assert await work() == "done" and calls == 3
    with pytest.raises(KeyError):  # retry_if says no: not retried
        await aurora_async.retry_on_failover(_raise_key_error, retry_if=lambda e: False)()


async def _raise_key_error() -> None:
    raise KeyError("x")
