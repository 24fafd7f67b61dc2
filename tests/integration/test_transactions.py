"""Transaction blocks and failover: a block never reports success for partial work, and starting a
transaction or a cursor on a connection whose physical connection died while idle fails over like any
other call. The data in the database is the judge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import aurora_async
from aurora_async import (
    AuroraConnection,
    AuroraMySQLConnection,
    FailoverSuccessError,
    TransactionResolutionUnknownError,
)
from aurora_async.testing import AuroraSimulator

RETRYABLE = (FailoverSuccessError, TransactionResolutionUnknownError)


def options(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 20, **extra}


@pytest.fixture
async def pg(aurora_postgres: AuroraSimulator) -> AsyncIterator[AuroraConnection]:
    sim = aurora_postgres
    conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim))
    await conn.execute("CREATE TABLE t (unit text, n int, PRIMARY KEY (unit, n))")
    yield conn
    await conn.close()


async def _stored(conn: AuroraConnection, unit: str) -> list[int]:
    return [r[0] for r in await conn.fetch("SELECT n FROM t WHERE unit = $1 ORDER BY n", unit)]


# -- starting a transaction or a cursor on a connection that died while idle -------------------------------


async def test_a_transaction_block_on_a_dead_idle_connection_fails_over_and_is_retried(
    pg: AuroraConnection,
) -> None:
    pg.raw.terminate()  # as the host monitor, the tracker or a network reset would, while idle
    attempts = 0

    @aurora_async.retry_on_failover(attempts=3)
    async def unit() -> None:
        nonlocal attempts
        attempts += 1
        async with pg.transaction():
            await pg.execute("INSERT INTO t VALUES ('u', 1)")
            await pg.execute("INSERT INTO t VALUES ('u', 2)")

    await unit()
    assert attempts == 2
    assert await _stored(pg, "u") == [1, 2]


async def test_starting_a_block_on_a_dead_connection_raises_a_failover_error(pg: AuroraConnection) -> None:
    pg.raw.terminate()
    with pytest.raises(FailoverSuccessError) as raised:
        async with pg.transaction():
            raise AssertionError("the block must not run on a dead connection")
    assert raised.value.may_have_run is False
    async with pg.transaction():  # and the connection works
        await pg.execute("INSERT INTO t VALUES ('after', 1)")
    assert await _stored(pg, "after") == [1]


async def test_a_cursor_on_a_dead_connection_fails_over(pg: AuroraConnection) -> None:
    await pg.execute("INSERT INTO t SELECT 'c', g FROM generate_series(1, 5) g")
    # inside a block (where asyncpg's cursors live) the physical connection dies while idle (as a host
    # monitor's abort would): the cursor fails over, and the block is lost
    with pytest.raises(TransactionResolutionUnknownError):
        async with pg.transaction():
            pg.raw.terminate()
            async for _ in pg.cursor("SELECT n FROM t WHERE unit = 'c'"):
                raise AssertionError("no row from a dead connection")
    pg.raw.terminate()
    with pytest.raises(FailoverSuccessError):  # outside a block: the call that found it dead fails over
        await pg.cursor("SELECT n FROM t WHERE unit = 'c'")
    async with pg.transaction():
        rows = [r[0] async for r in pg.cursor("SELECT n FROM t WHERE unit = 'c' ORDER BY n")]
        cursor = await pg.cursor("SELECT n FROM t WHERE unit = 'c' ORDER BY n")
        assert [r[0] for r in await cursor.fetch(2)] == [1, 2]
    assert rows == [1, 2, 3, 4, 5]


# -- a block whose connection failed over inside it -------------------------------------------------------


async def test_a_block_that_swallowed_a_failover_raises_and_stores_nothing(
    aurora_postgres: AuroraSimulator, pg: AuroraConnection
) -> None:
    with pytest.raises(TransactionResolutionUnknownError):
        async with pg.transaction():
            await pg.execute("INSERT INTO t VALUES ('s', 1)")
            await aurora_postgres.failover()
            try:
                await pg.execute("INSERT INTO t VALUES ('s', 2)")
            except RETRYABLE:
                pass  # the application swallows it and carries on
            with pytest.raises(TransactionResolutionUnknownError, match="lost"):
                await pg.execute("INSERT INTO t VALUES ('s', 3)")  # refused: the block is gone
    assert await _stored(pg, "s") == []
    async with pg.transaction():  # a new block works
        await pg.execute("INSERT INTO t VALUES ('s', 4)")
    assert await _stored(pg, "s") == [4]


async def test_an_inner_retry_inside_a_block_cannot_store_half_of_it(
    aurora_postgres: AuroraSimulator, pg: AuroraConnection
) -> None:
    """A retry helper around one statement inside the block (a common habit): after the failover each
    attempt is refused, the block raises, the outer retry re-runs the whole block: stored once, whole."""
    failed_over = False

    @aurora_async.retry_on_failover(attempts=3)
    async def unit() -> None:
        nonlocal failed_over
        async with pg.transaction():
            await pg.execute("INSERT INTO t VALUES ('r', 1) ON CONFLICT DO NOTHING")
            if not failed_over:
                failed_over = True
                await aurora_postgres.failover()

            @aurora_async.retry_on_failover(attempts=3)
            async def second() -> None:
                await pg.execute("INSERT INTO t VALUES ('r', 2) ON CONFLICT DO NOTHING")

            await second()

    await unit()
    assert await _stored(pg, "r") == [1, 2]


async def test_a_block_inside_a_lost_block_is_refused(
    aurora_postgres: AuroraSimulator, pg: AuroraConnection
) -> None:
    with pytest.raises(TransactionResolutionUnknownError):
        async with pg.transaction():
            await pg.execute("INSERT INTO t VALUES ('n', 1)")
            await aurora_postgres.failover()
            try:
                await pg.execute("INSERT INTO t VALUES ('n', 2)")
            except RETRYABLE:
                pass
            # a savepoint of the lost block; on the new connection it would be a transaction of its own,
            # committed at its end while the outer block's work is gone
            async with pg.transaction():
                await pg.execute("INSERT INTO t VALUES ('n', 3)")
    assert await _stored(pg, "n") == []


async def test_commit_of_a_manually_started_transaction_after_a_failover_raises(
    aurora_postgres: AuroraSimulator, pg: AuroraConnection
) -> None:
    tx = pg.transaction()
    await tx.start()
    await pg.execute("INSERT INTO t VALUES ('m', 1)")
    await aurora_postgres.failover()
    with pytest.raises(RETRYABLE):
        await pg.execute("INSERT INTO t VALUES ('m', 2)")
    with pytest.raises(TransactionResolutionUnknownError):
        await tx.commit()
    assert await _stored(pg, "m") == []


async def test_reset_ends_a_lost_block(aurora_postgres: AuroraSimulator, pg: AuroraConnection) -> None:
    tx = pg.transaction()
    await tx.start()
    await aurora_postgres.failover()
    with pytest.raises(RETRYABLE):
        await pg.execute("SELECT 1")
    await pg.reset()  # what a pool does at release
    assert await pg.fetchval("SELECT 1") == 1


# -- MySQL: begin() ... commit() across a failover ----------------------------------------------------------


@pytest.fixture
async def my(aurora_mysql: AuroraSimulator) -> AsyncIterator[AuroraMySQLConnection]:
    sim = aurora_mysql
    conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim))
    async with conn.cursor() as cur:
        await cur.execute("CREATE TABLE t (unit VARCHAR(8), n INT, PRIMARY KEY (unit, n))")
    await conn.commit()
    yield conn
    await conn.ensure_closed()


async def _my_stored(conn: AuroraMySQLConnection, unit: str) -> list[int]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT n FROM t WHERE unit = %s ORDER BY n", (unit,))
        rows = [r[0] for r in await cur.fetchall()]
    await conn.rollback()  # end the read's implicit transaction (autocommit is off)
    return rows


async def test_mysql_commit_after_a_swallowed_failover_raises_and_stores_nothing(
    aurora_mysql: AuroraSimulator, my: AuroraMySQLConnection
) -> None:
    await my.begin()
    async with my.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES ('s', 1)")
        await aurora_mysql.failover()
        try:
            await cur.execute("INSERT INTO t VALUES ('s', 2)")
        except RETRYABLE:
            pass
        with pytest.raises(TransactionResolutionUnknownError, match="lost"):
            await cur.execute("INSERT INTO t VALUES ('s', 3)")
    with pytest.raises(TransactionResolutionUnknownError):
        await my.commit()
    assert await _my_stored(my, "s") == []
    await my.begin()  # and a new transaction works
    async with my.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES ('s', 4)")
    await my.commit()
    assert await _my_stored(my, "s") == [4]


async def test_mysql_a_lost_begin_refuses_even_a_check_until_rolled_back(
    aurora_mysql: AuroraSimulator, my: AuroraMySQLConnection
) -> None:
    """The check-then-retry habit: after the lost transaction's error, a read that checks whether the
    work landed is refused too (it could be the lost transaction's next statement), until rollback()
    ends the transaction; then the check and the re-run store the unit once."""
    await my.begin()
    async with my.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES ('c', 1)")
        await aurora_mysql.failover()
        with pytest.raises(TransactionResolutionUnknownError):
            await cur.execute("INSERT INTO t VALUES ('c', 2)")
        for _ in range(2):  # refused each time, not only once
            with pytest.raises(TransactionResolutionUnknownError, match="lost"):
                await cur.execute("SELECT n FROM t WHERE unit = 'c'")
    await my.rollback()
    assert await _my_stored(my, "c") == []
    await my.begin()
    async with my.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES ('c', 1)")
        await cur.execute("INSERT INTO t VALUES ('c', 2)")
    await my.commit()
    assert await _my_stored(my, "c") == [1, 2]


async def test_mysql_begin_on_a_dead_idle_connection_fails_over(my: AuroraMySQLConnection) -> None:
    my.raw.terminate()
    with pytest.raises(FailoverSuccessError):
        await my.begin()
    await my.begin()
    async with my.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES ('b', 1)")
    await my.commit()
    assert await _my_stored(my, "b") == [1]


async def test_mysql_implicit_transaction_cut_by_a_failover_is_never_committed_in_part(
    aurora_mysql: AuroraSimulator, my: AuroraMySQLConnection
) -> None:
    """autocommit off (aiomysql's default): no begin(), the transaction opens with the first statement.
    A retry around one statement after a failover must not let commit() store the rest without the
    start."""
    assert my.get_autocommit() is False
    async with my.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES ('i', 1)")
        await aurora_mysql.failover()

        @aurora_async.retry_on_failover(attempts=3)
        async def second() -> None:
            await cur.execute("INSERT INTO t VALUES ('i', 2)")

        await second()
    with pytest.raises(TransactionResolutionUnknownError, match="cut off by a failover"):
        await my.commit()
    assert await _my_stored(my, "i") == []
    # the whole unit, retried around its commit, is stored once and whole
    failed_over = False

    @aurora_async.retry_on_failover(attempts=3)
    async def unit() -> None:
        nonlocal failed_over
        async with my.cursor() as cur:
            await cur.execute("INSERT INTO t VALUES ('w', 1)")
            if not failed_over:
                failed_over = True
                await aurora_mysql.failover()
            await cur.execute("INSERT INTO t VALUES ('w', 2)")
        await my.commit()

    await unit()
    assert await _my_stored(my, "w") == [1, 2]


async def test_mysql_rollback_after_a_cut_off_transaction_lets_the_next_one_commit(
    aurora_mysql: AuroraSimulator, my: AuroraMySQLConnection
) -> None:
    async with my.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES ('k', 1)")
        await aurora_mysql.failover()
        with pytest.raises(TransactionResolutionUnknownError):
            await cur.execute("INSERT INTO t VALUES ('k', 2)")
        await my.rollback()
        await cur.execute("INSERT INTO t VALUES ('k', 1)")
        await cur.execute("INSERT INTO t VALUES ('k', 2)")
    await my.commit()
    assert await _my_stored(my, "k") == [1, 2]


async def test_a_block_whose_failover_gives_up_raises_failover_failed_not_a_usable_connection_error(
    aurora_postgres: AuroraSimulator,
) -> None:
    """TransactionResolutionUnknownError says "the connection is usable"; when the failover inside
    the block gave up (here: the password changed), the block must say FailoverFailedError."""
    sim = aurora_postgres
    await sim.set_password("block_user", "block-pw-1")
    dsn = sim.dsn("cluster").replace("postgres@", "block_user:block-pw-1@")
    conn = await aurora_async.connect(dsn, **options(sim, failover_timeout=5))
    try:
        await sim.set_password("block_user", "block-pw-2")
        with pytest.raises(aurora_async.FailoverFailedError, match="refused the login"):
            async with conn.transaction():
                await sim.failover()
                await conn.execute("SELECT 1")
        assert conn.is_closed()
    finally:
        await conn.close()


async def test_mysql_commit_after_a_failover_that_gave_up_says_closed(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim, failover_timeout=2))
    try:
        await conn.begin()
        for instance_id in sim.instance_ids:
            await sim.crash(instance_id)
        with pytest.raises(aurora_async.FailoverFailedError):
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
        import pymysql

        with pytest.raises(pymysql.err.InterfaceError):
            await conn.commit()
    finally:
        await conn.ensure_closed()
