"""read_write_splitting on the simulator: routing seen through aurora_db_instance_identifier()."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

import aurora_async
from aurora_async import ConfigurationError, FailoverFailedError, ReadWriteSplittingError, Role
from aurora_async.testing import AuroraSimulator
from tests.helpers import AURORA_HOST_ID_SQL, IS_READER_SQL

PLUGINS = (
    "initial_connection",
    "aurora_connection_tracker",
    "failover",
    "host_monitoring",
    "read_write_splitting",
)


def options(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "failover_timeout": 20,
        "plugins": PLUGINS,
        **extra,
    }


async def test_switching_moves_the_session_and_reuses_connections(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        writer_raw = conn.raw
        assert await conn.fetchval(AURORA_HOST_ID_SQL) == "11" and not conn.read_only
        await conn.set_read_only(True)
        reader_raw, reader = conn.raw, await conn.fetchval(AURORA_HOST_ID_SQL)
        assert reader in sim.reader_ids and conn.role is Role.READER and conn.read_only
        assert await conn.fetchval(IS_READER_SQL) is True
        await conn.set_read_only(False)
        assert conn.raw is writer_raw and await conn.fetchval(AURORA_HOST_ID_SQL) == "11"
        await conn.set_read_only(True)
        assert conn.raw is reader_raw  # the cached reader connection, not a new one
        await conn.set_read_only(True)  # no-op
        assert conn.raw is reader_raw
    assert writer_raw.is_closed() and reader_raw.is_closed()  # close() closes both


async def test_no_switch_inside_a_transaction(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn, conn.transaction():
        with pytest.raises(ReadWriteSplittingError, match="inside a transaction"):
            await conn.set_read_only(True)
        assert await conn.fetchval(AURORA_HOST_ID_SQL) == "11"
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim, plugins=("failover",))) as plain:
        with pytest.raises(ConfigurationError, match="read_write_splitting"):
            await plain.set_read_only(True)
    with pytest.raises(ConfigurationError, match="read_write_splitting"):
        aurora_async.connect(sim.dsn("cluster"), read_only=True, plugins=("failover",))


async def test_falls_back_to_the_writer_when_no_reader_is_up(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    for reader in sim.reader_ids:
        await sim.crash(reader)
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        writer_raw = conn.raw
        await conn.set_read_only(True)
        assert conn.read_only and await conn.fetchval(AURORA_HOST_ID_SQL) == "11"
        # and back: the session never left the writer, so it keeps its connection (no new one, none
        # dropped unclosed)
        await conn.set_read_only(False)
        assert not conn.read_only and conn.raw is writer_raw and not writer_raw.is_closed()
    assert writer_raw.is_closed()


@pytest.mark.aurora_simulator(instances=4)
async def test_strategies_spread_readers(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    robin = [
        await aurora_async.connect(
            sim.dsn("cluster"), read_only=True, **options(sim, reader_host_selector_strategy="round_robin")
        )
        for _ in range(6)
    ]
    try:
        seen = [await c.fetchval(AURORA_HOST_ID_SQL) for c in robin]
        assert sorted(set(seen)) == sorted(sim.reader_ids) and all(seen.count(r) == 2 for r in sim.reader_ids)
    finally:
        for c in robin:
            await c.close()
    least = [
        await aurora_async.connect(
            sim.dsn("cluster"),
            read_only=True,
            **options(sim, reader_host_selector_strategy="least_connections"),
        )
        for _ in range(6)
    ]
    try:
        seen = [await c.fetchval(AURORA_HOST_ID_SQL) for c in least]
        assert all(seen.count(r) == 2 for r in sim.reader_ids)  # always the least loaded reader
    finally:
        for c in least:
            await c.close()


async def test_pool_hands_out_readers_on_request(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.create_pool(sim.dsn("cluster"), min_size=2, max_size=2, **options(sim)) as pool:
        async with pool.acquire(read_only=True) as conn:
            assert await conn.fetchval(AURORA_HOST_ID_SQL) in sim.reader_ids
        async with pool.acquire() as conn:
            assert not conn.read_only and await conn.fetchval(AURORA_HOST_ID_SQL) == "11"
        async with pool.acquire() as first, pool.acquire() as second:  # both back on the writer
            assert {await first.fetchval(AURORA_HOST_ID_SQL), await second.fetchval(AURORA_HOST_ID_SQL)} == {
                "11"
            }


async def test_a_read_only_session_fails_over_to_another_reader(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), read_only=True, **options(sim)) as conn:
        first = await conn.fetchval(AURORA_HOST_ID_SQL)
        await sim.crash(first)
        with pytest.raises(aurora_async.FailoverSuccessError):
            await conn.fetchval("SELECT 1")
        assert await conn.fetchval(AURORA_HOST_ID_SQL) != first
        await conn.set_read_only(False)
        assert await conn.fetchval(AURORA_HOST_ID_SQL) == "11"


async def test_a_failed_failover_closes_the_cached_reader(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim, failover_timeout=2))
    await conn.set_read_only(True)
    reader_raw = conn.raw
    await conn.set_read_only(False)  # the reader's connection stays cached for the next switch
    assert not reader_raw.is_closed()
    await sim.crash(sim.writer_id)  # and no failover: no writer to be found
    with pytest.raises(FailoverFailedError):
        await conn.fetchval("SELECT 1")
    assert conn.is_closed() and reader_raw.is_closed()


async def test_a_refused_login_on_a_switch_is_the_drivers_error_and_the_session_stays(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    await sim.set_password("switching_user", "switch-pw-1")
    dsn = sim.dsn("cluster").replace("postgres@", "switching_user:switch-pw-1@")
    async with aurora_async.connect(dsn, **options(sim)) as conn:
        await conn.set_read_only(True)
        reader = await conn.fetchval(AURORA_HOST_ID_SQL)
        await sim.set_password("switching_user", "switch-pw-2")  # rotated under the open session
        conn._drop_spare()  # so that the way back needs a new writer connection
        with pytest.raises(asyncpg.InvalidPasswordError):
            await conn.set_read_only(False)
        assert conn.read_only and await conn.fetchval(AURORA_HOST_ID_SQL) == reader  # where it was
