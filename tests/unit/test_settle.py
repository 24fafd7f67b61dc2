"""``settle``'s own logic (the servers' side is tests/integration/test_settled_outcome.py): it waits
until the told session is gone, and says so when it cannot."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from aurora_async._settle import ServerSession, settle
from aurora_async.postgresql.driver import POSTGRESQL


def _driver(*, there: bool, alive_for: int | None) -> tuple[object, list[str]]:
    """A driver whose session is (or is not) there, and is listed ``alive_for`` more times after it is
    told to end (None: forever)."""
    calls: list[str] = []
    remaining = alive_for

    async def end_session(conn: object, session: int, age: float) -> bool:
        calls.append(f"end {session} {age:.0f}")
        return there

    async def session_alive(conn: object, session: int) -> bool:
        nonlocal remaining
        calls.append("alive?")
        if remaining is None:
            return True
        remaining -= 1
        return remaining >= 0

    return replace(POSTGRESQL, end_session=end_session, session_alive=session_alive), calls


async def test_it_waits_until_the_session_is_no_longer_listed() -> None:
    driver, calls = _driver(there=True, alive_for=3)
    opened = asyncio.get_running_loop().time() - 30
    assert await settle(driver, object(), ServerSession(7, opened), timeout=5)  # type: ignore[arg-type]
    assert calls == ["end 7 30", "alive?", "alive?", "alive?", "alive?"]


async def test_a_session_that_is_not_there_is_settled_at_once() -> None:
    driver, calls = _driver(there=False, alive_for=None)
    assert await settle(driver, object(), ServerSession(7, 0.0), timeout=5)  # type: ignore[arg-type]
    assert len(calls) == 1


async def test_a_session_that_does_not_end_in_time_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    driver, _ = _driver(there=True, alive_for=None)
    with caplog.at_level(logging.WARNING, logger="aurora_async.failover"):
        assert not await settle(driver, object(), ServerSession(7, 0.0), timeout=0.05)  # type: ignore[arg-type]
    assert "could not end the old server session 7" in caplog.text


async def test_a_refusal_is_reported() -> None:
    async def refuse(conn: object, session: int, age: float) -> bool:
        raise PermissionError("must be a member of the role whose process is being terminated")

    driver = replace(POSTGRESQL, end_session=refuse)
    assert not await settle(driver, object(), ServerSession(7, 0.0), timeout=1)
