"""The simulator's blue/green deployments, on both engines, observed with the plain drivers: what green
holds and who can log in to it, its metadata, a switchover under a live writer (nothing acknowledged is
lost, the names move, blue stops taking writes) and a switchover that times out and rolls back."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pymysql
import pytest

from aurora_async.testing import AuroraSimulator, SimulatorError
from tests.helpers import CONNECTION_LOST, eventually
from tests.plain import Plain

SOURCE, TARGET = "BLUE_GREEN_DEPLOYMENT_SOURCE", "BLUE_GREEN_DEPLOYMENT_TARGET"
PHASES = [
    "SWITCHOVER_INITIATED",
    "SWITCHOVER_IN_PROGRESS",
    "SWITCHOVER_IN_POST_PROCESSING",
    "SWITCHOVER_COMPLETED",
]


INSTANCE_ID_SQL = {
    "postgresql": "SELECT pg_catalog.aurora_db_instance_identifier()",
    "mysql": "SELECT @@aurora_server_id",
}
METADATA_SQL = {
    "postgresql": "SELECT endpoint, port, role, status, version FROM "
    "pg_catalog.get_blue_green_fast_switchover_metadata('tests')",
    "mysql": "SELECT endpoint, port, role, status, version FROM mysql.rds_topology",
}
TABLE_SQL = {
    "postgresql": "CREATE TABLE ledger (id bigserial PRIMARY KEY, note text NOT NULL)",
    "mysql": "CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, note TEXT NOT NULL)",
}


def read_only_refusal(engine: str, exc: BaseException) -> bool:
    if engine == "postgresql":
        return isinstance(exc, asyncpg.ReadOnlySQLTransactionError)
    return isinstance(exc, pymysql.err.OperationalError) and exc.args[0] == 1290


@pytest.fixture(params=["postgresql", "mysql"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[AuroraSimulator]:
    async with AuroraSimulator(engine=request.param, instances=2, dns_delay=0.3) as cluster:
        yield cluster


async def plain(sim: AuroraSimulator, dsn: str, **kwargs: Any) -> Plain:
    return await Plain.open(sim.engine, dsn, **kwargs)


async def endpoints_of(conn: Plain, engine: str) -> dict[str, set[str]]:
    """Metadata hosts by role, checking that every row has one status and version."""
    rows = await conn.rows(METADATA_SQL[engine])
    by_role: dict[str, set[str]] = {}
    for endpoint, _port, role, _status, version in rows:
        assert version == "1.0"
        by_role.setdefault(role, set()).add(endpoint)
    return by_role


async def statuses(conn: Plain, engine: str) -> set[str]:
    return {row[3] for row in await conn.rows(METADATA_SQL[engine])}


def host(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0]


async def test_green_is_a_read_only_copy_that_follows_blue(sim: AuroraSimulator) -> None:
    engine = sim.engine
    blue = await plain(sim, sim.dsn("cluster"))
    await blue.execute(TABLE_SQL[engine])
    for k in range(20):
        await blue.execute("INSERT INTO ledger (note) VALUES ($1)", f"before {k}")
    await sim.set_password("carol", "carol-secret")  # a login that exists before the deployment

    bg = await sim.create_blue_green()
    assert bg.status == "AVAILABLE" and bg.replicating
    assert bg.green.instance_ids == ["111", "112"]
    green = await plain(sim, bg.green.dsn("cluster"))
    green_reader = await plain(sim, bg.green.dsn("reader"))
    try:
        assert str(await green.value(INSTANCE_ID_SQL[engine])) == "111"
        assert await green.value("SELECT count(*) FROM ledger") == 20
        # the application's user cannot write on green; what blue commits arrives on both green instances
        with pytest.raises(Exception) as refused:
            await green.execute("INSERT INTO ledger (note) VALUES ('on green')")
        assert read_only_refusal(engine, refused.value), refused.value
        await blue.execute("INSERT INTO ledger (note) VALUES ('after')")
        for conn in (green, green_reader):

            async def arrived(conn: Plain = conn) -> bool:
                return bool(await conn.value("SELECT count(*) FROM ledger") == 21)

            await eventually(arrived, what="blue's insert on green")
        # a user made on blue before the deployment logs in to green with the same password
        carol = await plain(sim, bg.green.dsn("cluster"), user="carol", password="carol-secret")
        await carol.close()
        # both clusters serve the same metadata: blue's endpoints as the source, green's as the target
        expected = {
            SOURCE: {host(sim.cluster_endpoint), host(sim.reader_endpoint)}
            | {host(sim.endpoint(i)) for i in sim.instance_ids},
            TARGET: {host(bg.green.cluster_endpoint), host(bg.green.reader_endpoint)}
            | {host(bg.green.endpoint(i)) for i in bg.green.instance_ids},
        }
        for conn in (blue, green):
            assert await endpoints_of(conn, engine) == expected
            assert await statuses(conn, engine) == {"AVAILABLE"}

        async def replicated() -> bool:  # a replica has it once replication applied it
            return await endpoints_of(green_reader, engine) == expected

        await eventually(replicated, what="the metadata on green's replica")
    finally:
        for conn in (blue, green, green_reader):
            await conn.close()


@dataclass
class Writes:
    acknowledged: set[int] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_000_000))
    refused: int = 0  # refused as read-only: nothing was written
    lost: int = 0  # the connection broke under the insert


async def keep_writing(sim: AuroraSimulator, writes: Writes, stop: asyncio.Event) -> None:
    """Insert rows one by one through the cluster endpoint, reconnecting after any failure."""
    while not stop.is_set():
        try:
            conn = await plain(sim, sim.dsn("cluster"))
        except (OSError, asyncpg.PostgresError, pymysql.err.Error, TimeoutError):
            await asyncio.sleep(0.01)
            continue
        try:
            while not stop.is_set():
                row_id = next(writes.ids)
                try:
                    await conn.execute("INSERT INTO ledger (id, note) VALUES ($1, 'w')", row_id)
                except Exception as exc:
                    if read_only_refusal(sim.engine, exc):
                        writes.refused += 1
                    elif isinstance(exc, (*CONNECTION_LOST, asyncpg.PostgresError, pymysql.err.Error)):
                        writes.lost += 1
                    else:
                        raise
                    break
                writes.acknowledged.add(row_id)
        finally:
            try:
                await conn.close()
            except Exception:  # a connection the switchover ended
                pass


async def test_switchover_under_writes_loses_nothing_and_moves_the_names(sim: AuroraSimulator) -> None:
    engine = sim.engine
    setup = await plain(sim, sim.dsn("cluster"))
    await setup.execute(TABLE_SQL[engine])
    for _ in range(5):  # ids from the table's own counter (the writer below gives its own, far above)
        await setup.execute("INSERT INTO ledger (note) VALUES ('counted')")
    await setup.close()
    bg = await sim.create_blue_green()
    old_writer, new_writer = sim.writer_id, bg.green.writer_id

    writes, stop = Writes(), asyncio.Event()
    writer = asyncio.create_task(keep_writing(sim, writes, stop))
    await eventually(lambda: _true(len(writes.acknowledged) >= 20), what="writes before the switchover")
    report = await bg.switchover()
    count_at_switch = len(writes.acknowledged)
    await eventually(
        lambda: _true(len(writes.acknowledged) >= count_at_switch + 20), what="writes after the switchover"
    )
    stop.set()
    await writer

    assert bg.status == "SWITCHOVER_COMPLETED" and not bg.replicating
    steps = [e.step for e in report.events if e.step.startswith("blue/green ")]
    assert steps == [f"blue/green {p}" for p in PHASES]
    assert (report.old_writer, report.new_writer) == (old_writer, new_writer)

    after = await plain(sim, sim.dsn("cluster"))
    try:
        # the writer endpoint now leads to green's writer, which has every acknowledged row, once
        assert str(await after.value(INSTANCE_ID_SQL[engine])) == new_writer
        stored = {int(r[0]) for r in await after.rows("SELECT id FROM ledger")}
        assert writes.acknowledged <= stored, sorted(writes.acknowledged - stored)[:10]
        # a row without an explicit id continues the table's counter on green (sequences copied)
        await after.execute("INSERT INTO ledger (note) VALUES ('fresh')")
        counted = await after.value("SELECT max(id) FROM ledger WHERE note = 'counted'")
        assert await after.value("SELECT max(id) FROM ledger WHERE note = 'fresh'") > counted
        # the metadata moved the blue names to the target on both clusters
        assert await statuses(after, engine) == {"SWITCHOVER_COMPLETED"}
        moved = await endpoints_of(after, engine)
        assert host(sim.cluster_endpoint) in moved[TARGET]
        assert host(bg.green.cluster_endpoint) in moved[SOURCE]
    finally:
        await after.close()
    # blue's old writer takes no writes any more, from anyone
    old = await plain(sim, sim.dsn(old_writer))
    try:
        with pytest.raises(Exception) as refused:
            await old.execute("INSERT INTO ledger (note) VALUES ('late')")
        assert read_only_refusal(engine, refused.value), refused.value
    finally:
        await old.close()
    # green's old endpoint now names blue (the "-old1" name)
    old_name = await plain(sim, bg.green.dsn("cluster"))
    try:
        assert str(await old_name.value(INSTANCE_ID_SQL[engine])) == old_writer
    finally:
        await old_name.close()
    with pytest.raises(SimulatorError, match="switched over"):
        await bg.switchover()


async def test_switchover_that_times_out_rolls_back(sim: AuroraSimulator) -> None:
    engine = sim.engine
    blue = await plain(sim, sim.dsn("cluster"))
    await blue.execute(TABLE_SQL[engine])
    bg = await sim.create_blue_green()
    await bg.pause_replication()
    await blue.execute("INSERT INTO ledger (note) VALUES ('held back')")
    await blue.close()

    with pytest.raises(SimulatorError, match="rolled back"):
        await bg.switchover(timeout=0.3)
    assert bg.status == "AVAILABLE" and bg.replicating
    # blue takes writes again (the switchover ended its sessions: a new one), names did not move
    again = await plain(sim, sim.dsn("cluster"))
    try:
        assert str(await again.value(INSTANCE_ID_SQL[engine])) == sim.writer_id
        await again.execute("INSERT INTO ledger (note) VALUES ('after the rollback')")
        assert await statuses(again, engine) == {"AVAILABLE"}
    finally:
        await again.close()

    await bg.resume_replication()
    green = await plain(sim, bg.green.dsn("cluster"))
    try:

        async def caught_up() -> bool:
            return bool(await green.value("SELECT count(*) FROM ledger") == 2)

        await eventually(caught_up, what="green to catch up once resumed")
    finally:
        await green.close()
    await bg.switchover()
    final: str = bg.status
    assert final == "SWITCHOVER_COMPLETED"


async def test_what_a_deployment_refuses() -> None:
    async with AuroraSimulator(engine="postgresql", instances=1, topology="multi-az") as multi_az:
        with pytest.raises(SimulatorError, match="topology='aurora'"):
            await multi_az.create_blue_green()
    async with AuroraSimulator(engine="postgresql", instances=1) as sim:
        with pytest.raises(ValueError, match="instances"):
            await sim.create_blue_green(instances=0)
        bg = await sim.create_blue_green()
        assert sim.blue_green is bg
        with pytest.raises(SimulatorError, match="already"):
            await sim.create_blue_green()
        with pytest.raises(SimulatorError, match="blue/green"):
            await sim.failover()


async def _true(value: bool) -> bool:
    return value
