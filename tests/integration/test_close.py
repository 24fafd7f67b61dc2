"""Closing a connection while it fails over, and dropping one unclosed: a closed connection stays
closed, holds no server session, and lets its cluster go exactly once (other connections keep their
topology monitor and host monitors)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import asyncpg
import pytest

import aurora_async
from aurora_async import FailoverSuccessError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator, FailoverDelays
from tests.helpers import eventually


def options(sim: AuroraSimulator, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "failover_timeout": 20,
        "server_settings": {"application_name": name},
        **extra,
    }


async def _sessions_named(sim: AuroraSimulator, name: str) -> int:
    """Sessions called ``name`` on every running instance."""
    total = 0
    for instance_id, state in sim.instances.items():
        if not state.running:
            continue
        conn = await asyncpg.connect(sim.dsn(instance_id), timeout=5)
        try:
            total += await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
            )
        finally:
            await conn.close()
    return total


@pytest.mark.aurora_simulator(delays=FailoverDelays(promotion=1.5))
async def test_close_during_a_failover_that_then_succeeds_leaks_nothing(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    other = await aurora_async.connect(sim.dsn("cluster"), **options(sim, "other"))
    victim = await aurora_async.connect(sim.dsn("cluster"), **options(sim, "victim"))
    [cluster] = registry.clusters()
    assert cluster.refs == 2
    failover = asyncio.create_task(sim.failover())
    try:
        call = asyncio.create_task(victim.fetchval("SELECT pg_sleep(30)"))
        await eventually(lambda: _true(victim._failover_lock.locked()), what="the victim failing over")
        async with asyncio.timeout(5):
            await victim.close()  # promptly: it does not wait for the failover
        with pytest.raises(asyncpg.InterfaceError, match="connection is closed"):
            async with asyncio.timeout(5):
                await call
        report = await failover
    finally:
        if not failover.done():
            await failover
    assert victim.is_closed()
    with pytest.raises(asyncpg.InterfaceError):
        await victim.fetchval("SELECT 1")
    assert cluster.refs == 1 and not cluster.closed
    # the other connection fails over as usual, on the cluster's one monitor and search
    with pytest.raises(FailoverSuccessError):
        await other.fetchval("SELECT 1")
    assert other.instance.instance_id == report.new_writer
    await eventually(lambda: _no_sessions(sim, "victim"), what="no session left for the closed connection")
    await other.close()
    assert registry.clusters() == []


@pytest.mark.aurora_simulator(instances=2)
async def test_close_during_a_failover_that_times_out_releases_the_cluster_once(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    plugins = ("initial_connection", "aurora_connection_tracker", "failover")
    other = await aurora_async.connect(sim.dsn("cluster"), **options(sim, "other", plugins=plugins))
    victim = await aurora_async.connect(
        sim.dsn("cluster"), **options(sim, "victim", plugins=plugins, failover_timeout=2)
    )
    [cluster] = registry.clusters()
    writer = sim.writer_id
    await sim.crash(writer)  # no promotion: no writer to find
    call = asyncio.create_task(victim.fetchval("SELECT 1"))
    await eventually(lambda: _true(victim._failover_lock.locked()), what="the victim failing over")
    await victim.close()
    with pytest.raises(asyncpg.InterfaceError):  # (at once, not at the victim's failover_timeout)
        async with asyncio.timeout(5):
            await call
    assert not victim._failover_lock.locked()  # its failover is over: nothing of it runs on
    assert cluster.refs == 1 and not cluster.closed, (cluster.refs, cluster.closed)
    await sim.restore(writer)
    try:
        await other.fetchval("SELECT 1")
    except FailoverSuccessError:
        pass
    assert await other.fetchval("SELECT 1") == 1
    assert cluster.refs == 1 and not cluster.closed
    await other.close()
    assert registry.clusters() == []


async def test_a_dropped_connection_warns_and_lets_its_cluster_and_session_go(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim, "dropped"))
    [cluster] = registry.clusters()
    await eventually(lambda: _sessions_at_least(sim, "dropped", 1), what="the session")
    with pytest.warns(ResourceWarning, match="unclosed connection"):
        del conn
        gc.collect()
    await eventually(lambda: _true(cluster.closed), what="the cluster stopped")
    assert registry.clusters() == []
    await eventually(lambda: _no_sessions(sim, "dropped"), what="the dropped connection's session gone")


async def _true(value: bool) -> bool:
    return value


async def _no_sessions(sim: AuroraSimulator, name: str) -> bool:
    return await _sessions_named(sim, name) == 0


async def _sessions_at_least(sim: AuroraSimulator, name: str, count: int) -> bool:
    return await _sessions_named(sim, name) >= count
