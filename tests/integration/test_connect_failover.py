"""aurora_async.connect() on the simulator: the right instance at connect time, and failover."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

import aurora_async
from aurora_async import (
    AuroraConnection,
    FailoverFailedError,
    FailoverSuccessError,
    Role,
    TransactionResolutionUnknownError,
)
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator, FailoverDelays
from tests.helpers import AURORA_HOST_ID_SQL, IS_READER_SQL, eventually, fetchval

FAST = {"dns_delay": 5.0}  # long enough that a stale endpoint stays stale for the whole test


def options(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 20, **extra}


@pytest.fixture
async def conn(aurora_postgres: AuroraSimulator) -> AsyncIterator[AuroraConnection]:
    connection = await aurora_async.connect(aurora_postgres.dsn("cluster"), **options(aurora_postgres))
    yield connection
    await connection.close()


async def test_connects_to_the_writer_with_the_asyncpg_api(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        assert conn.instance.instance_id == "11" and conn.role is Role.WRITER
        assert await conn.fetchval(AURORA_HOST_ID_SQL) == "11"
        await conn.execute("CREATE TABLE t(id int PRIMARY KEY, v text)")
        await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "a"), (2, "b")])
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM t ORDER BY id")] == [(1, "a"), (2, "b")]
        assert (await conn.fetchrow("SELECT v FROM t WHERE id = $1", 2))["v"] == "b"
        async with conn.transaction():
            await conn.execute("INSERT INTO t VALUES (3, 'c')")
        statement = await conn.prepare("SELECT count(*) FROM t")
        assert await statement.fetchval() == 3
        assert isinstance(conn.raw, asyncpg.Connection)
        assert conn.get_server_pid() == conn.raw.get_server_pid()  # forwarded to asyncpg
        with pytest.raises(asyncpg.UniqueViolationError):  # SQL errors pass through untouched
            await conn.execute("INSERT INTO t VALUES (1, 'dup')")
    assert conn.is_closed()


@pytest.mark.aurora_simulator(**FAST)
async def test_stale_writer_endpoint_at_connect_lands_on_the_writer(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    report = await sim.failover()
    # the writer endpoint still leads to the old writer, now a replica
    assert await fetchval(sim.dsn("cluster"), IS_READER_SQL) is True
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        assert conn.instance.instance_id == report.new_writer
        assert await conn.fetchval(IS_READER_SQL) is False


async def test_reader_modes_land_on_replicas(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    for mode in ("strict_reader", "reader_or_writer"):
        async with aurora_async.connect(sim.dsn("reader"), **options(sim, failover_mode=mode)) as conn:
            assert conn.role is Role.READER and conn.instance.instance_id in sim.reader_ids
            assert await conn.fetchval(IS_READER_SQL) is True
    async with aurora_async.connect(
        sim.dsn("cluster"), **options(sim, failover_mode="strict_reader")
    ) as conn:
        assert conn.role is Role.READER  # asked for a reader, was given the writer: moved


async def _fails_over(conn: AuroraConnection, action: Callable[[], Awaitable[Any]]) -> FailoverSuccessError:
    with pytest.raises(FailoverSuccessError) as caught:
        await action()
    assert caught.value.__cause__ is not None
    return caught.value


async def test_failover_of_an_idle_connection(
    aurora_postgres: AuroraSimulator, conn: AuroraConnection
) -> None:
    sim = aurora_postgres
    report = await sim.failover()

    async def noticed() -> bool:
        return bool(conn.raw.is_closed())

    await eventually(noticed, timeout=5, what="asyncpg to see its socket close")
    error = await _fails_over(conn, lambda: conn.fetchval("SELECT 1"))
    assert error.may_have_run is False  # asyncpg never sent it
    assert conn.instance.instance_id == report.new_writer and conn.role is Role.WRITER
    assert await conn.fetchval(AURORA_HOST_ID_SQL) == report.new_writer
    await conn.execute("CREATE TABLE after(x int)")  # writable


async def test_failover_mid_query(aurora_postgres: AuroraSimulator, conn: AuroraConnection) -> None:
    sim = aurora_postgres
    query = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(30)"))
    await eventually(lambda: _sleeping(sim), timeout=5, what="the query to start")
    started = time.monotonic()
    report = await sim.failover()
    with pytest.raises(FailoverSuccessError) as caught:
        await query
    assert caught.value.may_have_run is True  # it was running on the old writer
    assert time.monotonic() - started < 15
    assert conn.instance.instance_id == report.new_writer


async def _sleeping(sim: AuroraSimulator) -> bool:
    return bool(
        await fetchval(
            sim.dsn("11"), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
        )
    )


async def test_failover_mid_transaction(aurora_postgres: AuroraSimulator, conn: AuroraConnection) -> None:
    sim = aurora_postgres
    await conn.execute("CREATE TABLE ledger(id int PRIMARY KEY)")
    with pytest.raises(TransactionResolutionUnknownError) as caught:
        async with conn.transaction():
            await conn.execute("INSERT INTO ledger VALUES (1)")
            await sim.failover()
            await conn.execute("INSERT INTO ledger VALUES (2)")
    assert isinstance(caught.value.__cause__, (asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError))
    assert not conn.is_in_transaction()
    assert await conn.fetchval("SELECT count(*) FROM ledger") == 0  # the transaction never committed
    async with conn.transaction():  # and the connection works for the retry
        await conn.execute("INSERT INTO ledger VALUES (1), (2)")
    assert await conn.fetchval("SELECT count(*) FROM ledger") == 2


async def test_connection_lost_during_commit(
    aurora_postgres: AuroraSimulator, conn: AuroraConnection
) -> None:
    sim = aurora_postgres
    await conn.execute("CREATE TABLE ledger(id int PRIMARY KEY)")
    await sim.drop_after_commit("11")  # the server commits; the client never hears so
    with pytest.raises(TransactionResolutionUnknownError) as caught:
        async with conn.transaction():
            await conn.execute("INSERT INTO ledger VALUES (1)")
    assert caught.value.__cause__ is not None
    assert not conn.is_in_transaction()
    assert await conn.fetchval("SELECT count(*) FROM ledger") == 1  # it had committed: don't blindly retry
    assert conn.instance.instance_id == "11" and conn.role is Role.WRITER  # same writer, new connection


async def test_read_only_error_fails_over_in_strict_writer_mode(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    # a connection made straight to an instance that later becomes a replica
    async with aurora_async.connect(sim.dsn("11"), **options(sim, plugins=("failover",))) as conn:
        await conn.execute("CREATE TABLE ro(x int)")
        await sim.switchover()
        await _fails_over(conn, lambda: conn.execute("INSERT INTO ro VALUES (1)"))
        await conn.execute("INSERT INTO ro VALUES (1)")
        assert conn.instance.instance_id == sim.writer_id


async def test_many_connections_share_one_writer_search(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    conns = [await aurora_async.connect(sim.dsn("cluster"), **options(sim)) for _ in range(200)]
    try:
        cluster = registry.clusters()[0]
        assert len(registry.clusters()) == 1 and cluster.refs == 200
        report = await sim.failover()
        # (the host monitor may have noticed first and searched already: count from here)
        searches_before = cluster.stats["writer_searches"]
        results = await asyncio.gather(*(c.fetchval("SELECT 1") for c in conns), return_exceptions=True)
        assert all(isinstance(r, FailoverSuccessError) for r in results), {type(r) for r in results}
        assert {c.instance.instance_id for c in conns} == {report.new_writer}
        assert cluster.stats["writer_searches"] - searches_before == 1
        assert [await c.fetchval("SELECT 1") for c in conns[:5]] == [1] * 5
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    assert registry.clusters() == []


@pytest.mark.aurora_simulator(delays=FailoverDelays(promotion=0.5))
async def test_failover_gives_up_at_the_deadline(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim, failover_timeout=2))
    for instance_id in sim.instance_ids:
        await sim.crash(instance_id)
    started = time.monotonic()
    with pytest.raises(FailoverFailedError) as caught:
        await conn.fetchval("SELECT 1")
    assert 1.5 <= time.monotonic() - started < 6
    assert caught.value.__cause__ is not None
    assert conn.is_closed()


async def test_tracker_closes_idle_connections_on_the_old_writer(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    busy = await aurora_async.connect(sim.dsn("cluster"), **options(sim))
    idle = await aurora_async.connect(sim.dsn("cluster"), **options(sim))
    try:
        await sim.switchover()  # the old writer comes back as a replica: idle would silently read there
        await _fails_over(busy, lambda: busy.fetchval("SELECT 1"))
        # the failover published the new writer: the tracker closed idle's physical connection
        assert idle.raw.is_closed()
        await _fails_over(idle, lambda: idle.fetchval("SELECT 1"))
        assert idle.instance.instance_id == sim.writer_id
    finally:
        await busy.close()
        await idle.close()


async def test_strict_reader_failover_moves_to_another_replica(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("reader"), **options(sim, failover_mode="strict_reader")) as conn:
        first = conn.instance.instance_id
        await sim.crash(first)
        await _fails_over(conn, lambda: conn.fetchval("SELECT 1"))
        assert conn.role is Role.READER and conn.instance.instance_id not in (first, sim.writer_id)


async def test_no_task_or_connection_is_left_after_close(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    before = set(asyncio.all_tasks())
    conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim, topology_refresh=0.2))
    cluster = registry.clusters()[0]
    await eventually(lambda: _monitored(cluster), timeout=5, what="the monitor to refresh")
    await conn.close()
    assert registry.clusters() == []
    assert set(asyncio.all_tasks()) - before <= {asyncio.current_task()}
    count = await fetchval(
        sim.dsn("11"), "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    )
    assert count == 1  # only the query that counts


async def _monitored(cluster: Any) -> bool:
    return bool(cluster.stats["topology_reads"] >= 2)


async def test_plain_connection_without_plugins(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), plugins=()) as conn:
        assert await conn.fetchval("SELECT 1") == 1
        cluster = registry.clusters()[0]
        assert cluster.dialect is None and cluster.topology is None
        assert conn.instance.instance_id == sim.cluster_endpoint and conn.role is Role.WRITER


@pytest.mark.aurora_simulator(topology="multi-az")
async def test_multi_az_cluster_fails_over(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        assert conn.instance.instance_id == "11" and conn.role is Role.WRITER
        report = await sim.failover()
        await _fails_over(conn, lambda: conn.fetchval("SELECT 1"))
        assert conn.instance.instance_id == report.new_writer
        assert await conn.fetchval(IS_READER_SQL) is False


async def test_reader_or_writer_falls_back_to_the_writer(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(
        sim.dsn("reader"), **options(sim, failover_mode="reader_or_writer")
    ) as conn:
        assert conn.role is Role.READER
        for reader in sim.reader_ids:
            await sim.crash(reader)
        await _fails_over(conn, lambda: conn.fetchval("SELECT 1"))
        assert conn.instance.instance_id == sim.writer_id and conn.instance.role is Role.WRITER


SECRET = "hunter2-not-for-logs"


@pytest.mark.aurora_simulator(user="app", password=SECRET)
async def test_failover_is_logged_without_the_password(
    aurora_postgres: AuroraSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = aurora_postgres
    dsn = sim.dsn("cluster")
    assert f"app:{SECRET}@" in dsn
    caplog.set_level(logging.DEBUG, logger="aurora_async")
    async with aurora_async.connect(dsn, **options(sim)) as conn:
        report = await sim.failover()
        await _fails_over(conn, lambda: conn.fetchval("SELECT 1"))
        shown = [repr(conn), str(conn), repr(registry.clusters()[0])]
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"-> {report.new_writer}" in m for m in messages if "writer changed" in m), messages
    duration = re.compile(rf"failed over from 11 to {report.new_writer} \(writer\) in \d+ ms")
    assert any(duration.search(m) for m in messages), messages
    assert any(m.startswith("probe ") for m in messages)  # DEBUG: the writer search's probes
    assert all(SECRET not in text for text in messages + shown + [caplog.text])


@pytest.mark.aurora_simulator(delays=FailoverDelays(promotion=1.0))
async def test_connect_while_the_writer_is_down_waits_for_the_new_writer(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)):  # the cluster knows the topology
        failover = asyncio.ensure_future(sim.failover())

        async def writer_down() -> bool:
            return not sim.instances["11"].running

        await eventually(writer_down, timeout=10, what="the writer to die")
        # the writer endpoint still leads to the dead writer: refused; the topology leads on
        async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as late:
            report = await failover
            assert late.instance.instance_id == report.new_writer and late.role is Role.WRITER


async def test_a_reconnect_reuses_what_the_closed_cluster_learned(
    aurora_postgres: AuroraSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = aurora_postgres
    caplog.set_level(logging.DEBUG, logger="aurora_async.topology")
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)):
        first = registry.clusters()[0]
    assert registry.clusters() == []
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as again:
        cluster = registry.clusters()[0]
        assert cluster is not first and cluster.dialect is first.dialect  # adopted, not detected again
        assert again.instance.instance_id == "11" and again.role is Role.WRITER

        async def refreshed() -> bool:  # and its monitor reads the topology at once
            return bool(cluster.stats["topology_reads"] >= 1)

        await eventually(refreshed, timeout=5, what="the new cluster's monitor to refresh")
    detections = [r for r in caplog.records if "uses dialect" in r.getMessage()]
    assert len(detections) == 1, [r.getMessage() for r in detections]
    # what was learned may be stale: roles are still verified at connect
    report = await sim.failover()
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as after:
        assert after.instance.instance_id == report.new_writer and after.role is Role.WRITER
    # older than topology_refresh: forgotten, detected again (the time passing is what is tested here)
    await asyncio.sleep(0.05)
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim, topology_refresh=0.01)):
        pass
    assert len([r for r in caplog.records if "uses dialect" in r.getMessage()]) == 2
