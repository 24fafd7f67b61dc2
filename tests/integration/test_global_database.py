"""Aurora Global Database through aurora_async (PostgreSQL): connections through the global writer
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


@pytest.fixture
async def gdb() -> AsyncIterator[tuple[AuroraSimulator, GlobalDatabase]]:
    async with AuroraSimulator(engine="postgresql", instances=2, dns_delay=0.5) as sim:
        conn = await asyncpg.connect(sim.dsn("cluster"))
        await conn.execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
        await conn.close()
        yield sim, await sim.create_global_database("eu-west-1")


def options(sim: AuroraSimulator, gdb: GlobalDatabase) -> dict[str, Any]:
    primary = f"{sim.region}:{sim.instance_host_pattern}"
    patterns = f"{primary},{gdb.secondary_region}:{gdb.secondary.instance_host_pattern}"
    return {"global_cluster_instance_host_patterns": patterns, "failover_timeout": 30}


@dataclass
class Load:
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    acknowledged: set[int] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)


async def write_until(conn: aurora_async.AuroraConnection, load: Load, stop: asyncio.Event) -> None:
    while not stop.is_set():
        row_id = next(load.ids)
        try:
            await conn.execute("INSERT INTO ledger VALUES ($1)", row_id)
        except Exception as exc:
            load.errors.append(exc)
        else:
            load.acknowledged.add(row_id)
        await asyncio.sleep(0.02)


async def on(conn: aurora_async.AuroraConnection) -> str:
    return str(await conn.fetchval("SELECT pg_catalog.aurora_db_instance_identifier()"))


async def test_the_global_endpoint_shows_every_region_and_follows_a_switchover(
    gdb: tuple[AuroraSimulator, GlobalDatabase],
) -> None:
    sim, database = gdb
    conns = [await aurora_async.connect(database.dsn(), **options(sim, database)) for _ in range(4)]
    try:
        first = conns[0]
        assert first.instance.instance_id == "11" and first.instance.region == sim.region
        seen_by = aurora_async.health(first)
        assert seen_by.dialect == "global-aurora-pg"
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
            assert await on(conn) == "111"
        stored = {int(r[0]) for r in await conns[0].fetch("SELECT id FROM ledger")}
        assert load.acknowledged <= stored
    finally:
        for conn in conns:
            await conn.close()


async def test_connections_follow_a_failover_to_the_other_region(
    gdb: tuple[AuroraSimulator, GlobalDatabase],
) -> None:
    sim, database = gdb
    conns = [await aurora_async.connect(database.dsn(), **options(sim, database)) for _ in range(3)]
    try:
        for k, conn in enumerate(conns):
            await conn.execute("INSERT INTO ledger VALUES ($1)", k + 1)
        await database.failover(allow_data_loss=True)
        for k, conn in enumerate(conns):
            while True:  # what an application does: re-run after a failover error
                try:
                    await conn.execute("INSERT INTO ledger VALUES ($1)", 100 + k)
                    break
                except FailoverSuccessError:
                    continue
            assert await on(conn) == "111" and conn.instance.region == "eu-west-1"
        stored = {int(r[0]) for r in await conns[0].fetch("SELECT id FROM ledger")}
        assert {100, 101, 102} <= stored
    finally:
        for conn in conns:
            await conn.close()


async def _true(value: bool) -> bool:
    return value
