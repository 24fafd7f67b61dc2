"""create_pool() for MySQL on the simulator's MariaDB servers: the aiomysql facade in a pool, and a
release that puts each session back as its pool opened it, whatever the previous holder did to it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomysql
import pymysql
import pytest

import aurora_async
from aurora_async import AuroraMySQLConnection
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator

from ._engine_ops import MyOps

pytestmark = pytest.mark.parametrize("engine", ["mysql"])

LOCK = "pool-test-lock"


def options(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 20, **extra}


async def scalar(conn: AuroraMySQLConnection, sql: str) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
        return row[0] if row else None


async def run(conn: AuroraMySQLConnection, *statements: str) -> None:
    async with conn.cursor() as cur:
        for sql in statements:
            await cur.execute(sql)


async def session_of(conn: AuroraMySQLConnection) -> dict[str, Any]:
    """What the server says about this session: the state a previous holder could have left."""
    async with conn.cursor(aiomysql.DictCursor) as cur:
        await cur.execute(
            "SELECT DATABASE() AS db, @secret AS secret, @origin AS origin, "
            "@@session.character_set_client AS charset, @@session.sql_mode AS sql_mode, "
            "@@session.autocommit AS autocommit, @@session.tx_isolation AS isolation, "
            f"IS_FREE_LOCK('{LOCK}') AS lock_free"
        )
        row: dict[str, Any] = await cur.fetchone()
    row["in_transaction"] = conn.raw.is_in_transaction()
    row["client_autocommit"] = conn.get_autocommit()
    row["client_charset"] = conn.raw.charset
    return row


async def test_pool_has_the_facade_and_the_pool_api(sim: AuroraSimulator) -> None:
    async with aurora_async.create_pool(
        sim.dsn("cluster"), engine="mysql", min_size=2, max_size=3, **options(sim)
    ) as pool:
        assert pool.stats() == {
            "size": 2, "idle": 2, "in_use": 0, "retired_by_failover": 0, "opened": 2,
            "min_size": 2, "max_size": 3,
        }  # fmt: skip
        async with pool.acquire() as conn:
            assert isinstance(conn, AuroraMySQLConnection) and await scalar(conn, "SELECT 1") == 1
            assert pool.stats()["in_use"] == 1
        held = [await pool.acquire() for _ in range(3)]
        with pytest.raises(TimeoutError):
            await pool.acquire(timeout=0.2)  # all three slots taken
        await asyncio.gather(*(pool.release(c) for c in held))
        with pytest.raises(ValueError, match="not acquired from this pool"):
            await pool.release(held[0])
        assert len(registry.clusters()) == 1  # one cluster (one monitor) for the whole pool
    assert pool.stats()["size"] == 0 and registry.clusters() == []
    assert all(c.closed for c in held)


async def test_release_leaves_nothing_of_one_checkout_to_the_next(sim: AuroraSimulator) -> None:
    ops = MyOps(sim)
    async with aurora_async.create_pool(sim.dsn("cluster"), min_size=1, max_size=1, **options(sim)) as pool:
        async with pool.acquire() as conn:
            await ops.write(conn, "CREATE TABLE ledger (id int PRIMARY KEY)")
            fresh = await session_of(conn)
        async with pool.acquire() as conn:
            await run(
                conn,
                "SET @secret = 'left over'",
                "SET NAMES latin1",
                "SET SESSION sql_mode = 'ANSI'",
                "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                "CREATE TEMPORARY TABLE scratch (a int)",
                f"SELECT GET_LOCK('{LOCK}', 0)",
                "PREPARE stmt FROM 'SELECT 1'",
                "USE information_schema",
            )
            await conn.begin()
            await run(conn, "INSERT INTO app.ledger VALUES (1)")  # never committed
            dirty = await session_of(conn)
        assert dirty != fresh  # the checkout really changed its session
        async with pool.acquire() as again:
            assert again is conn  # the same connection, one slot
            assert await session_of(again) == fresh
            with pytest.raises(pymysql.err.ProgrammingError) as gone:
                await run(again, "SELECT * FROM scratch")
            assert gone.value.args[0] == 1146  # the temporary table went with the session
            with pytest.raises(pymysql.err.MySQLError) as unprepared:
                await run(again, "EXECUTE stmt")
            assert unprepared.value.args[0] == 1243  # unknown prepared statement
        assert await ops.outside("cluster", "SELECT count(*) FROM ledger") == 0  # rolled back, not committed
        assert pool.stats()["opened"] == 1  # reset, not replaced


async def test_two_pools_with_different_settings_each_get_their_own_back(sim: AuroraSimulator) -> None:
    a_options = options(sim, autocommit=True, charset="latin1", init_command="SET @origin = 'a'")
    b_options = options(sim, autocommit=False, sql_mode="'ANSI_QUOTES'", init_command="SET @origin = 'b'")
    async with (
        aurora_async.create_pool(sim.dsn("cluster"), min_size=1, max_size=1, **a_options) as a,
        aurora_async.create_pool(sim.dsn("cluster"), min_size=1, max_size=1, **b_options) as b,
    ):
        expected = {}
        for pool in (a, b):
            async with pool.acquire() as conn:
                expected[pool] = await session_of(conn)
        assert expected[a]["origin"] == "a" and expected[a]["autocommit"] == 1
        assert expected[a]["charset"] == "latin1" == expected[a]["client_charset"]
        assert expected[b]["origin"] == "b" and expected[b]["autocommit"] == 0
        assert expected[b]["sql_mode"] == "ANSI_QUOTES"

        async def dirty(conn: AuroraMySQLConnection) -> None:
            await conn.autocommit(not conn.get_autocommit())
            await conn.set_charset("utf8mb3")
            await run(conn, "SET @origin = 'someone else'", "SET SESSION sql_mode = 'TRADITIONAL'")

        for pool in (a, b):
            async with pool.acquire() as conn:
                await dirty(conn)
        for pool in (a, b):
            async with pool.acquire() as conn:
                assert await session_of(conn) == expected[pool]

        report = await sim.failover()  # new physical connections, opened with each pool's settings
        for pool in (a, b):
            async for attempt in aurora_async.attempts_of(attempts=3):
                async with attempt, pool.acquire() as conn:
                    await dirty(conn)
        for pool in (a, b):
            async with pool.acquire() as conn:
                assert str(await scalar(conn, "SELECT @@server_id")) == report.new_writer
                assert await session_of(conn) == expected[pool]
