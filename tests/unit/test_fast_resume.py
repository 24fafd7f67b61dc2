"""The opener's wait for a resuming instance (Serverless v2 auto-pause), socket-free: a stub driver
whose connect is held until a moment on the virtual clock, and whose TCP check answers as scripted."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from aurora_async._auth import Authenticator
from aurora_async._config import parse
from aurora_async._identity import Identities
from aurora_async._opener import Opener
from aurora_async.postgresql.driver import POSTGRESQL
from tests.unit.fake_driver import VirtualClock


class Host:
    """One scripted host: logins are held until ``resumes_at`` (loop clock); ``accepts_tcp``."""

    def __init__(self, *, resumes_at: float = 0.0, accepts_tcp: bool = True, refuses: bool = False) -> None:
        self.resumes_at = resumes_at
        self.accepts = accepts_tcp
        self.refuses = refuses
        self.opens: list[float] = []
        self.tcp_checks = 0

    async def open(self, identity: Any, host: str, port: int, timeout: float, auth: Any) -> Any:
        loop = asyncio.get_running_loop()
        self.opens.append(timeout)
        if self.refuses:
            raise ConnectionRefusedError("refused")
        async with asyncio.timeout(timeout):
            await asyncio.sleep(max(0.0, self.resumes_at - loop.time()))
        return object()

    async def accepts_tcp(self, host: str, port: int, timeout: float) -> bool:
        self.tcp_checks += 1
        return self.accepts


def _opener(host: Host) -> Opener:
    driver = dataclasses.replace(POSTGRESQL, open=host.open, accepts_tcp=host.accepts_tcp)
    return Opener(driver, cast(Authenticator, None), Identities())


@pytest.fixture
async def clock() -> AsyncIterator[VirtualClock]:
    with VirtualClock() as virtual:
        yield virtual


IDENTITY = parse(host="db.example.invalid", connect_timeout=10, resume_timeout=30).identity


async def test_a_silent_host_that_accepts_tcp_gets_the_resume_budget(
    clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    host = Host(resumes_at=loop.time() + 15)
    opener = _opener(host)
    caplog.set_level(logging.WARNING, logger="aurora_async.connect")
    started = loop.time()
    assert await opener.open_as(IDENTITY, "h", 5432, 10, resume_within=30) is not None
    assert 15 - 1e-6 <= loop.time() - started < 16  # float rounding of the virtual clock
    assert host.tcp_checks == 1 and host.opens[0] == 10 and 19 < host.opens[1] <= 20  # 30 in all
    host.resumes_at = loop.time() + 15  # paused again: said once per endpoint
    await opener.open_as(IDENTITY, "h", 5432, 10, resume_within=30)
    assert len([r for r in caplog.records if "Serverless v2" in r.getMessage()]) == 1


async def test_the_budget_bounds_the_whole_connect(clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    host = Host(resumes_at=loop.time() + 100)
    started = loop.time()
    with pytest.raises(TimeoutError):
        await _opener(host).open_as(IDENTITY, "h", 5432, 10, resume_within=30)
    # (the virtual clock adds to the loop's own start time: allow for float rounding of the difference)
    assert 30 - 1e-6 <= loop.time() - started < 31


@pytest.mark.parametrize("resume_within", [0.0, 10.0])
async def test_no_budget_beyond_the_connect_timeout_means_no_wait(
    clock: VirtualClock, resume_within: float
) -> None:
    loop = asyncio.get_running_loop()
    host = Host(resumes_at=loop.time() + 15)
    started = loop.time()
    with pytest.raises(TimeoutError):
        await _opener(host).open_as(IDENTITY, "h", 5432, 10, resume_within=resume_within)
    assert loop.time() - started < 10.5 and host.tcp_checks == 0 and len(host.opens) == 1


async def test_a_host_that_does_not_accept_tcp_fails_at_the_connect_timeout(clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    host = Host(resumes_at=loop.time() + 15, accepts_tcp=False)
    started = loop.time()
    with pytest.raises(TimeoutError):
        await _opener(host).open_as(IDENTITY, "h", 5432, 10, resume_within=30)
    assert loop.time() - started < 10.5 and host.tcp_checks == 1 and len(host.opens) == 1


async def test_a_refusing_host_is_not_checked(clock: VirtualClock) -> None:
    host = Host(refuses=True)
    with pytest.raises(ConnectionRefusedError):
        await _opener(host).open_as(IDENTITY, "h", 5432, 10, resume_within=30)
    assert host.tcp_checks == 0 and len(host.opens) == 1
