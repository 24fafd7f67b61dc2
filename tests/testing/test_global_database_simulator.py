"""The simulator's Aurora Global Database (PostgreSQL), observed with plain asyncpg: the secondary region
is a read-only physical copy with a global catalog; a switchover keeps every acknowledged write and
swaps the regions' roles; a failover loses exactly what had not reached the secondary."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest

from aurora_async.testing import AuroraSimulator, SimulatorError
from tests.helpers import CONNECTION_LOST, eventually

GLOBAL_INSTANCES = (
    "SELECT server_id, session_id, aws_region FROM pg_catalog.aurora_global_db_instance_status()"
)
LOCAL_INSTANCES = "SELECT server_id FROM pg_catalog.aurora_replica_status() ORDER BY server_id"


@pytest.fixture
async def sim() -> AsyncIterator[AuroraSimulator]:
    async with AuroraSimulator(engine="postgresql", instances=2, dns_delay=0.3) as cluster:
        conn = await asyncpg.connect(cluster.dsn("cluster"))
        await conn.execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
        await conn.close()
        yield cluster


async def value(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def ids_at(dsn: str) -> set[int]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return {int(r[0]) for r in await conn.fetch("SELECT id FROM ledger")}
    finally:
        await conn.close()


async def test_the_secondary_region_is_a_read_only_copy_with_a_global_catalog(sim: AuroraSimulator) -> None:
    gdb = await sim.create_global_database("eu-west-1")
    assert (gdb.primary_region, gdb.secondary_region) == ("us-east-1", "eu-west-1")
    secondary = gdb.secondary
    assert secondary.instance_ids == ["111", "112"] and secondary.cluster_endpoint.startswith("127.0.43.")
    primary = await asyncpg.connect(sim.dsn("cluster"))
    try:
        # DDL and rows made after the secondary exists reach it: it is a physical copy
        await primary.execute("CREATE TABLE later (x int)")
        await primary.execute("INSERT INTO later VALUES (1)")
        for target in ("cluster", "reader"):
            dsn = secondary.dsn(target)

            async def arrived(dsn: str = dsn) -> bool:
                return (
                    await value(
                        dsn, "SELECT to_regclass('later') IS NOT NULL AND (SELECT count(*) FROM later) = 1"
                    )
                    is True
                )

            await eventually(arrived, what=f"the secondary's {target} to have the new table")
            assert await value(dsn, "SELECT pg_is_in_recovery()") is True
        # one global catalog: every instance with its region, the primary writer the only master
        rows = {(r[0], r[2]) for r in await primary.fetch(GLOBAL_INSTANCES)}
        assert rows == {("11", "us-east-1"), ("12", "us-east-1"), ("111", "eu-west-1"), ("112", "eu-west-1")}
        masters = [r[0] for r in await primary.fetch(GLOBAL_INSTANCES) if r[1] == "MASTER_SESSION_ID"]
        assert masters == ["11"]
        regions = {r[0] for r in await primary.fetch("SELECT aws_region FROM aurora_global_db_status()")}
        assert regions == {"us-east-1", "eu-west-1"}
        # each cluster's own status lists its own region only
        assert [r[0] for r in await primary.fetch(LOCAL_INSTANCES)] == ["11", "12"]
        local = await asyncpg.connect(secondary.dsn("cluster"))
        try:
            assert [r[0] for r in await local.fetch(LOCAL_INSTANCES)] == ["111", "112"]
        finally:
            await local.close()
        assert await value(gdb.dsn(), "SELECT aurora_db_instance_identifier()") == "11"
    finally:
        await primary.close()


@dataclass
class Writes:
    acknowledged: set[int] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


async def write_through(dsn: str, writes: Writes, stop: asyncio.Event) -> None:
    """Insert through ``dsn`` (the global endpoint) until ``stop``, reconnecting after any failure."""
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn, timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            await asyncio.sleep(0.01)
            continue
        try:
            while not stop.is_set():
                row_id = next(writes.ids)
                try:
                    await conn.execute("INSERT INTO ledger VALUES ($1)", row_id, timeout=2)
                except (*CONNECTION_LOST, asyncpg.PostgresError, TimeoutError):
                    break
                writes.acknowledged.add(row_id)
        finally:
            conn.terminate()


async def test_a_switchover_keeps_every_acknowledged_write_and_swaps_the_regions(
    sim: AuroraSimulator,
) -> None:
    gdb = await sim.create_global_database()
    writes, stop = Writes(), asyncio.Event()
    writer = asyncio.create_task(write_through(gdb.dsn(), writes, stop))
    await eventually(lambda: _true(len(writes.acknowledged) >= 20), what="writes before")
    report = await gdb.switchover()
    await sim.wait_dns_settled()
    seen = len(writes.acknowledged)
    await eventually(
        lambda: _true(len(writes.acknowledged) >= seen + 20), what="writes in the new primary region"
    )
    stop.set()
    await writer

    assert (report.old_writer, report.new_writer) == ("11", "111")
    assert (gdb.primary_region, gdb.writer_id) == ("us-west-2", "111")
    new_primary = gdb.secondary  # (the view of the cluster that was the secondary: now the primary)
    stored = await ids_at(new_primary.dsn("cluster"))
    assert writes.acknowledged <= stored
    # the former primary region follows the new one, and takes no writes
    for target in ("cluster", "12"):
        dsn = sim.dsn(target)

        async def converged(dsn: str = dsn) -> bool:
            return await ids_at(dsn) == stored

        await eventually(converged, what=f"us-east-1's {target} to follow")
        assert await value(dsn, "SELECT pg_is_in_recovery()") is True
    masters = [
        r[0] for r in await _rows(new_primary.dsn("cluster"), GLOBAL_INSTANCES) if r[1] == "MASTER_SESSION_ID"
    ]
    assert masters == ["111"]
    assert await value(gdb.dsn(), "SELECT aurora_db_instance_identifier()") == "111"


async def test_a_failover_loses_exactly_what_had_not_reached_the_secondary(sim: AuroraSimulator) -> None:
    gdb = await sim.create_global_database()
    primary = await asyncpg.connect(gdb.dsn())
    try:
        await primary.executemany("INSERT INTO ledger VALUES ($1)", [(k,) for k in range(1, 11)])

        async def replicated() -> bool:
            return await ids_at(gdb.secondary.dsn("cluster")) == set(range(1, 11))

        await eventually(replicated, what="the first rows in the secondary region")
        await gdb.hold_replication()
        await primary.executemany("INSERT INTO ledger VALUES ($1)", [(k,) for k in range(11, 16)])
    finally:
        await primary.close()
    with pytest.raises(SimulatorError, match="allow_data_loss"):
        await gdb.failover()
    report = await gdb.failover(allow_data_loss=True)
    assert (report.old_writer, report.new_writer) == ("11", "111")
    await sim.wait_dns_settled()
    # rows 11-15 were acknowledged in us-east-1 only: lost with it; nothing else is
    assert await ids_at(gdb.dsn()) == set(range(1, 11))
    assert await value(gdb.dsn(), "SELECT pg_is_in_recovery()") is False
    with pytest.raises(SimulatorError, match="lost"):
        await gdb.hold_replication()


async def test_what_a_global_database_refuses() -> None:
    async with AuroraSimulator(engine="mysql", instances=1) as mysql:
        with pytest.raises(SimulatorError, match="postgresql"):
            await mysql.create_global_database()
    async with AuroraSimulator(engine="postgresql", instances=1) as sim:
        with pytest.raises(ValueError, match="differ"):
            await sim.create_global_database(sim.region)
        await sim.create_global_database()
        with pytest.raises(SimulatorError, match="already"):
            await sim.create_global_database("eu-west-1")
        with pytest.raises(SimulatorError, match="blue/green"):
            await sim.create_blue_green()
        with pytest.raises(SimulatorError, match="Global Database"):
            await sim.failover()


async def _rows(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def _true(value: bool) -> bool:
    return value
