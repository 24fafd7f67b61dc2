"""aurora_async.connect() on MySQL (aiomysql on the MariaDB simulator): the PostgreSQL failover matrix,
in both topology modes (Aurora MySQL through its real SQL, and RDS Multi-AZ DB clusters)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomysql
import pymysql
import pytest

import aurora_async
from aurora_async import (
    AuroraMySQLConnection,
    ConfigurationError,
    FailoverFailedError,
    FailoverSuccessError,
    Role,
    TransactionResolutionUnknownError,
)
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator, FailoverDelays
from tests.helpers import eventually

BOTH = pytest.mark.parametrize(
    "aurora_mysql", ["aurora", "multi-az"], indirect=True, ids=["aurora-mysql", "multi-az-mysql"]
)


def options(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 20, **extra}


async def value(dsn_target: str, sim: AuroraSimulator, query: str) -> Any:
    """One value read straight from an instance with plain aiomysql (no failover, no aurora_async)."""
    target = sim.endpoint(dsn_target) if dsn_target not in ("cluster", "reader") else None
    host, port = (target or sim.cluster_endpoint).split(":")
    conn = await aiomysql.connect(host=host, port=int(port), user="admin", db="app", connect_timeout=5)
    try:
        async with conn.cursor() as cur:
            await cur.execute(query)
            row = await cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


async def scalar(conn: AuroraMySQLConnection, query: str, args: Any = None) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(query, args)
        row = await cur.fetchone()
        return row[0] if row else None


async def _fails_over(action: Callable[[], Awaitable[Any]]) -> FailoverSuccessError:
    with pytest.raises(FailoverSuccessError) as caught:
        await action()
    assert caught.value.__cause__ is not None
    return caught.value


@pytest.fixture
async def conn(aurora_mysql: AuroraSimulator) -> AsyncIterator[AuroraMySQLConnection]:
    connection = await aurora_async.connect(aurora_mysql.dsn("cluster"), **options(aurora_mysql))
    yield connection
    await connection.ensure_closed()


@BOTH
async def test_connects_to_the_writer_with_the_aiomysql_api(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        assert isinstance(conn, AuroraMySQLConnection)
        assert conn.instance.instance_id == "11" and conn.role is Role.WRITER
        cluster = registry.clusters()[0]
        assert cluster.dialect is not None
        assert cluster.dialect.code == ("aurora-mysql" if sim.topology == "aurora" else "multi-az-mysql")
        assert cluster.topology is not None and len(cluster.topology.readers) == 2
        assert await scalar(conn, "SELECT @@server_id") == 11
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
        assert await scalar(conn, "SELECT count(*) FROM t") == 2
        await conn.ping()
        assert isinstance(conn.raw, aiomysql.Connection)
        assert conn.get_server_info() == conn.raw.get_server_info()  # forwarded to aiomysql
    assert conn.closed
    assert registry.clusters() == []


@BOTH
async def test_stale_writer_endpoint_at_connect_lands_on_the_writer(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    sim.dns_delay = 5.0
    report = await sim.failover()
    assert await value("cluster", sim, "SELECT @@read_only") == 1  # the endpoint still leads to 11
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        assert conn.instance.instance_id == report.new_writer
        assert await scalar(conn, "SELECT @@read_only") == 0


async def test_reader_modes_land_on_replicas(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    for mode in ("strict_reader", "reader_or_writer"):
        async with aurora_async.connect(sim.dsn("reader"), **options(sim, failover_mode=mode)) as conn:
            assert conn.role is Role.READER and conn.instance.instance_id in sim.reader_ids
            assert await scalar(conn, "SELECT @@read_only") == 1
    async with aurora_async.connect(
        sim.dsn("cluster"), **options(sim, failover_mode="strict_reader")
    ) as conn:
        assert conn.role is Role.READER  # asked for a reader, was given the writer: moved


@BOTH
async def test_failover_of_an_idle_connection(
    aurora_mysql: AuroraSimulator, conn: AuroraMySQLConnection
) -> None:
    sim = aurora_mysql
    report = await sim.failover()
    cur = await conn.cursor()
    error = await _fails_over(lambda: cur.execute("SELECT 1"))
    assert error.may_have_run is False  # the socket was closed: nothing was sent
    assert conn.instance.instance_id == report.new_writer and conn.role is Role.WRITER
    await cur.execute("SELECT @@server_id")  # the same cursor object works on the new connection
    assert await cur.fetchone() == (int(report.new_writer),)
    await cur.execute("CREATE TABLE after_failover(x int)")  # writable


async def test_failover_mid_query(aurora_mysql: AuroraSimulator, conn: AuroraMySQLConnection) -> None:
    sim = aurora_mysql
    query = asyncio.ensure_future(scalar(conn, "SELECT SLEEP(30)"))

    async def sleeping() -> bool:
        return bool(
            await value(
                "11",
                sim,
                "SELECT count(*) FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP%'",
            )
        )

    await eventually(sleeping, timeout=5, what="the query to start")
    started = time.monotonic()
    report = await sim.failover()
    with pytest.raises(FailoverSuccessError) as caught:
        await query
    assert caught.value.may_have_run is True  # it was running on the old writer
    assert time.monotonic() - started < 15
    assert conn.instance.instance_id == report.new_writer


@BOTH
async def test_failover_mid_transaction(aurora_mysql: AuroraSimulator, conn: AuroraMySQLConnection) -> None:
    sim = aurora_mysql
    cur = await conn.cursor()
    await cur.execute("CREATE TABLE ledger(id int PRIMARY KEY)")
    await conn.begin()
    await cur.execute("INSERT INTO ledger VALUES (1)")
    await sim.failover()
    with pytest.raises(TransactionResolutionUnknownError) as caught:
        await cur.execute("INSERT INTO ledger VALUES (2)")
    assert isinstance(caught.value.__cause__, pymysql.err.Error)
    assert not conn.is_in_transaction()
    # the begin() block is lost: until it ends, calls are refused (its later statements would commit
    # without the ones the failover took away)
    with pytest.raises(TransactionResolutionUnknownError, match="lost"):
        await cur.execute("SELECT count(*) FROM ledger")
    await conn.rollback()  # ends it (the server rolled it back with the old connection)
    await cur.execute("SELECT count(*) FROM ledger")
    assert await cur.fetchone() == (0,)  # the transaction never committed
    await conn.begin()  # and the connection works for the retry
    await cur.executemany("INSERT INTO ledger VALUES (%s)", [(1,), (2,)])
    await conn.commit()
    assert await value(sim.writer_id, sim, "SELECT count(*) FROM ledger") == 2


@BOTH
async def test_connection_lost_during_commit(
    aurora_mysql: AuroraSimulator, conn: AuroraMySQLConnection
) -> None:
    sim = aurora_mysql
    cur = await conn.cursor()
    await cur.execute("CREATE TABLE ledger(id int PRIMARY KEY)")
    await sim.drop_after_commit("11")  # the server commits; the client never hears so
    await conn.begin()
    await cur.execute("INSERT INTO ledger VALUES (1)")
    with pytest.raises(TransactionResolutionUnknownError):
        await conn.commit()
    assert not conn.is_in_transaction()
    assert await scalar(conn, "SELECT count(*) FROM ledger") == 1  # it had committed: don't blindly retry
    assert conn.instance.instance_id == "11" and conn.role is Role.WRITER  # same writer, new connection


@BOTH
async def test_read_only_error_fails_over_in_strict_writer_mode(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    reader = sim.reader_ids[0]
    # straight to a replica, without initial_connection: the first write is refused (1290), which in
    # strict_writer mode means "this is no longer the writer": fail over to the writer
    async with aurora_async.connect(sim.dsn(reader), **options(sim, plugins=("failover",))) as conn:
        assert conn.instance.instance_id == reader and conn.role is Role.READER
        cur = await conn.cursor()
        error = await _fails_over(lambda: cur.execute("CREATE TABLE ro(x int)"))
        assert error.may_have_run is False  # the replica refused it
        assert isinstance(error.__cause__, pymysql.err.OperationalError) and error.__cause__.args[0] == 1290
        await cur.execute("CREATE TABLE ro(x int)")
        await cur.execute("INSERT INTO ro VALUES (1)")
        await conn.commit()
        assert conn.instance.instance_id == sim.writer_id and conn.instance.role is Role.WRITER
        await sim.switchover()  # and a demoted writer: the write fails over again, to the new writer
        await _fails_over(lambda: cur.execute("INSERT INTO ro VALUES (2)"))
        await cur.execute("INSERT INTO ro VALUES (2)")
        await conn.commit()
        assert conn.instance.instance_id == sim.writer_id


async def test_session_state_follows_the_failover(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
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


async def test_many_connections_share_one_writer_search(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    conns = [await aurora_async.connect(sim.dsn("cluster"), **options(sim)) for _ in range(50)]
    try:
        cluster = registry.clusters()[0]
        assert len(registry.clusters()) == 1 and cluster.refs == 50
        report = await sim.failover()
        searches_before = cluster.stats["writer_searches"]
        results = await asyncio.gather(*(scalar(c, "SELECT 1") for c in conns), return_exceptions=True)
        assert all(isinstance(r, FailoverSuccessError) for r in results), {type(r) for r in results}
        assert {c.instance.instance_id for c in conns} == {report.new_writer}
        assert cluster.stats["writer_searches"] - searches_before <= 1
        assert [await scalar(c, "SELECT 1") for c in conns[:5]] == [1] * 5
    finally:
        await asyncio.gather(*(c.ensure_closed() for c in conns))
    assert registry.clusters() == []


@pytest.mark.parametrize("aurora_mysql", [{"delays": FailoverDelays(promotion=0.5)}], indirect=True)
async def test_failover_gives_up_at_the_deadline(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim, failover_timeout=2))
    for instance_id in sim.instance_ids:
        await sim.crash(instance_id)
    started = time.monotonic()
    with pytest.raises(FailoverFailedError) as caught:
        await scalar(conn, "SELECT 1")
    assert 1.5 <= time.monotonic() - started < 6
    assert caught.value.__cause__ is not None
    assert conn.closed


@BOTH
async def test_tracker_closes_idle_connections_on_the_old_writer(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    busy = await aurora_async.connect(sim.dsn("cluster"), **options(sim))
    idle = await aurora_async.connect(sim.dsn("cluster"), **options(sim))
    try:
        await sim.switchover()  # the old writer comes back as a replica: idle would silently read there
        await _fails_over(lambda: scalar(busy, "SELECT 1"))
        # the failover published the new writer: the tracker closed idle's physical connection
        assert idle.raw.is_closed()
        error = await _fails_over(lambda: scalar(idle, "SELECT 1"))
        assert error.may_have_run is False
        assert idle.instance.instance_id == sim.writer_id
    finally:
        await busy.ensure_closed()
        await idle.ensure_closed()


@BOTH
async def test_strict_reader_failover_moves_to_another_replica(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    async with aurora_async.connect(sim.dsn("reader"), **options(sim, failover_mode="strict_reader")) as conn:
        first = conn.instance.instance_id
        await sim.crash(first)
        await _fails_over(lambda: scalar(conn, "SELECT 1"))
        assert conn.role is Role.READER and conn.instance.instance_id not in (first, sim.writer_id)


@BOTH
async def test_black_holed_writer_is_cut_short_by_host_monitoring(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        query = asyncio.ensure_future(scalar(conn, "SELECT SLEEP(20)"))
        await sim.blackhole("11")
        started = time.monotonic()
        failover = asyncio.ensure_future(sim.failover())
        with pytest.raises(FailoverSuccessError):
            await query
        assert time.monotonic() - started < 12  # monitoring aborted it; TCP alone would take minutes
        report = await failover
        assert conn.instance.instance_id == report.new_writer


async def test_nothing_is_left_after_close(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    before = set(asyncio.all_tasks())
    conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim, topology_refresh=0.2))
    cluster = registry.clusters()[0]

    async def refreshed() -> bool:
        return bool(cluster.stats["topology_reads"] >= 2)

    await eventually(refreshed, timeout=5, what="the monitor to refresh")
    await conn.ensure_closed()
    assert registry.clusters() == []
    assert set(asyncio.all_tasks()) - before <= {asyncio.current_task()}
    sessions = await value(
        "11", sim, "SELECT count(*) FROM information_schema.processlist WHERE user = 'admin'"
    )
    assert sessions == 1  # only the query that counts


async def test_plain_connection_and_connect_raw(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    async with aurora_async.connect(sim.dsn("cluster"), plugins=()) as conn:
        assert await scalar(conn, "SELECT 1") == 1
        cluster = registry.clusters()[0]
        assert cluster.dialect is None and cluster.topology is None
        assert conn.role is Role.WRITER
    raw = await aurora_async.connect_raw(sim.dsn("reader"), **options(sim, failover_mode="strict_reader"))
    try:
        assert isinstance(raw, aiomysql.Connection)
        async with raw.cursor() as cur:
            await cur.execute("SELECT @@read_only")
            assert await cur.fetchone() == (1,)
        assert len(registry.clusters()) == 1
    finally:
        await raw.ensure_closed()
    assert registry.clusters() == []
    with pytest.raises(ConfigurationError, match="create_pool"):
        await aurora_async.create_pool(sim.dsn("cluster"))


async def test_read_write_splitting(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    plugins = ("initial_connection", "failover", "read_write_splitting")
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim, plugins=plugins)) as conn:
        await conn.set_read_only(True)
        assert conn.role is Role.READER and await scalar(conn, "SELECT @@read_only") == 1
        await conn.set_read_only(False)
        assert conn.instance.role is Role.WRITER and await scalar(conn, "SELECT @@read_only") == 0
        await conn.begin()
        await scalar(conn, "SELECT 1")
        with pytest.raises(aurora_async.ReadWriteSplittingError):
            await conn.set_read_only(True)
        await conn.rollback()
