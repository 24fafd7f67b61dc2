"""Aurora Global Database through aurora_async, on both engines: connections through the global writer
endpoint see every region's instances, and follow the global writer through a planned switchover and
an unplanned failover to the other region, with only the documented failover errors on the way."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

import aurora_async
from aurora_async import FailoverSuccessError, TransactionResolutionUnknownError
from aurora_async.testing import AuroraSimulator, GlobalDatabase
from tests.helpers import eventually
from tests.plain import Plain
from tests.testing.test_blue_green_simulator import INSTANCE_ID_SQL


@pytest.fixture
async def gdb() -> AsyncIterator[tuple[AuroraSimulator, GlobalDatabase]]:
    async with AuroraSimulator(engine="postgresql", instances=2, dns_delay=0.5) as sim:
        conn = await asyncpg.connect(sim.dsn("cluster"))
        await conn.execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
        await conn.close()
        yield sim, await sim.create_global_database("eu-west-1")


@pytest.fixture(params=["postgresql", "mysql"])
async def either(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AuroraSimulator, GlobalDatabase]]:
    """:func:`gdb` on either engine."""
    async with AuroraSimulator(engine=request.param, instances=2, dns_delay=0.5) as sim:
        setup = await Plain.open(sim.engine, sim.dsn("cluster"))
        try:
            await setup.execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
        finally:
            await setup.close()
        yield sim, await sim.create_global_database("eu-west-1")


def options(sim: AuroraSimulator, gdb: GlobalDatabase) -> dict[str, Any]:
    primary = f"{sim.region}:{sim.instance_host_pattern}"
    patterns = f"{primary},{gdb.secondary_region}:{gdb.secondary.instance_host_pattern}"
    kwargs: dict[str, Any] = {"global_cluster_instance_host_patterns": patterns, "failover_timeout": 30}
    if sim.engine == "mysql":
        kwargs["autocommit"] = True
    return kwargs


async def insert(conn: Any, row_id: int) -> None:
    if isinstance(conn, aurora_async.AuroraConnection):
        await conn.execute("INSERT INTO ledger VALUES ($1)", row_id)
        return
    async with conn.cursor() as cur:
        await cur.execute("INSERT INTO ledger VALUES (%s)", (row_id,))


async def scalar(conn: Any, sql: str) -> Any:
    if isinstance(conn, aurora_async.AuroraConnection):
        return await conn.fetchval(sql)
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
        return row[0] if row else None


async def stored(sim: AuroraSimulator, dsn: str) -> set[int]:
    reader = await Plain.open(sim.engine, dsn)
    try:
        return {int(r[0]) for r in await reader.rows("SELECT id FROM ledger")}
    finally:
        await reader.close()


async def close(conn: Any) -> None:
    if isinstance(conn, aurora_async.AuroraConnection):
        await conn.close()
    else:
        await conn.ensure_closed()


@dataclass
class Load:
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    acknowledged: set[int] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)


async def write_until(conn: Any, load: Load, stop: asyncio.Event) -> None:
    while not stop.is_set():
        row_id = next(load.ids)
        try:
            await insert(conn, row_id)
        except Exception as exc:
            load.errors.append(exc)
        else:
            load.acknowledged.add(row_id)
        await asyncio.sleep(0.02)


async def on(conn: Any, engine: str) -> str:
    return str(await scalar(conn, INSTANCE_ID_SQL[engine]))


async def test_the_global_endpoint_shows_every_region_and_follows_a_switchover(
    either: tuple[AuroraSimulator, GlobalDatabase],
) -> None:
    sim, database = either
    engine = sim.engine
    conns = [await aurora_async.connect(database.dsn(), **options(sim, database)) for _ in range(4)]
    try:
        first = conns[0]
        assert first.instance.instance_id == "11" and first.instance.region == sim.region
        seen_by = aurora_async.health(first)
        assert seen_by.dialect == ("global-aurora-pg" if engine == "postgresql" else "global-aurora-mysql")
        known = {(i.instance_id, i.region, i.endpoint) for i in seen_by.instances}
        assert known == {
            ("11", sim.region, sim.endpoint("11")),
            ("12", sim.region, sim.endpoint("12")),
            ("111", "eu-west-1", database.secondary.endpoint("111")),
            ("112", "eu-west-1", database.secondary.endpoint("112")),
        }
        load, stop = Load(), asyncio.Event()
        tasks = [asyncio.create_task(write_until(c, load, stop)) for c in conns]
        await eventually(lambda: _true(len(load.acknowledged) >= 20), what="writes before")
        await database.switchover()
        seen = len(load.acknowledged)
        await eventually(
            lambda: _true(len(load.acknowledged) >= seen + 20), what="writes in eu-west-1", timeout=30
        )
        stop.set()
        await asyncio.gather(*tasks)
        assert all(
            isinstance(e, (FailoverSuccessError, TransactionResolutionUnknownError)) for e in load.errors
        ), load.errors
        for conn in conns:
            assert await on(conn, engine) == "111" and conn.instance.region == "eu-west-1"
        assert load.acknowledged <= await stored(sim, database.secondary.dsn("cluster"))
    finally:
        for conn in conns:
            await close(conn)


async def test_connections_follow_a_failover_to_the_other_region(
    either: tuple[AuroraSimulator, GlobalDatabase],
) -> None:
    sim, database = either
    conns = [await aurora_async.connect(database.dsn(), **options(sim, database)) for _ in range(3)]
    try:
        for k, conn in enumerate(conns):
            await insert(conn, k + 1)
        await database.failover(allow_data_loss=True)
        for k, conn in enumerate(conns):
            while True:  # what an application does: re-run after a failover error
                try:
                    await insert(conn, 100 + k)
                    break
                except FailoverSuccessError:
                    continue
            assert await on(conn, sim.engine) == "111" and conn.instance.region == "eu-west-1"
        assert {100, 101, 102} <= await stored(sim, database.secondary.dsn("cluster"))
    finally:
        for conn in conns:
            await close(conn)


async def _true(value: bool) -> bool:
    return value
