"""aurora_async.connect() on the simulator, for both engines: the right instance at connect time, and
failover (PostgreSQL through asyncpg's API, MySQL through aiomysql's on MariaDB servers).

Every test takes the ``engine`` fixture: ``postgresql`` and ``mysql`` by default; the tests marked
``WITH_MULTI_AZ_MYSQL`` also run on an RDS Multi-AZ DB cluster of MySQL (``mysql-multi-az``), as the
MySQL suite always did. What differs between the engines is in ``_engine_ops``. Simulator options come
from ``@pytest.mark.aurora_simulator(...)``, read as the pytest plugin's fixtures read them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomysql
import asyncpg
import pymysql
import pytest

import aurora_async
from aurora_async import (
    AuroraConnection,
    AuroraMySQLConnection,
    FailoverFailedError,
    FailoverSuccessError,
    Role,
    TransactionResolutionUnknownError,
)
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator, FailoverDelays
from tests.helpers import eventually

from ._engine_ops import Conn, EngineOps

WITH_MULTI_AZ_MYSQL = pytest.mark.parametrize("engine", ["postgresql", "mysql", "mysql-multi-az"])
MYSQL_ONLY = pytest.mark.parametrize("engine", ["mysql"])
COUNT = "SELECT count(*) FROM ledger"


@pytest.fixture
async def conn(sim: AuroraSimulator, ops: EngineOps) -> AsyncIterator[Conn]:
    connection: Conn = await aurora_async.connect(sim.dsn("cluster"), **ops.options())
    yield connection
    await ops.close(connection)


async def _fails_over(action: Callable[[], Awaitable[Any]]) -> FailoverSuccessError:
    with pytest.raises(FailoverSuccessError) as caught:
        await action()
    assert caught.value.__cause__ is not None
    return caught.value


# -- connecting ---------------------------------------------------------------------------------------


async def _asyncpg_api(conn: Conn) -> None:
    assert isinstance(conn, AuroraConnection)
    await conn.execute("CREATE TABLE t(id int PRIMARY KEY, v text)")
    await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "a"), (2, "b")])
    assert [tuple(r) for r in await conn.fetch("SELECT * FROM t ORDER BY id")] == [(1, "a"), (2, "b")]
    row = await conn.fetchrow("SELECT v FROM t WHERE id = $1", 2)
    assert row is not None and row["v"] == "b"
    async with conn.transaction():
        await conn.execute("INSERT INTO t VALUES (3, 'c')")
    statement = await conn.prepare("SELECT count(*) FROM t")
    assert await statement.fetchval() == 3
    assert isinstance(conn.raw, asyncpg.Connection)
    assert conn.get_server_pid() == conn.raw.get_server_pid()  # forwarded to asyncpg
    with pytest.raises(asyncpg.UniqueViolationError):  # SQL errors pass through untouched
        await conn.execute("INSERT INTO t VALUES (1, 'dup')")


async def _aiomysql_api(conn: Conn) -> None:
    assert isinstance(conn, AuroraMySQLConnection)
    async with conn.cursor() as cur:
        await cur.execute("CREATE TABLE t(id int PRIMARY KEY, v varchar(10))")
        assert await cur.executemany("INSERT INTO t VALUES (%s, %s)", [(1, "a"), (2, "b")]) == 2
        await conn.commit()
        await cur.execute("SELECT * FROM t ORDER BY id")
        assert await cur.fetchall() == ((1, "a"), (2, "b"))
        await cur.execute("SELECT * FROM t ORDER BY id")
        assert await cur.fetchone() == (1, "a") and await cur.fetchmany(5) == ((2, "b"),)
        with pytest.raises(pymysql.err.IntegrityError):  # SQL errors pass through untouched
            await cur.execute("INSERT INTO t VALUES (1, 'dup')")
    async with conn.cursor(aiomysql.DictCursor) as cur:
        await cur.execute("SELECT v FROM t WHERE id = %s", (2,))
        assert await cur.fetchone() == {"v": "b"} and cur.rowcount == 1
        await cur.execute("SELECT id FROM t ORDER BY id")
        assert [row["id"] async for row in cur] == [1, 2]
    await conn.begin()
    async with conn.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES (3, 'c')")
        assert conn.is_in_transaction()
    await conn.rollback()
    async with conn.cursor() as cur:
        await cur.execute("SELECT count(*) FROM t")
        assert await cur.fetchone() == (2,)
    await conn.ping()
    assert isinstance(conn.raw, aiomysql.Connection)
    assert conn.get_server_info() == conn.raw.get_server_info()  # forwarded to aiomysql


DRIVER_API = {"postgresql": _asyncpg_api, "mysql": _aiomysql_api}


@WITH_MULTI_AZ_MYSQL
async def test_connects_to_the_writer_with_the_drivers_api(sim: AuroraSimulator, ops: EngineOps) -> None:
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options()) as conn:
        assert conn.instance.instance_id == "11" and conn.role is Role.WRITER
        cluster = registry.clusters()[0]
        assert cluster.dialect is not None and cluster.dialect.code == ops.dialects[sim.topology]
        assert cluster.topology is not None and len(cluster.topology.readers) == 2
        assert await ops.host_id(conn) == "11"
        await DRIVER_API[ops.engine](conn)
    assert conn.is_closed()
    assert registry.clusters() == []


@WITH_MULTI_AZ_MYSQL
@pytest.mark.aurora_simulator(dns_delay=5.0)  # long enough that a stale endpoint stays stale for the test
async def test_stale_writer_endpoint_at_connect_lands_on_the_writer(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    report = await sim.failover()
    # the writer endpoint still leads to the old writer, now a replica
    assert await ops.outside_is_reader("cluster") is True
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options()) as conn:
        assert conn.instance.instance_id == report.new_writer
        assert await ops.is_reader(conn) is False


async def test_reader_modes_land_on_replicas(sim: AuroraSimulator, ops: EngineOps) -> None:
    for mode in ("strict_reader", "reader_or_writer"):
        async with aurora_async.connect(sim.dsn("reader"), **ops.options(failover_mode=mode)) as conn:
            assert conn.role is Role.READER and conn.instance.instance_id in sim.reader_ids
            assert await ops.is_reader(conn) is True
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options(failover_mode="strict_reader")) as conn:
        assert conn.role is Role.READER  # asked for a reader, was given the writer: moved


@pytest.mark.aurora_simulator(delays=FailoverDelays(promotion=1.0))
async def test_connect_while_the_writer_is_down_waits_for_the_new_writer(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options()):  # the cluster knows the topology
        failover = asyncio.ensure_future(sim.failover())

        async def writer_down() -> bool:
            return not sim.instances["11"].running

        await eventually(writer_down, timeout=10, what="the writer to die")
        # the writer endpoint still leads to the dead writer: refused; the topology leads on
        async with aurora_async.connect(sim.dsn("cluster"), **ops.options()) as late:
            report = await failover
            assert late.instance.instance_id == report.new_writer and late.role is Role.WRITER


async def test_a_reconnect_reuses_what_the_closed_cluster_learned(
    sim: AuroraSimulator, ops: EngineOps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aurora_async.topology")
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options()):
        first = registry.clusters()[0]
    assert registry.clusters() == []
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options()) as again:
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
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options()) as after:
        assert after.instance.instance_id == report.new_writer and after.role is Role.WRITER
    learned = time.monotonic()

    async def older_than_the_refresh() -> bool:  # the time passing is what is tested here
        return time.monotonic() - learned > 0.05

    await eventually(older_than_the_refresh, timeout=1, what="50 ms to pass")
    # older than topology_refresh: forgotten, detected again
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options(topology_refresh=0.01)):
        pass
    assert len([r for r in caplog.records if "uses dialect" in r.getMessage()]) == 2


async def test_plain_connection_without_plugins_and_connect_raw(sim: AuroraSimulator, ops: EngineOps) -> None:
    async with aurora_async.connect(sim.dsn("cluster"), plugins=()) as conn:
        assert await ops.scalar(conn, "SELECT 1") == 1
        cluster = registry.clusters()[0]
        assert cluster.dialect is None and cluster.topology is None
        assert conn.instance.instance_id == sim.cluster_endpoint and conn.role is Role.WRITER
    assert registry.clusters() == []
    raw = await aurora_async.connect_raw(sim.dsn("reader"), **ops.options(failover_mode="strict_reader"))
    try:
        assert isinstance(raw, ops.raw_class)  # the driver's own class
        assert await ops.raw_is_reader(raw) is True
        assert len(registry.clusters()) == 1
    finally:
        await ops.close_raw(raw)
    if ops.engine == "mysql":
        assert registry.clusters() == []  # released within close()
    # asyncpg calls its termination listeners (the release) soon after close(), not within it

    async def released() -> bool:
        return registry.clusters() == []

    await eventually(released, timeout=2, what="connect_raw's cluster to be released")


# -- failover of one connection -----------------------------------------------------------------------


@WITH_MULTI_AZ_MYSQL
async def test_failover_of_an_idle_connection(sim: AuroraSimulator, ops: EngineOps, conn: Conn) -> None:
    report = await sim.failover()
    # MySQL: one cursor, made before the connection notices and used again after it failed over
    statements = await ops.statements(conn)
    if ops.engine == "postgresql":  # asyncpg sends on a socket it has not seen closed (may_have_run)

        async def noticed() -> bool:
            return conn.raw.is_closed()

        await eventually(noticed, timeout=5, what="asyncpg to see its socket close")
    error = await _fails_over(lambda: statements.scalar("SELECT 1"))
    assert error.may_have_run is False  # the socket was closed: nothing was sent
    assert conn.instance.instance_id == report.new_writer and conn.role is Role.WRITER
    # the same statement handle works on the new connection
    assert str(await statements.scalar(ops.host_id_sql)) == report.new_writer
    await statements.execute("CREATE TABLE after_failover(x int)")  # writable


async def test_failover_mid_query(sim: AuroraSimulator, ops: EngineOps, conn: Conn) -> None:
    slow = ops.slow_sql(30)
    query = asyncio.ensure_future(ops.scalar(conn, slow))

    async def sleeping() -> bool:
        return await ops.running("11", slow) > 0

    await eventually(sleeping, timeout=5, what="the query to start")
    started = time.monotonic()
    report = await sim.failover()
    with pytest.raises(FailoverSuccessError) as caught:
        await query
    assert caught.value.may_have_run is True  # it was running on the old writer
    assert time.monotonic() - started < 15
    assert conn.instance.instance_id == report.new_writer


@pytest.mark.parametrize("style", ["block", "begin"])
@WITH_MULTI_AZ_MYSQL
async def test_failover_mid_transaction(sim: AuroraSimulator, ops: EngineOps, conn: Conn, style: str) -> None:
    await ops.write(conn, "CREATE TABLE ledger(id int PRIMARY KEY)")
    if style == "block":  # the engine's block: asyncpg's `async with conn.transaction()`
        with pytest.raises(TransactionResolutionUnknownError) as caught:
            async with ops.transaction(conn):
                await ops.execute(conn, "INSERT INTO ledger VALUES (1)")
                await sim.failover()
                await ops.execute(conn, "INSERT INTO ledger VALUES (2)")
    else:  # begun by hand: asyncpg's transaction().start(), aiomysql's begin()
        tx = await ops.begin(conn)
        await ops.execute(conn, "INSERT INTO ledger VALUES (1)")
        await sim.failover()
        with pytest.raises(TransactionResolutionUnknownError) as caught:
            await ops.execute(conn, "INSERT INTO ledger VALUES (2)")
        # the transaction is lost: until it ends, calls are refused (its later statements would commit
        # without the ones the failover took away)
        with pytest.raises(TransactionResolutionUnknownError, match="lost"):
            await ops.scalar(conn, COUNT)
        await tx.rollback()  # ends it (the server rolled it back with the old connection)
    assert isinstance(caught.value.__cause__, ops.lost_connection_errors)
    assert not conn.is_in_transaction()
    assert await ops.scalar(conn, COUNT) == 0  # the transaction never committed
    async with ops.transaction(conn):  # and the connection works for the retry
        await ops.insert_many(conn, "ledger", [(1,), (2,)])
    assert await ops.scalar(conn, COUNT) == 2
    assert await ops.outside(sim.writer_id, COUNT) == 2


@WITH_MULTI_AZ_MYSQL
async def test_connection_lost_during_commit(sim: AuroraSimulator, ops: EngineOps, conn: Conn) -> None:
    await ops.write(conn, "CREATE TABLE ledger(id int PRIMARY KEY)")
    await sim.drop_after_commit("11")  # the server commits; the client never hears so
    with pytest.raises(TransactionResolutionUnknownError) as caught:
        async with ops.transaction(conn):
            await ops.execute(conn, "INSERT INTO ledger VALUES (1)")
    assert caught.value.__cause__ is not None
    assert not conn.is_in_transaction()
    assert await ops.scalar(conn, COUNT) == 1  # it had committed: don't blindly retry
    assert conn.instance.instance_id == "11" and conn.role is Role.WRITER  # same writer, new connection


@WITH_MULTI_AZ_MYSQL
async def test_read_only_error_fails_over_in_strict_writer_mode(sim: AuroraSimulator, ops: EngineOps) -> None:
    reader = sim.reader_ids[0]
    # straight to a replica, without initial_connection: the first write is refused, which in
    # strict_writer mode means "this is no longer the writer": fail over to the writer
    async with aurora_async.connect(sim.dsn(reader), **ops.options(plugins=("failover",))) as conn:
        assert conn.instance.instance_id == reader and conn.role is Role.READER
        error = await _fails_over(lambda: ops.write(conn, "CREATE TABLE ro(x int)"))
        assert error.may_have_run is False  # the replica refused it
        assert ops.is_read_only_refusal(error.__cause__), repr(error.__cause__)
        await ops.write(conn, "CREATE TABLE ro(x int)")
        await ops.write(conn, "INSERT INTO ro VALUES (1)")
        assert conn.instance.instance_id == sim.writer_id and conn.instance.role is Role.WRITER
        await sim.switchover()  # and a demoted writer: the write fails over again, to the new writer
        await _fails_over(lambda: ops.write(conn, "INSERT INTO ro VALUES (2)"))
        await ops.write(conn, "INSERT INTO ro VALUES (2)")
        assert conn.instance.instance_id == sim.writer_id
        assert await ops.outside(sim.writer_id, "SELECT count(*) FROM ro") == 2


@pytest.mark.aurora_simulator(delays=FailoverDelays(promotion=0.5))
async def test_failover_gives_up_at_the_deadline(sim: AuroraSimulator, ops: EngineOps) -> None:
    conn = await aurora_async.connect(sim.dsn("cluster"), **ops.options(failover_timeout=2))
    for instance_id in sim.instance_ids:
        await sim.crash(instance_id)
    started = time.monotonic()
    with pytest.raises(FailoverFailedError) as caught:
        await ops.scalar(conn, "SELECT 1")
    assert 1.5 <= time.monotonic() - started < 6
    assert caught.value.__cause__ is not None
    assert conn.is_closed()


@WITH_MULTI_AZ_MYSQL
async def test_strict_reader_failover_moves_to_another_replica(sim: AuroraSimulator, ops: EngineOps) -> None:
    async with aurora_async.connect(sim.dsn("reader"), **ops.options(failover_mode="strict_reader")) as conn:
        first = conn.instance.instance_id
        await sim.crash(first)
        await _fails_over(lambda: ops.scalar(conn, "SELECT 1"))
        assert conn.role is Role.READER and conn.instance.instance_id not in (first, sim.writer_id)


async def test_reader_or_writer_falls_back_to_the_writer(sim: AuroraSimulator, ops: EngineOps) -> None:
    async with aurora_async.connect(
        sim.dsn("reader"), **ops.options(failover_mode="reader_or_writer")
    ) as conn:
        assert conn.role is Role.READER
        for reader in sim.reader_ids:
            await sim.crash(reader)
        await _fails_over(lambda: ops.scalar(conn, "SELECT 1"))
        assert conn.instance.instance_id == sim.writer_id and conn.instance.role is Role.WRITER


@WITH_MULTI_AZ_MYSQL
async def test_black_holed_writer_is_cut_short_by_host_monitoring(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options()) as conn:
        query = asyncio.ensure_future(ops.scalar(conn, ops.slow_sql(20)))
        await sim.blackhole("11")
        started = time.monotonic()
        failover = asyncio.ensure_future(sim.failover())
        with pytest.raises(FailoverSuccessError):
            await query
        assert time.monotonic() - started < 12  # monitoring aborted it; TCP alone would take minutes
        report = await failover
        assert conn.instance.instance_id == report.new_writer


@pytest.mark.parametrize("engine", ["postgresql-multi-az", "mysql-multi-az"])
async def test_multi_az_cluster_fails_over(sim: AuroraSimulator, ops: EngineOps) -> None:
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options()) as conn:
        assert conn.instance.instance_id == "11" and conn.role is Role.WRITER
        report = await sim.failover()
        await _fails_over(lambda: ops.scalar(conn, "SELECT 1"))
        assert conn.instance.instance_id == report.new_writer
        assert await ops.is_reader(conn) is False


SECRET = "hunter2-not-for-logs"


@pytest.mark.aurora_simulator(user="app", password=SECRET)
async def test_failover_is_logged_without_the_password(
    sim: AuroraSimulator, ops: EngineOps, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = sim.dsn("cluster")
    assert f"app:{SECRET}@" in dsn
    caplog.set_level(logging.DEBUG, logger="aurora_async")
    async with aurora_async.connect(dsn, **ops.options()) as conn:
        report = await sim.failover()
        await _fails_over(lambda: ops.scalar(conn, "SELECT 1"))
        shown = [repr(conn), str(conn), repr(registry.clusters()[0])]
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"-> {report.new_writer}" in m for m in messages if "writer changed" in m), messages
    duration = re.compile(rf"failed over from 11 to {report.new_writer} \(writer\) in \d+ ms")
    assert any(duration.search(m) for m in messages), messages
    assert any(m.startswith("probe ") for m in messages)  # DEBUG: the writer search's probes
    assert all(SECRET not in text for text in messages + shown + [caplog.text])


# -- many connections, the cluster's background work ------------------------------------------------


@pytest.mark.aurora_simulator(delays=FailoverDelays(promotion=1.0))
async def test_many_connections_share_one_writer_search(sim: AuroraSimulator, ops: EngineOps) -> None:
    conns: list[Conn] = [
        await aurora_async.connect(sim.dsn("cluster"), **ops.options()) for _ in range(ops.many)
    ]
    try:
        cluster = registry.clusters()[0]
        assert len(registry.clusters()) == 1 and cluster.refs == ops.many
        searches_before = cluster.stats["writer_searches"]
        failover = asyncio.ensure_future(sim.failover())

        async def writer_down() -> bool:
            return not sim.instances["11"].running

        await eventually(writer_down, timeout=10, what="the writer to die")
        # every connection fails while no instance is the writer (the promotion takes 1 s): each asks for
        # a writer verified after its failure, and they (with host monitoring and the topology monitor,
        # failing then too) share the one search that finds it
        results = await asyncio.gather(*(ops.scalar(c, "SELECT 1") for c in conns), return_exceptions=True)
        report = await failover
        assert all(isinstance(r, FailoverSuccessError) for r in results), {type(r) for r in results}
        assert {c.instance.instance_id for c in conns} == {report.new_writer}
        searches = cluster.stats["writer_searches"] - searches_before
        assert searches == 1, searches
        assert [await ops.scalar(c, "SELECT 1") for c in conns[:5]] == [1] * 5
    finally:
        await asyncio.gather(*(ops.close(c) for c in conns))
    assert registry.clusters() == []


@WITH_MULTI_AZ_MYSQL
async def test_tracker_closes_idle_connections_on_the_old_writer(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    busy: Conn = await aurora_async.connect(sim.dsn("cluster"), **ops.options())
    idle: Conn = await aurora_async.connect(sim.dsn("cluster"), **ops.options())
    try:
        await sim.switchover()  # the old writer comes back as a replica: idle would silently read there
        await _fails_over(lambda: ops.scalar(busy, "SELECT 1"))
        # the failover published the new writer: the tracker closed idle's physical connection
        assert idle.raw.is_closed()
        error = await _fails_over(lambda: ops.scalar(idle, "SELECT 1"))
        assert error.may_have_run is False
        assert idle.instance.instance_id == sim.writer_id
    finally:
        await ops.close(busy)
        await ops.close(idle)


async def test_no_task_or_connection_is_left_after_close(sim: AuroraSimulator, ops: EngineOps) -> None:
    before = set(asyncio.all_tasks())
    conn: Conn = await aurora_async.connect(sim.dsn("cluster"), **ops.options(topology_refresh=0.2))
    cluster = registry.clusters()[0]

    async def refreshed() -> bool:
        return bool(cluster.stats["topology_reads"] >= 2)

    await eventually(refreshed, timeout=5, what="the monitor to refresh")
    await ops.close(conn)
    assert registry.clusters() == []
    assert set(asyncio.all_tasks()) - before <= {asyncio.current_task()}

    async def only_the_counting_query() -> bool:
        # the server ends a session once it sees the socket closed, through the fault proxy: a moment
        # after close() returned; a session left open for good would fail this after the deadline
        return bool(await ops.client_sessions("11") == 1)

    await eventually(only_the_counting_query, timeout=5, what="no session of the closed connection left")


async def test_read_write_splitting(sim: AuroraSimulator, ops: EngineOps) -> None:
    plugins = ("initial_connection", "failover", "read_write_splitting")
    async with aurora_async.connect(sim.dsn("cluster"), **ops.options(plugins=plugins)) as conn:
        await conn.set_read_only(True)
        assert conn.role is Role.READER and await ops.is_reader(conn) is True
        await conn.set_read_only(False)
        assert conn.instance.role is Role.WRITER and await ops.is_reader(conn) is False
        tx = await ops.begin(conn)
        await ops.scalar(conn, "SELECT 1")
        with pytest.raises(aurora_async.ReadWriteSplittingError):
            await conn.set_read_only(True)
        await tx.rollback()


# -- MySQL only -----------------------------------------------------------------------------------------


@MYSQL_ONLY
async def test_session_state_follows_the_failover(sim: AuroraSimulator, ops: EngineOps) -> None:
    # aiomysql's session calls (autocommit, set_charset, select_db) have no asyncpg counterpart
    async with aurora_async.connect(sim.dsn("cluster"), engine="mysql", **ops.options()) as conn:
        cur = await conn.cursor()
        await conn.autocommit(True)
        await conn.set_charset("latin1")
        await cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        await conn.select_db("information_schema")
        await sim.failover()
        await _fails_over(lambda: cur.execute("SELECT 1"))
        await cur.execute("SELECT DATABASE(), @@autocommit, @@character_set_client, @@session.tx_isolation")
        assert await cur.fetchone() == ("information_schema", 1, "latin1", "READ-COMMITTED")
        assert conn.get_autocommit() is True
