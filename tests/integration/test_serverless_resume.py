"""Aurora Serverless v2 auto-pause: a paused instance accepts TCP and holds logins while it resumes
(``sim.pause``). An application's own connect waits for it up to ``resume_timeout``; a host that
refuses connections fails as before; the writer search and host monitoring keep their own deadlines,
so a black-holed instance (which, behind the simulator's proxy, also accepts TCP) slows neither.

Small numbers keep it fast: the instance resumes 2 s after the first connection attempt, the connect
timeout is 0.5 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import aurora_async
from aurora_async import FailoverSuccessError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually
from tests.integration._engine_ops import EngineOps
from tests.paused import LOST, plain_connect

RESUME = 2.0
CONNECT_TIMEOUT = 0.5


def _options(ops: EngineOps, **extra: Any) -> dict[str, Any]:
    # reader_or_writer: a connection to a replica's own endpoint stays there
    return ops.options(failover_mode="reader_or_writer", connect_timeout=CONNECT_TIMEOUT, **extra)


async def test_connect_to_a_paused_instance_waits_for_it_to_resume(
    sim: AuroraSimulator, ops: EngineOps, caplog: pytest.LogCaptureFixture
) -> None:
    await sim.pause("12", resume_seconds=RESUME)
    caplog.set_level(logging.WARNING, logger="aurora_async.connect")
    started = time.monotonic()
    conn = await aurora_async.connect(sim.dsn("12"), **_options(ops))  # resume_timeout: 30 by default
    waited = time.monotonic() - started
    try:
        assert RESUME - 0.2 <= waited < RESUME + 5, waited
        assert conn.instance.instance_id == "12"
        assert await ops.host_id(conn) == "12"  # the session really is on the resumed instance
    finally:
        await ops.close(conn)
    said = [r.getMessage() for r in caplog.records if "Serverless v2" in r.getMessage()]
    assert len(said) == 1 and "resume_timeout" in said[0], said

    # the same connect with the plain driver and the same timeout fails
    await sim.pause("12", resume_seconds=RESUME)
    with pytest.raises(TimeoutError):
        await plain_connect(sim, "12", CONNECT_TIMEOUT)


async def test_resume_timeout_shorter_than_the_resume_fails_in_bounded_time(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    await sim.pause("12", resume_seconds=60)
    started = time.monotonic()
    with pytest.raises(ops.connect_timed_out) as raised:
        await aurora_async.connect(sim.dsn("12"), **_options(ops, resume_timeout=1.5))
    assert 1.4 <= time.monotonic() - started < 4
    assert isinstance(raised.value, TimeoutError) or isinstance(raised.value.__cause__, TimeoutError)
    started = time.monotonic()
    with pytest.raises(ops.connect_timed_out):  # resume_timeout=0: no wait beyond connect_timeout
        await aurora_async.connect(sim.dsn("12"), **_options(ops, resume_timeout=0))
    assert time.monotonic() - started < 1.5


async def test_a_refused_or_crashed_host_does_not_wait_for_a_resume(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    await sim.crash("12")
    started = time.monotonic()
    with pytest.raises(LOST):
        await aurora_async.connect(sim.dsn("12"), **_options(ops, resume_timeout=30))
    assert time.monotonic() - started < 2


async def test_failover_to_a_paused_replica_resumes_it(sim: AuroraSimulator, ops: EngineOps) -> None:
    async with aurora_async.connect(
        sim.dsn("cluster"), **ops.options(connect_timeout=CONNECT_TIMEOUT, failover_timeout=20)
    ) as conn:
        assert conn.instance.instance_id == "11"
        await sim.pause("12", resume_seconds=RESUME)
        report = await sim.failover(target="12")
        started = time.monotonic()
        with pytest.raises(FailoverSuccessError):
            await ops.scalar(conn, "SELECT 1")
        assert time.monotonic() - started < 15  # within failover_timeout, after the resume
        assert report.new_writer == "12" and conn.instance.instance_id == "12"
        assert await ops.host_id(conn) == "12"
        assert not await ops.is_reader(conn)


async def test_strict_reader_failover_waits_for_a_paused_replica(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    options = ops.options(failover_mode="strict_reader", connect_timeout=CONNECT_TIMEOUT)
    async with aurora_async.connect(sim.dsn("13"), **options) as conn:
        assert conn.instance.instance_id == "13"
        await sim.pause("12", resume_seconds=RESUME)
        await sim.crash("13")
        with pytest.raises(FailoverSuccessError):
            await ops.scalar(conn, "SELECT 1")
        assert conn.instance.instance_id == "12" and await ops.host_id(conn) == "12"
        assert await ops.is_reader(conn)


async def test_a_black_holed_replica_does_not_slow_the_writer_search(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    # default connect_timeout (10 s) and resume_timeout (30 s): the search must not wait for either
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options()) as conn:
        await sim.blackhole("13")
        failover = asyncio.ensure_future(sim.failover(target="12"))
        started = time.monotonic()
        with pytest.raises(FailoverSuccessError):
            await ops.scalar(conn, ops.slow_sql(20))
        assert time.monotonic() - started < 8
        await failover
        assert conn.instance.instance_id == "12" and await ops.host_id(conn) == "12"


async def test_an_idle_session_on_an_instance_that_pauses_fails_over_and_it_can_be_reached_again(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """An instance with connections does not pause; the simulator resets them when it does. What can
    happen then: the host monitor's probe (one of the library's own connections, with no resume wait)
    declares the instance dead while it resumes; the session fails over elsewhere; an application's
    connect to the instance still waits for the resume and succeeds; and its monitor then revives it."""
    options = _options(ops, failure_detection_interval=0.2, failure_detection_count=2)
    async with aurora_async.connect(sim.dsn("12"), **options) as conn:
        [cluster] = registry.clusters()
        await sim.pause("12", resume_seconds=RESUME)

        async def declared_dead() -> bool:
            return "12" in cluster.down

        await eventually(
            declared_dead, timeout=RESUME, what="the monitor to declare the paused instance dead"
        )
        with pytest.raises(FailoverSuccessError):
            await ops.scalar(conn, "SELECT 1")
        assert conn.instance.instance_id != "12"
        assert await ops.host_id(conn) == conn.instance.instance_id
        async with aurora_async.connect(sim.dsn("12"), **options) as again:
            assert again.instance.instance_id == "12" and await ops.host_id(again) == "12"

            async def revived() -> bool:
                return "12" not in cluster.down

            await eventually(revived, what="the monitor to see the resumed instance answer")
