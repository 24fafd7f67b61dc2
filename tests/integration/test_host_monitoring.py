"""The host_monitoring plugin on the simulator: black holes cut short, no false alarms, shared monitors."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pymysql
import pytest

import aurora_async
from aurora_async import AuroraConnection, FailoverSuccessError
from aurora_async._cluster import Cluster
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually, fetchval
from tests.integration._engine_ops import EngineOps

INTERVAL, COUNT = 0.4, 3  # the defaults: a dead host is detected within 1.2-1.6 s
WINDOW = INTERVAL * COUNT
NO_MONITORING = ("initial_connection", "aurora_connection_tracker", "failover")


def options(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 20, **extra}


def cluster() -> Cluster:
    [only] = registry.clusters()
    return only


async def _sleeping(sim: AuroraSimulator, count: int) -> bool:
    query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
    return bool(await fetchval(sim.dsn("11"), query) == count)


async def test_black_holed_writer_is_cut_short_and_fails_over(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    monitored = await aurora_async.connect(sim.dsn("cluster"), **options(sim))
    unmonitored = await aurora_async.connect(sim.dsn("cluster"), **options(sim, plugins=NO_MONITORING))
    try:
        ours = asyncio.ensure_future(monitored.fetchval("SELECT pg_sleep(60)"))
        theirs = asyncio.ensure_future(unmonitored.fetchval("SELECT pg_sleep(60)"))
        await eventually(lambda: _sleeping(sim, 2), timeout=5, what="both queries to run")
        black_holed = time.monotonic()
        await sim.blackhole("11")  # no RST, no FIN: the sockets just go silent
        failover = asyncio.ensure_future(sim.failover())
        with pytest.raises(FailoverSuccessError) as caught:
            await asyncio.wait_for(ours, 3 * WINDOW + 10)
        cut_short = time.monotonic() - black_holed
        report = await failover
        assert caught.value.may_have_run is True
        assert monitored.instance.instance_id == report.new_writer
        assert await monitored.fetchval("SELECT 1") == 1
        monitor = cluster().host_monitors[sim.endpoint("11")]
        assert monitor.dead and monitor.stats["aborted"] >= 1 and "11" in cluster().down
        # detection needs the window; a generous bound on the whole (detection + failover)
        assert WINDOW <= cut_short < 3 * WINDOW + 5, cut_short
        assert not theirs.done()  # without the monitor the query still hangs on the silent socket
    finally:
        theirs.cancel()
        unmonitored.terminate()
        await monitored.close()
    await asyncio.gather(ours, theirs, return_exceptions=True)


async def test_a_crash_fails_at_once_and_the_monitor_follows_the_connection(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim, monitor_disposal_time=0.5)) as conn:
        query = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(60)"))
        await eventually(lambda: _sleeping(sim, 1), timeout=5, what="the query to run")
        crashed = time.monotonic()
        report = await sim.failover()  # the writer's server is killed: its sockets are reset
        with pytest.raises(FailoverSuccessError):
            await query
        # a reset needs no detection window: the error arrives with the crash, failover does the rest
        assert time.monotonic() - crashed < 10
        assert conn.instance.instance_id == report.new_writer
        monitor = cluster().host_monitors[sim.endpoint("11")]

        async def stopped() -> bool:
            return not monitor.running

        # the old writer's monitor has no connection left to watch: it stops after the disposal time
        await eventually(stopped, timeout=5, what="the old writer's monitor to stop")
        assert cluster().host_monitors[sim.endpoint(report.new_writer)].running


async def test_latency_below_the_window_and_long_queries_are_left_alone(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        monitor = cluster().host_monitors[sim.endpoint("11")]
        await sim.latency("11", INTERVAL / 2)  # each round trip slow, but within a probe's time
        assert await conn.fetchval("SELECT pg_sleep(2.5)::text || 'done'") == "done"
        assert monitor.stats["probes"] >= 3  # probing went on the whole time
        assert monitor.stats["failed_probes"] == 0 and not monitor.dead
        assert monitor.stats["aborted"] == 0


async def test_a_blocked_event_loop_is_not_a_dead_host(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        monitor = cluster().host_monitors[sim.endpoint("11")]
        await eventually(lambda: _probed(monitor, 2), timeout=5, what="the monitor to probe")
        blocked_until = time.monotonic() + 3 * WINDOW
        while time.monotonic() < blocked_until:  # the application hogs the loop (a fault, not a wait)
            pass
        probes = monitor.stats["probes"]
        await eventually(lambda: _probed(monitor, probes + 3), timeout=5, what="more probes")
        assert not monitor.dead and monitor.stats["aborted"] == 0
        assert await conn.fetchval("SELECT 1") == 1


async def _probed(monitor: Any, count: int) -> bool:
    return bool(monitor.stats["probes"] >= count)


async def test_one_monitor_per_host_shared_by_every_connection(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    writers = [await aurora_async.connect(sim.dsn("cluster"), **options(sim)) for _ in range(200)]
    readers = [
        await aurora_async.connect(
            sim.dsn("reader"),
            **options(sim, failover_mode="strict_reader", reader_host_selector_strategy="round_robin"),
        )
        for _ in range(10)
    ]
    try:
        hosts = {c.instance.endpoint for c in writers + readers}
        running = [m for m in cluster().host_monitors.values() if m.running]
        assert {m.instance.endpoint for m in running} == hosts and len(running) == len(hosts)
        monitoring_tasks = [t for t in asyncio.all_tasks() if "HostMonitor._run" in repr(t.get_coro())]
        assert len(monitoring_tasks) == len(hosts)
        await eventually(lambda: _probed(running[0], 2), timeout=5, what="a probe")
        sock = writers[0].raw._transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    finally:
        await asyncio.gather(*(c.close() for c in writers + readers))
    assert registry.clusters() == []  # and with the cluster, every monitor and probe connection


async def test_a_monitor_stops_when_its_host_has_no_connection_left(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    kwargs = options(sim, monitor_disposal_time=0.3)
    writer: AuroraConnection = await aurora_async.connect(sim.dsn("cluster"), **kwargs)
    reader = await aurora_async.connect(sim.dsn("reader"), **kwargs, failover_mode="strict_reader")
    try:
        monitors = cluster().host_monitors
        on_reader = monitors[reader.instance.endpoint]
        assert on_reader.running and monitors[writer.instance.endpoint].running
        await reader.close()

        async def stopped() -> bool:
            return not on_reader.running

        await eventually(stopped, timeout=5, what="the reader's monitor to stop")
        assert monitors[writer.instance.endpoint].running  # the writer's is still needed
        query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        assert await fetchval(sim.dsn(reader.instance.instance_id), query) == 1  # just this one
    finally:
        await reader.close()
        await writer.close()


@pytest.mark.aurora_simulator(dns_delay=10.0)  # the cluster endpoint leads to the silent writer throughout
@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_a_new_connection_goes_around_a_writer_declared_dead(sim: AuroraSimulator) -> None:
    """Once host monitoring declared the writer dead, a new connection through the cluster endpoint
    (whose DNS still leads to the silent writer) reaches the new writer through the topology at once,
    instead of waiting out its connect timeout on the black hole first."""
    opts = options(sim, timeout=10)
    held = await aurora_async.connect(sim.dsn("cluster"), **opts)  # monitored: it watches the writer
    try:
        await sim.blackhole("11")
        report = await sim.failover()

        async def declared_dead() -> bool:
            return "11" in cluster().down

        await eventually(declared_dead, timeout=3 * WINDOW + 5, what="host monitoring to give up on 11")
        started = time.monotonic()
        async with aurora_async.connect(sim.dsn("cluster"), **opts) as fresh:
            took = time.monotonic() - started
            assert fresh.instance.instance_id == report.new_writer and fresh.role.value == "writer"
        assert took < 5, f"{took:.1f} s: the connect waited on the black-holed endpoint"
        # a plain connection through the same endpoint is still stuck on the silent writer
        with pytest.raises((TimeoutError, pymysql.err.OperationalError)):  # asyncpg's; aiomysql's 2003
            await aurora_async.connect(sim.dsn("cluster"), plugins=(), timeout=2, resume_timeout=0)
    finally:
        held.terminate()


async def _probed_on_monitor(monitor: Any, count: int) -> bool:
    return bool(monitor.stats["shared_probes"] >= count)


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_one_background_session_per_host_the_monitoring_connection_probes_the_writer(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """A process with connections to the writer and to a reader keeps one background session on each
    host: on the writer the topology monitor's connection, which host monitoring probes on too; on the
    reader the probe connection. (A fleet of K processes costs the writer K sessions, not 2K.)"""
    on_writer = await aurora_async.connect(sim.dsn("cluster"), **ops.options())
    on_reader = await aurora_async.connect(sim.dsn("reader"), **ops.options(failover_mode="strict_reader"))
    try:
        monitors = cluster().host_monitors
        writer_monitor = monitors[on_writer.instance.endpoint]
        reader_monitor = monitors[on_reader.instance.endpoint]
        await eventually(lambda: _probed_on_monitor(writer_monitor, 3), timeout=10, what="writer probes")
        await eventually(lambda: _probed(reader_monitor, 3), timeout=10, what="probes on the reader")
        assert writer_monitor.stats["failed_probes"] == 0 and not writer_monitor.dead
        assert reader_monitor.stats["shared_probes"] == 0  # the monitoring connection is on the writer
        # the one asking, the application's connection, and one background session
        assert await ops.client_sessions(sim.writer_id) == 3
        assert await ops.client_sessions(on_reader.instance.instance_id) == 3
    finally:
        await ops.close(on_writer)
        await ops.close(on_reader)
    assert registry.clusters() == []
