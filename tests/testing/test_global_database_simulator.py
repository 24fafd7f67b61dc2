"""The simulator's Aurora Global Database, on both engines, observed with the plain drivers: the
secondary region is a read-only copy with a global catalog; a switchover keeps every acknowledged write
and swaps the regions' roles; a failover loses exactly what had not reached the secondary."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from aurora_async.testing import AuroraSimulator, SimulatorError
from tests.helpers import CONNECTION_LOST, eventually
from tests.plain import Plain

ENGINES = ["postgresql", "mysql"]
GLOBAL_INSTANCES = {
    "postgresql": "SELECT server_id, session_id, aws_region "
    "FROM pg_catalog.aurora_global_db_instance_status()",
    "mysql": "SELECT SERVER_ID, SESSION_ID, AWS_REGION "
    "FROM information_schema.aurora_global_db_instance_status",
}
GLOBAL_REGIONS = {
    "postgresql": "SELECT aws_region FROM pg_catalog.aurora_global_db_status()",
    "mysql": "SELECT AWS_REGION FROM information_schema.aurora_global_db_status",
}
LOCAL_INSTANCES = {
    "postgresql": "SELECT server_id FROM pg_catalog.aurora_replica_status() ORDER BY server_id",
    "mysql": "SELECT SERVER_ID FROM information_schema.replica_host_status ORDER BY SERVER_ID",
}
INSTANCE_ID = {
    "postgresql": "SELECT pg_catalog.aurora_db_instance_identifier()",
    "mysql": "SELECT @@aurora_server_id",
}
READ_ONLY = {"postgresql": "SELECT pg_catalog.pg_is_in_recovery()", "mysql": "SELECT @@innodb_read_only = 1"}
LATER_ARRIVED = {
    "postgresql": "SELECT to_regclass('later') IS NOT NULL AND (SELECT count(*) FROM later) = 1",
    "mysql": "SELECT (SELECT count(*) FROM later) = 1",
}
INSERT = "INSERT INTO ledger VALUES ($1)"


@pytest.fixture(params=ENGINES)
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[AuroraSimulator]:
    async with AuroraSimulator(engine=request.param, instances=2, dns_delay=0.3) as cluster:
        conn = await Plain.open(cluster.engine, cluster.dsn("cluster"))
        try:
            await conn.execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
        finally:
            await conn.close()
        yield cluster


async def rows(engine: str, dsn: str, sql: str) -> list[tuple[object, ...]]:
    conn = await Plain.open(engine, dsn)
    try:
        return await conn.rows(sql)
    finally:
        await conn.close()


async def value(engine: str, dsn: str, sql: str) -> object:
    found = await rows(engine, dsn, sql)
    return found[0][0] if found else None


async def is_true(engine: str, dsn: str, sql: str) -> bool:
    return bool(await value(engine, dsn, sql))


async def ids_at(engine: str, dsn: str) -> set[int]:
    return {int(str(r[0])) for r in await rows(engine, dsn, "SELECT id FROM ledger")}


async def quietly_true(engine: str, dsn: str, sql: str) -> bool:
    """``sql``'s answer, False while the object it reads has not arrived yet."""
    try:
        return await is_true(engine, dsn, sql)
    except Exception:
        return False


async def test_the_secondary_region_is_a_read_only_copy_with_a_global_catalog(sim: AuroraSimulator) -> None:
    engine = sim.engine
    gdb = await sim.create_global_database("eu-west-1")
    assert (gdb.primary_region, gdb.secondary_region) == ("us-east-1", "eu-west-1")
    secondary = gdb.secondary
    assert secondary.instance_ids == ["111", "112"] and secondary.cluster_endpoint.startswith("127.0.43.")
    primary = await Plain.open(engine, sim.dsn("cluster"))
    try:
        # DDL and rows made after the secondary exists reach it: it is a copy of everything
        await primary.execute("CREATE TABLE later (x int)")
        await primary.execute("INSERT INTO later VALUES (1)")
        for target in ("cluster", "reader"):
            dsn = secondary.dsn(target)

            async def arrived(dsn: str = dsn) -> bool:
                return await quietly_true(engine, dsn, LATER_ARRIVED[engine])

            await eventually(arrived, what=f"the secondary's {target} to have the new table")
            assert await is_true(engine, dsn, READ_ONLY[engine])
            # the application's user logs in there too (users are part of the copy), and cannot write
            local = await Plain.open(engine, dsn)
            try:
                with pytest.raises(Exception, match="(?i)read.only"):
                    await local.execute(INSERT, 999)
            finally:
                await local.close()
        # one global catalog: every instance with its region, the primary writer the only master
        listed = await primary.rows(GLOBAL_INSTANCES[engine])
        assert {(str(r[0]), r[2]) for r in listed} == {
            ("11", "us-east-1"),
            ("12", "us-east-1"),
            ("111", "eu-west-1"),
            ("112", "eu-west-1"),
        }
        assert [str(r[0]) for r in listed if r[1] == "MASTER_SESSION_ID"] == ["11"]
        regions = {r[0] for r in await primary.rows(GLOBAL_REGIONS[engine])}
        assert regions == {"us-east-1", "eu-west-1"}
        # each cluster's own status lists its own region only
        assert [str(r[0]) for r in await primary.rows(LOCAL_INSTANCES[engine])] == ["11", "12"]
        local_ids = await rows(engine, secondary.dsn("cluster"), LOCAL_INSTANCES[engine])
        assert [str(r[0]) for r in local_ids] == ["111", "112"]
        assert str(await value(engine, gdb.dsn(), INSTANCE_ID[engine])) == "11"
    finally:
        await primary.close()


@dataclass
class Writes:
    acknowledged: set[int] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


async def write_through(engine: str, dsn: str, writes: Writes, stop: asyncio.Event) -> None:
    """Insert through ``dsn`` (the global endpoint) until ``stop``, reconnecting after any failure."""
    while not stop.is_set():
        try:
            conn = await Plain.open(engine, dsn)
        except Exception:
            await asyncio.sleep(0.01)
            continue
        try:
            while not stop.is_set():
                row_id = next(writes.ids)
                try:
                    await conn.execute(INSERT, row_id)
                except (*CONNECTION_LOST, Exception):
                    break
                writes.acknowledged.add(row_id)
        finally:
            await conn.close()


async def test_a_switchover_keeps_every_acknowledged_write_and_swaps_the_regions(
    sim: AuroraSimulator,
) -> None:
    engine = sim.engine
    gdb = await sim.create_global_database()
    writes, stop = Writes(), asyncio.Event()
    writer = asyncio.create_task(write_through(engine, gdb.dsn(), writes, stop))
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
    stored = await ids_at(engine, new_primary.dsn("cluster"))
    assert writes.acknowledged <= stored
    # the former primary region follows the new one, and takes no writes
    for target in ("cluster", "12"):
        dsn = sim.dsn(target)

        async def converged(dsn: str = dsn) -> bool:
            return await ids_at(engine, dsn) == stored

        await eventually(converged, what=f"us-east-1's {target} to follow")
        assert await is_true(engine, dsn, READ_ONLY[engine])
    listed = await rows(engine, new_primary.dsn("cluster"), GLOBAL_INSTANCES[engine])
    assert [str(r[0]) for r in listed if r[1] == "MASTER_SESSION_ID"] == ["111"]
    assert str(await value(engine, gdb.dsn(), INSTANCE_ID[engine])) == "111"


async def test_a_failover_loses_exactly_what_had_not_reached_the_secondary(sim: AuroraSimulator) -> None:
    engine = sim.engine
    gdb = await sim.create_global_database()
    primary = await Plain.open(engine, gdb.dsn())
    try:
        for k in range(1, 11):
            await primary.execute(INSERT, k)

        async def replicated() -> bool:
            return await ids_at(engine, gdb.secondary.dsn("cluster")) == set(range(1, 11))

        await eventually(replicated, what="the first rows in the secondary region")
        await gdb.hold_replication()
        for k in range(11, 16):
            await primary.execute(INSERT, k)
    finally:
        await primary.close()
    with pytest.raises(SimulatorError, match="allow_data_loss"):
        await gdb.failover()
    report = await gdb.failover(allow_data_loss=True)
    assert (report.old_writer, report.new_writer) == ("11", "111")
    await sim.wait_dns_settled()
    # rows 11-15 were acknowledged in us-east-1 only: lost with it; nothing else is
    assert await ids_at(engine, gdb.dsn()) == set(range(1, 11))
    assert not await is_true(engine, gdb.dsn(), READ_ONLY[engine])
    with pytest.raises(SimulatorError, match="lost"):
        await gdb.hold_replication()


async def test_what_a_global_database_refuses() -> None:
    async with AuroraSimulator(engine="mysql", instances=1, topology="multi-az") as multi_az:
        with pytest.raises(SimulatorError, match="topology='aurora'"):
            await multi_az.create_global_database()
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


async def _true(value: bool) -> bool:
    return value
