"""create_pool() on the simulator, on both engines: the pool API, failover without special code, and a
session reset on release that leaves nothing of one checkout to the next (MySQL: ``test_pool_mysql``)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

import aurora_async
from aurora_async import AuroraConnection, ConfigurationError, FailoverSuccessError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from tests.helpers import AURORA_HOST_ID_SQL, eventually

from ._engine_ops import EngineOps

TASKS = 100


def options(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 20, **extra}


async def test_pool_has_asyncpgs_api(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    async with aurora_async.create_pool(sim.dsn("cluster"), min_size=2, max_size=3, **options(sim)) as pool:
        assert pool.stats() == {
            "size": 2, "idle": 2, "in_use": 0, "retired_by_failover": 0, "opened": 2,
            "min_size": 2, "max_size": 3,
        }  # fmt: skip
        async with pool.acquire() as conn:
            assert isinstance(conn, AuroraConnection) and await conn.fetchval("SELECT 1") == 1
            await conn.execute("SET application_name = 'dirty'")
            await conn.execute("BEGIN")  # left open: release must roll it back
            assert pool.stats()["in_use"] == 1
        again = await pool.acquire()
        assert await again.fetchval("SHOW application_name") != "dirty" and not again.is_in_transaction()
        others = [await pool.acquire(), await pool.acquire()]
        with pytest.raises(TimeoutError):
            await pool.acquire(timeout=0.2)  # all three slots taken
        await asyncio.gather(*(pool.release(c) for c in [again, *others]))
        with pytest.raises(ValueError, match="not acquired from this pool"):
            await pool.release(again)
        assert len(registry.clusters()) == 1  # one cluster (one monitor) for the whole pool
    assert pool.stats()["size"] == 0 and registry.clusters() == []


async def test_close_waits_for_acquired_connections(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    pool = await aurora_async.create_pool(sim.dsn("cluster"), min_size=1, **options(sim))
    conn = await pool.acquire()
    closing = asyncio.ensure_future(pool.close())
    await asyncio.sleep(0)  # let close() start waiting (a scheduling step, not a timed wait)
    assert not closing.done()
    with pytest.raises(RuntimeError, match="closing"):
        await pool.acquire()
    await pool.release(conn)
    await asyncio.wait_for(closing, 10)
    assert registry.clusters() == []


def test_bad_pool_sizes_are_named() -> None:
    with pytest.raises(ConfigurationError, match="min_size"):
        aurora_async.create_pool("postgresql://u@h/db", min_size=-1)
    with pytest.raises(ConfigurationError, match="max_size"):
        aurora_async.create_pool("postgresql://u@h/db", min_size=5, max_size=2)
    with pytest.raises(ConfigurationError, match="acquire_timeout"):
        aurora_async.create_pool("postgresql://u@h/db", acquire_timeout=0)


# -- on both engines ------------------------------------------------------------------------------------

# a unit of work: store its id and the instance that took it, idempotently (a COMMIT cut off may have landed)
UNIT_SQL = {
    "postgresql": "INSERT INTO work VALUES ({id}, pg_catalog.aurora_db_instance_identifier()) "
    "ON CONFLICT (id) DO NOTHING",
    "mysql": "INSERT INTO work VALUES ({id}, @@server_id) ON DUPLICATE KEY UPDATE id = id",
}
SHORT_SLEEP = {"postgresql": "SELECT pg_sleep(0.3)", "mysql": "SELECT SLEEP(0.3)"}


async def test_100_tasks_through_a_failover_each_unit_of_work_exactly_once(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    async with aurora_async.create_pool(sim.dsn("cluster"), min_size=10, max_size=20, **options(sim)) as pool:
        async with pool.acquire() as conn:
            await ops.write(conn, "CREATE TABLE work(id int PRIMARY KEY, done_on text)")
        started = asyncio.Event()
        attempts: dict[int, int] = {}

        @aurora_async.retry_on_failover(attempts=5, deadline=30)
        async def unit(task_id: int) -> str:
            attempts[task_id] = attempts.get(task_id, 0) + 1
            async with pool.acquire() as conn:
                async with ops.transaction(conn):
                    await ops.execute(conn, UNIT_SQL[ops.engine].format(id=task_id))
                    if task_id % 10 == 0:
                        started.set()
                        await ops.execute(conn, SHORT_SLEEP[ops.engine])  # in flight at the failover
                return await ops.host_id(conn)

        tasks = [asyncio.ensure_future(unit(i)) for i in range(TASKS)]
        await started.wait()
        report = await sim.failover()
        done = await asyncio.wait_for(asyncio.gather(*tasks), 60)  # no task hangs
        assert len(done) == TASKS
        rows = await ops.outside(report.new_writer, "SELECT count(DISTINCT id) FROM work")
        assert rows == TASKS  # every unit of work is there, once (primary key)
        assert any(n > 1 for n in attempts.values())  # the failover did interrupt some of them
        # afterwards, every connection the pool hands out is on the new writer
        conns = [await pool.acquire() for _ in range(pool.stats()["max_size"])]
        try:
            ids = set(await asyncio.gather(*(ops.host_id(c) for c in conns)))
        finally:
            await asyncio.gather(*(pool.release(c) for c in conns))
        assert ids == {report.new_writer}
        stats = pool.stats()
        assert stats["size"] <= stats["max_size"] and stats["in_use"] == 0


async def test_idle_connections_on_the_demoted_writer_are_retired(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    async with aurora_async.create_pool(sim.dsn("cluster"), min_size=5, max_size=5, **options(sim)) as pool:
        report = await sim.switchover()  # the old writer comes back as a replica: idle ones would read there
        [cluster] = registry.clusters()

        async def learned() -> bool:
            writer = cluster.topology.writer if cluster.topology else None
            return writer is not None and writer.instance_id == report.new_writer

        await eventually(learned, timeout=10, what="the cluster to learn the new writer")
        conns = [await pool.acquire() for _ in range(5)]
        try:
            ids = await asyncio.gather(*(ops.host_id(c) for c in conns))  # no error at all
        finally:
            await asyncio.gather(*(pool.release(c) for c in conns))
        assert set(ids) == {report.new_writer}
        assert pool.stats()["retired_by_failover"] == 5 and pool.stats()["opened"] == 10


async def test_a_connection_that_failed_over_goes_back_usable(sim: AuroraSimulator, ops: EngineOps) -> None:
    async with aurora_async.create_pool(sim.dsn("cluster"), min_size=1, max_size=1, **options(sim)) as pool:
        conn = await pool.acquire()
        report = await sim.failover()
        with pytest.raises(FailoverSuccessError):
            await ops.scalar(conn, "SELECT 1")
        await pool.release(conn)
        async with pool.acquire() as same:
            assert same is conn and await ops.host_id(same) == report.new_writer
        assert pool.stats()["retired_by_failover"] == 0


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_a_pool_on_a_single_instance_keeps_its_connections(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """With a dialect that has no topology (a plain RDS instance), the pool's one instance is listed
    under a placeholder id: its connections are not "off the writer" and are kept."""
    plain = {"postgresql": "pg", "mysql": "mysql"}[sim.engine]
    async with aurora_async.create_pool(
        sim.dsn("cluster"), min_size=2, max_size=2, **options(sim, wrapper_dialect=plain)
    ) as pool:
        for _ in range(5):
            async with pool.acquire() as conn:
                assert await ops.scalar(conn, "SELECT 1") == 1
        assert pool.stats()["opened"] == 2 and pool.stats()["retired_by_failover"] == 0


async def test_read_only_checkout_is_on_a_reader_and_goes_back_to_the_writer(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    plugins = ("initial_connection", "aurora_connection_tracker", "failover", "read_write_splitting")
    async with aurora_async.create_pool(
        sim.dsn("cluster"), min_size=1, max_size=1, **options(sim, plugins=plugins)
    ) as pool:
        async with pool.acquire(read_only=True) as conn:
            assert await ops.is_reader(conn) and await ops.host_id(conn) != sim.writer_id
        async with pool.acquire() as same:
            assert same is conn and not await ops.is_reader(same)
            assert await ops.host_id(same) == sim.writer_id


async def test_raw_connector_feeds_asyncpgs_own_pool_across_a_failover(
    aurora_postgres: AuroraSimulator,
) -> None:

    sim = aurora_postgres
    async with aurora_async.raw_connector(sim.dsn("cluster"), **options(sim)) as connector:
        pool = await asyncpg.create_pool(connect=connector, min_size=2, max_size=2)
        try:
            assert await pool.fetchval(AURORA_HOST_ID_SQL) == "11"
            report = await sim.failover()
            # the tracker closed the pooled connections to the old writer; asyncpg's pool reconnects
            # through the connector, which still knows the topology
            async for attempt in aurora_async.attempts_of(
                attempts=3, retry_if=lambda e: isinstance(e, asyncpg.InterfaceError | OSError)
            ):
                async with attempt:
                    assert await pool.fetchval(AURORA_HOST_ID_SQL) == report.new_writer
        finally:
            await pool.close()
    with pytest.raises(ConfigurationError, match="pass it to raw_connector"):
        await aurora_async.raw_connector(sim.dsn("cluster"), **options(sim))(record_class=dict)
