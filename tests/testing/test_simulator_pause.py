"""``sim.pause()``: Aurora Serverless v2 auto-pause on the simulator, both engines. A paused instance's
connections are reset; new connections are accepted and held (no greeting) until ``resume_seconds``
after the first connection attempt; then they log in normally."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aurora_async.testing import AuroraSimulator, SimulatorError
from aurora_async.testing.pytest_plugin import _check_binaries
from tests.helpers import eventually
from tests.paused import LOST, plain_close, plain_connect, plain_host_id


@pytest.fixture(params=["postgresql", "mysql"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[AuroraSimulator]:
    engine: str = request.param
    _check_binaries(engine, {})
    async with AuroraSimulator(engine=engine, instances=2) as cluster:
        yield cluster


async def _backend(sim: AuroraSimulator, instance: str) -> dict[str, Any]:
    status = await sim.proxy_status()
    backend: dict[str, Any] = status["backends"][instance]
    return backend


async def test_pause_holds_logins_until_it_resumed(sim: AuroraSimulator) -> None:
    before = await plain_connect(sim, "12", 5)
    await sim.pause("12", resume_seconds=1.5)
    with pytest.raises(LOST):  # its connections are reset: a paused instance has none
        await plain_host_id(sim, before)
    await plain_close(sim, before)
    assert (await _backend(sim, "12"))["mode"] == "paused"
    assert not (await _backend(sim, "12"))["resuming"]  # nobody knocked yet: it stays paused

    first_attempt = time.monotonic()
    with pytest.raises(TimeoutError):  # TCP is accepted, the login is held
        await plain_connect(sim, "12", 0.3)
    assert (await _backend(sim, "12"))["resuming"]
    # the other instance is not affected meanwhile
    other = await plain_connect(sim, "11", 5)
    assert await plain_host_id(sim, other) == "11"
    await plain_close(sim, other)

    conn = await plain_connect(sim, "12", 10)  # held until the resume, then a normal login
    waited = time.monotonic() - first_attempt
    assert 1.3 <= waited < 6, waited
    assert await plain_host_id(sim, conn) == "12"
    await plain_close(sim, conn)
    assert (await _backend(sim, "12"))["mode"] == "up"
    assert "12" in sim.instance_ids and sim.instances["12"].running  # it stayed in the cluster
    assert any(e.step == "instance paused" for e in sim.timeline)

    started = time.monotonic()  # resumed: it stays up, logins are immediate again
    again = await plain_connect(sim, "12", 5)
    assert time.monotonic() - started < 1
    await plain_close(sim, again)


async def test_held_connections_proceed_when_restored(sim: AuroraSimulator) -> None:
    await sim.pause("12", resume_seconds=600)
    held = asyncio.ensure_future(plain_connect(sim, "12", 30))

    async def knocked() -> bool:
        return bool((await _backend(sim, "12"))["resuming"])

    await eventually(knocked, what="the held connection to wake the paused instance")
    assert not held.done()
    await sim.restore("12")  # ends the pause at once
    async with asyncio.timeout(10):
        conn = await held
    assert await plain_host_id(sim, conn) == "12"
    await plain_close(sim, conn)
    assert (await _backend(sim, "12"))["mode"] == "up"


async def test_pause_rejects_impossible_requests(sim: AuroraSimulator) -> None:
    with pytest.raises(ValueError, match="resume_seconds"):
        await sim.pause("12", resume_seconds=-1)
    await sim.crash("12")
    with pytest.raises(SimulatorError, match="crashed"):
        await sim.pause("12")
    await sim.restore("12")
    await sim.pause("12", resume_seconds=0)  # resumes as soon as someone connects
    conn = await plain_connect(sim, "12", 5)
    assert await plain_host_id(sim, conn) == "12"
    await plain_close(sim, conn)
