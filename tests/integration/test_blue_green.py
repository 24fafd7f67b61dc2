"""Blue/green switchovers through aurora_async, on both engines: writers with the ``bg`` plugin see a
pause and no error, and end on green's writer; a connection without it (and a cluster where no one runs
it) still ends on green, never on blue, with the documented failover errors; a transaction cut by the
switchover is reported lost and none of it is stored; a switchover that rolls back leaves connections
on blue, writing."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import aurora_async
from aurora_async import FailoverError, FailoverSuccessError, TransactionResolutionUnknownError
from aurora_async.doctor import diagnose
from aurora_async.testing import AuroraSimulator, BlueGreenDeployment, SimulatorError
from tests.helpers import eventually
from tests.plain import Plain
from tests.testing.test_blue_green_simulator import INSTANCE_ID_SQL

WITH_BG = "initial_connection,aurora_connection_tracker,failover,host_monitoring,bg"
WITHOUT_BG = "initial_connection,aurora_connection_tracker,failover,host_monitoring"
LEDGER = "CREATE TABLE ledger (id BIGINT PRIMARY KEY, writer INT NOT NULL)"


@pytest.fixture(params=["postgresql", "mysql"])
async def deployment(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[AuroraSimulator, BlueGreenDeployment]]:
    """A cluster with a ``ledger`` table and a blue/green deployment of it (made before any
    aurora_async connection, as an application meets one)."""
    async with AuroraSimulator(engine=request.param, instances=2, dns_delay=0.5) as sim:
        setup = await Plain.open(sim.engine, sim.dsn("cluster"))
        await setup.execute(LEDGER)
        await setup.close()
        yield sim, await sim.create_blue_green()


def options(sim: AuroraSimulator, plugins: str, **extra: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "plugins": plugins,
        "failover_timeout": 30,
        **extra,
    }
    if sim.engine == "mysql":
        kwargs["autocommit"] = True
    return kwargs


async def insert(conn: Any, engine: str, row_id: int, writer: int) -> None:
    if engine == "postgresql":
        await conn.execute("INSERT INTO ledger VALUES ($1, $2)", row_id, writer)
    else:
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO ledger VALUES (%s, %s)", (row_id, writer))


async def scalar(conn: Any, engine: str, sql: str) -> Any:
    if engine == "postgresql":
        return await conn.fetchval(sql)
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
        return row[0] if row else None


async def close(conn: Any, engine: str) -> None:
    if engine == "postgresql":
        await conn.close()
    else:
        await conn.ensure_closed()


@dataclass
class Load:
    """What a set of writers did: rows acknowledged, errors, the longest single write."""

    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    acknowledged: set[int] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)
    unknown: set[int] = field(default_factory=set)  # the write failed with an outcome error
    longest: float = 0.0


async def write_until(conn: Any, engine: str, writer: int, load: Load, stop: asyncio.Event) -> None:
    """About 20 writes a second on ``conn`` until ``stop``; errors are recorded, not raised."""
    while not stop.is_set():
        row_id = next(load.ids)
        started = time.monotonic()
        try:
            await insert(conn, engine, row_id, writer)
        except FailoverError as exc:
            load.errors.append(exc)
            load.unknown.add(row_id)
        except Exception as exc:  # anything else is a failed request too
            load.errors.append(exc)
            load.unknown.add(row_id)
        else:
            load.acknowledged.add(row_id)
        load.longest = max(load.longest, time.monotonic() - started)
        await asyncio.sleep(0.05)


async def stored_ids(sim: AuroraSimulator, dsn: str) -> set[int]:
    reader = await Plain.open(sim.engine, dsn)
    try:
        return {int(r[0]) for r in await reader.rows("SELECT id FROM ledger")}
    finally:
        await reader.close()


async def test_a_switchover_is_a_pause_for_writers_running_bg(
    deployment: tuple[AuroraSimulator, BlueGreenDeployment],
) -> None:
    sim, bg = deployment
    engine, green_writer = sim.engine, bg.green.writer_id
    conns = [await aurora_async.connect(sim.dsn("cluster"), **options(sim, WITH_BG)) for _ in range(5)]
    load, stop = Load(), asyncio.Event()
    writers = [asyncio.create_task(write_until(c, engine, k, load, stop)) for k, c in enumerate(conns)]
    try:
        await eventually(lambda: _true(len(load.acknowledged) >= 40), what="writes before the switchover")
        await bg.switchover()
        after = len(load.acknowledged)
        await eventually(lambda: _true(len(load.acknowledged) >= after + 40), what="writes on green")
    finally:
        stop.set()
        await asyncio.gather(*writers)
    try:
        assert load.errors == [], load.errors[:3]  # a pause, no failed request
        assert load.longest < 10.0
        # every connection is on green's writer, as the server itself says, and writes there
        for conn in conns:
            assert str(await scalar(conn, engine, INSTANCE_ID_SQL[engine])) == green_writer
        stored = await stored_ids(sim, sim.dsn("cluster"))  # the writer endpoint leads to green now
        assert stored == load.acknowledged
        # blue holds a prefix of it: nothing reached blue after the switch
        on_blue = await stored_ids(sim, sim.dsn(sim.writer_id))
        assert on_blue < stored
    finally:
        for conn in conns:
            await close(conn, engine)


async def test_without_bg_connections_still_end_on_green_with_documented_errors(
    deployment: tuple[AuroraSimulator, BlueGreenDeployment],
) -> None:
    """Two habits side by side: a connection that runs the bg plugin, and one that does not in a
    cluster of its own (no one there reads the metadata). Both end on green's writer; the second may
    see a failover error (as after any failover), never a write refused by blue."""
    sim, bg = deployment
    engine, green_writer = sim.engine, bg.green.writer_id
    with_bg = await aurora_async.connect(sim.dsn("cluster"), **options(sim, WITH_BG))
    alone = await aurora_async.connect(sim.dsn("cluster"), **options(sim, WITHOUT_BG, cluster_id="no-bg"))
    load_bg, stop = Load(), asyncio.Event()
    load_alone = Load(ids=load_bg.ids)  # one id sequence: the rows go into one table
    tasks = [
        asyncio.create_task(write_until(with_bg, engine, 0, load_bg, stop)),
        asyncio.create_task(write_until(alone, engine, 1, load_alone, stop)),
    ]
    try:
        await eventually(lambda: _true(len(load_alone.acknowledged) >= 10), what="writes before")
        await bg.switchover()
        await sim.wait_dns_settled()
        seen = len(load_alone.acknowledged)
        await eventually(
            lambda: _true(len(load_alone.acknowledged) >= seen + 10), what="writes after", timeout=40
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    try:
        assert load_bg.errors == []
        assert all(
            isinstance(e, (FailoverSuccessError, TransactionResolutionUnknownError))
            for e in load_alone.errors
        ), load_alone.errors
        for conn in (with_bg, alone):
            assert str(await scalar(conn, engine, INSTANCE_ID_SQL[engine])) == green_writer
        stored = await stored_ids(sim, sim.dsn("cluster"))
        assert load_bg.acknowledged | load_alone.acknowledged <= stored
    finally:
        await close(with_bg, engine)
        await close(alone, engine)


async def test_a_transaction_cut_by_the_switchover_is_lost_whole(
    deployment: tuple[AuroraSimulator, BlueGreenDeployment],
) -> None:
    sim, bg = deployment
    engine = sim.engine
    conn = await aurora_async.connect(
        sim.dsn("cluster"),
        **options(sim, WITH_BG, autocommit=False) if engine == "mysql" else options(sim, WITH_BG),
    )
    try:
        if engine == "postgresql":
            tx = conn.transaction()
            await tx.start()
        else:
            await conn.begin()
        await insert(conn, engine, 1, 0)
        await bg.switchover()  # inside the transaction: statements in it are not held
        with pytest.raises(TransactionResolutionUnknownError):
            await insert(conn, engine, 2, 0)
        if engine == "postgresql":
            await tx.rollback()
        else:
            await conn.rollback()
        await insert(conn, engine, 3, 0)  # outside a transaction again, on green
        if engine == "mysql":
            await conn.commit()
        assert await stored_ids(sim, sim.dsn("cluster")) == {3}
    finally:
        await close(conn, engine)


async def test_a_rolled_back_switchover_leaves_writers_on_blue(
    deployment: tuple[AuroraSimulator, BlueGreenDeployment],
) -> None:
    sim, bg = deployment
    engine = sim.engine
    conns = [await aurora_async.connect(sim.dsn("cluster"), **options(sim, WITH_BG)) for _ in range(3)]
    load, stop = Load(), asyncio.Event()
    writers = [asyncio.create_task(write_until(c, engine, k, load, stop)) for k, c in enumerate(conns)]
    try:
        await eventually(lambda: _true(len(load.acknowledged) >= 20), what="writes before")
        await bg.pause_replication()
        with pytest.raises(SimulatorError, match="rolled back"):
            await bg.switchover(timeout=0.5)
        seen = len(load.acknowledged)
        await eventually(lambda: _true(len(load.acknowledged) >= seen + 20), what="writes after the rollback")
    finally:
        stop.set()
        await asyncio.gather(*writers)
    try:
        assert load.errors == [], load.errors[:3]
        for conn in conns:
            assert str(await scalar(conn, engine, INSTANCE_ID_SQL[engine])) == sim.writer_id
        assert await stored_ids(sim, sim.dsn("cluster")) == load.acknowledged
    finally:
        for conn in conns:
            await close(conn, engine)


async def test_the_doctor_reports_the_deployment(
    deployment: tuple[AuroraSimulator, BlueGreenDeployment],
) -> None:
    sim, _ = deployment
    report = await diagnose(sim.dsn("cluster"), cluster_instance_host_pattern=sim.instance_host_pattern)
    check = report.check("blue_green")
    assert check.details["present"] is True and check.details["phase"] == "created", report.format_text()
    assert "4 source and 4 target hosts" in check.summary, check.summary  # 2 endpoints + 2 instances each


async def _true(value: bool) -> bool:
    return value
