"""An Aurora Global Database's home-region failover modes against real servers (the simulator's Global
Database): connections that differ only in their mode, on one cluster, through one failure, each land
where its mode allows, as the server itself reports (instance id, recovery state) and as the
simulator placed the instances in regions."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import aurora_async
from aurora_async import FailoverFailedError, FailoverSuccessError
from aurora_async._registry import registry
from aurora_async.doctor import Status, diagnose
from aurora_async.testing import AuroraSimulator, GlobalDatabase
from tests.helpers import eventually
from tests.plain import Plain

Where = Callable[[str, str, bool], bool]  # (instance id, its region, is it a reader) -> allowed?


ENGINES = ["postgresql", "mysql"]
# the instance a connection is on, and whether it is read-only there, as the server says
WHERE_SQL = {
    "postgresql": "SELECT pg_catalog.aurora_db_instance_identifier(), pg_catalog.pg_is_in_recovery()",
    "mysql": "SELECT @@aurora_server_id, @@innodb_read_only",
}
REGIONS_SQL = {
    "postgresql": "SELECT count(DISTINCT aws_region) FROM pg_catalog.aurora_global_db_status()",
    "mysql": "SELECT COUNT(DISTINCT AWS_REGION) FROM information_schema.aurora_global_db_status",
}


async def _global_database(
    engine: str, instances: int
) -> AsyncIterator[tuple[AuroraSimulator, GlobalDatabase]]:
    async with AuroraSimulator(engine=engine, instances=instances, dns_delay=0.5) as sim:
        setup = await Plain.open(sim.engine, sim.dsn("cluster"))
        try:
            await setup.execute("CREATE TABLE ledger (id bigint PRIMARY KEY)")
        finally:
            await setup.close()
        database = await sim.create_global_database("eu-west-1")
        # the simulator's catalog is written on the writer and replicates: a replica may show it a
        # moment later (and a connection through the reader endpoint detects the dialect there)
        for reader in sim.reader_ids:
            check = functools.partial(_sees_regions, sim.engine, sim.dsn(reader))
            await eventually(check, what=f"the global catalog on {reader}")
        yield sim, database


async def _sees_regions(engine: str, dsn: str) -> bool:
    plain = await Plain.open(engine, dsn)
    try:
        regions = await plain.value(REGIONS_SQL[engine])
    finally:
        await plain.close()
    return regions is not None and int(regions) > 1


@pytest.fixture(params=ENGINES)
async def gdb(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AuroraSimulator, GlobalDatabase]]:
    async for pair in _global_database(request.param, 2):
        yield pair


@pytest.fixture(params=ENGINES)
async def gdb3(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AuroraSimulator, GlobalDatabase]]:
    """Three instances per region: two readers at home, so a home reader can replace another."""
    async for pair in _global_database(request.param, 3):
        yield pair


def options(sim: AuroraSimulator, gdb: GlobalDatabase) -> dict[str, Any]:
    primary = f"{sim.region}:{sim.instance_host_pattern}"
    patterns = f"{primary},{gdb.secondary_region}:{gdb.secondary.instance_host_pattern}"
    kwargs: dict[str, Any] = {"global_cluster_instance_host_patterns": patterns, "failover_timeout": 30}
    if sim.engine == "mysql":
        kwargs["autocommit"] = True
    return kwargs


def regions(sim: AuroraSimulator, gdb: GlobalDatabase) -> dict[str, str]:
    """Each instance's region, as the simulator placed them (not as the library read them)."""
    return {i: sim.region for i in sim.instance_ids} | {
        i: gdb.secondary_region for i in gdb.secondary.instance_ids
    }


async def row(conn: Any, sql: str, *args: Any) -> tuple[Any, ...]:
    """The first row of ``sql`` on an application connection of either engine."""
    if isinstance(conn, aurora_async.AuroraConnection):
        found = await conn.fetchrow(sql, *args)
        return tuple(found) if found is not None else ()
    async with conn.cursor() as cur:
        await cur.execute(sql.replace("$1", "%s"), args or None)
        return tuple(await cur.fetchone() or ())


async def close(conn: Any) -> None:
    if isinstance(conn, aurora_async.AuroraConnection):
        await conn.close()
    else:
        await conn.ensure_closed()


async def where_it_is(conn: Any, engine: str) -> tuple[str, bool]:
    """The instance the server says the connection is on, and whether it is read-only there."""
    instance_id, read_only = await row(conn, WHERE_SQL[engine])
    return str(instance_id), bool(int(read_only))


async def check_placed(conn: Any, engine: str, allowed: Where, placed: dict[str, str]) -> None:
    """The invariant: the server and the connection agree on where it is, and its mode allows that."""
    instance_id, reader = await where_it_is(conn, engine)
    assert conn.instance.instance_id == instance_id
    assert (conn.instance.role is aurora_async.Role.READER) == reader
    assert conn.instance.region == placed[instance_id]  # the catalog's region is the simulator's
    known = {i.instance_id: i.region for i in aurora_async.health(conn).instances}
    assert known[instance_id] == placed[instance_id]
    assert allowed(instance_id, placed[instance_id], reader), (instance_id, placed[instance_id], reader)


async def test_a_readers_crash_keeps_each_connection_where_its_mode_allows(
    gdb3: tuple[AuroraSimulator, GlobalDatabase],
) -> None:
    sim, database = gdb3
    home, away = sim.region, database.secondary_region
    placed = regions(sim, database)
    # one mode per connection, and where it may land once its reader crashed (a home reader, here)
    modes: dict[str, tuple[dict[str, Any], Callable[[str], Where]]] = {
        "home_reader_or_writer": (  # failover_mode=reader_or_writer's default; home by default too
            {},
            lambda gone: lambda i, region, reader: region == home and i != gone,
        ),
        "strict_home_reader": (
            {"active_home_failover_mode": "strict-home-reader", "failover_home_region": home},
            lambda gone: lambda i, region, reader: reader and region == home and i != gone,
        ),
        "strict_out_of_home_reader": (
            {"active_home_failover_mode": "strict_out_of_home_reader"},
            lambda gone: lambda i, region, reader: reader and region == away,
        ),
        "strict_any_reader": (
            {"active_home_failover_mode": "strict_any_reader"},
            lambda gone: lambda i, region, reader: reader and i != gone,
        ),
    }
    conns: dict[str, Any] = {}
    try:
        # every connection through the reader endpoint, on one reader (the endpoint takes turns)
        target: str | None = None
        for mode, (extra, _) in modes.items():
            for _ in range(6):
                conn = await aurora_async.connect(
                    sim.dsn("reader"), failover_mode="reader_or_writer", **options(sim, database), **extra
                )
                target = target or conn.instance.instance_id
                if conn.instance.instance_id == target:
                    conns[mode] = conn
                    break
                await close(conn)
            else:
                pytest.fail(f"the reader endpoint never led to {target} again")
        assert target is not None and target in sim.reader_ids and placed[target] == home
        await sim.crash(target)
        for mode, conn in conns.items():
            with pytest.raises(FailoverSuccessError, match=f"by active_home_failover_mode={mode}"):
                await row(conn, "SELECT 1")
        for mode, conn in conns.items():
            await check_placed(conn, sim.engine, modes[mode][1](target), placed)
    finally:
        for conn in conns.values():
            await close(conn)


async def test_after_losing_the_home_region_each_connection_follows_its_inactive_mode(
    gdb: tuple[AuroraSimulator, GlobalDatabase],
) -> None:
    sim, database = gdb
    home, away = sim.region, database.secondary_region
    placed = regions(sim, database)
    settings = options(sim, database)
    conns: list[Any] = []
    try:
        # three connections on the global writer, home region by default (the global writer's:
        # the endpoint is an address, which names none), differing only in inactive_home_failover_mode
        for extra in (
            {},  # failover_mode strict_writer: strict_writer in both
            {"inactive_home_failover_mode": "strict_any_reader"},
            {"inactive_home_failover_mode": "strict_home_reader", "failover_timeout": 5},
        ):
            conns.append(await aurora_async.connect(database.dsn(), **(settings | extra)))
        writer, reader, stuck = conns
        assert all(c.instance.instance_id == database.writer_id and c.instance.region == home for c in conns)
        returning = " RETURNING id" if sim.engine == "postgresql" else ""  # (a row to fetch on asyncpg)
        await row(writer, "INSERT INTO ledger VALUES (1)" + returning)
        await database.failover(allow_data_loss=True)

        async def write_again() -> None:
            for _ in range(5):  # what an application does: re-run after a failover error
                try:
                    await row(writer, "INSERT INTO ledger VALUES ($1)" + returning, 2)
                    return
                except FailoverSuccessError as exc:
                    assert "inactive_home_failover_mode=strict_writer" in str(exc)
            pytest.fail("the write never succeeded")

        async def read_again() -> None:
            with pytest.raises(
                FailoverSuccessError, match="by inactive_home_failover_mode=strict_any_reader"
            ):
                await row(reader, "SELECT 1")

        async def give_up() -> FailoverFailedError:
            with pytest.raises(FailoverFailedError) as caught:
                await row(stuck, "SELECT 1")
            return caught.value

        async with asyncio.timeout(60):
            _, _, failed = await asyncio.gather(write_again(), read_again(), give_up())
        engine = sim.engine
        await check_placed(
            writer, engine, lambda i, region, is_reader: not is_reader and region == away, placed
        )
        await check_placed(reader, engine, lambda i, region, is_reader: is_reader and region == away, placed)
        assert await row(writer, "SELECT count(*) FROM ledger WHERE id = 2") == (1,)
        message = str(failed)
        assert "inactive_home_failover_mode=strict_home_reader" in message
        assert f"no reader in home region {home} could be reached within failover_timeout=5 s" in message
        assert stuck.is_closed() and not writer.is_closed() and not reader.is_closed()
    finally:
        for conn in conns:
            await close(conn)


async def test_a_home_region_no_instance_is_in_is_warned_about_once(
    gdb: tuple[AuroraSimulator, GlobalDatabase], caplog: pytest.LogCaptureFixture
) -> None:
    sim, database = gdb
    caplog.set_level(logging.WARNING, logger="aurora_async.topology")
    conns: list[Any] = []
    try:
        # the cluster's first connection reads the topology: the check needs it
        conns.append(await aurora_async.connect(sim.dsn("cluster"), **options(sim, database)))
        for home in (sim.region, database.secondary_region, "ap-south-1", "ap-south-1"):
            conns.append(
                await aurora_async.connect(
                    sim.dsn("cluster"), failover_home_region=home, **options(sim, database)
                )
            )
        warnings = [r.getMessage() for r in caplog.records if "failover_home_region" in r.getMessage()]
        assert len(warnings) == 1, warnings  # the two regions with instances: none; the other: once
        assert "failover_home_region=ap-south-1" in warnings[0]
        assert sim.region in warnings[0] and database.secondary_region in warnings[0]
    finally:
        for conn in conns:
            await close(conn)


async def test_read_write_splitting_reads_in_the_home_region(
    gdb: tuple[AuroraSimulator, GlobalDatabase],
) -> None:
    sim, database = gdb
    home, away = sim.region, database.secondary_region
    placed = regions(sim, database)
    (home_reader,) = sim.reader_ids  # and the other region's two readers, which reads must not reach
    plugins = "initial_connection,failover,read_write_splitting"
    conns: list[Any] = []

    def home_writer(i: str, region: str, reader: bool) -> bool:
        return not reader and region == home

    try:
        for _ in range(6):  # at random among all three readers, six would hardly all land at home
            conn = await aurora_async.connect(sim.dsn("cluster"), plugins=plugins, **options(sim, database))
            conns.append(conn)
            await conn.set_read_only(True)
            await check_placed(conn, sim.engine, lambda i, region, reader: reader and region == home, placed)
            assert conn.instance.instance_id == home_reader
            await conn.set_read_only(False)
            await check_placed(conn, sim.engine, home_writer, placed)
        # the home region is each connection's own: one of the same cluster whose home is the other
        # region reads there
        abroad = await aurora_async.connect(
            sim.dsn("cluster"), plugins=plugins, failover_home_region=away, **options(sim, database)
        )
        conns.append(abroad)
        await abroad.set_read_only(True)
        await check_placed(abroad, sim.engine, lambda i, region, reader: reader and region == away, placed)
        assert len(registry.clusters()) == 1  # the same cluster as the others
        # the home region's reader lost: a read-only session stays on the writer, at home, not abroad
        await sim.crash(home_reader)
        late = await aurora_async.connect(sim.dsn("cluster"), plugins=plugins, **options(sim, database))
        conns.append(late)
        await late.set_read_only(True)
        assert late.read_only
        await check_placed(late, sim.engine, home_writer, placed)
    finally:
        for conn in conns:
            await close(conn)


async def test_the_doctor_reports_the_regions_home_region_and_modes(
    gdb: tuple[AuroraSimulator, GlobalDatabase],
) -> None:
    sim, database = gdb
    home, away = sim.region, database.secondary_region
    report = await diagnose(
        sim.dsn("cluster"), inactive_home_failover_mode="strict_any_reader", **options(sim, database)
    )
    check = report.check("global_database")
    assert check.status is Status.OK, report.format_text()
    assert check.details == {
        "regions": sorted([home, away]),
        "writer_region": home,
        "home_region": home,  # (the simulator's names carry no region: the global writer's)
        "active_home_failover_mode": "strict_writer",
        "inactive_home_failover_mode": "strict_any_reader",
    }
    typo = await diagnose(sim.dsn("cluster"), failover_home_region="ap-south-1", **options(sim, database))
    check = typo.check("global_database")
    assert check.status is Status.WARN and "no instance is in ap-south-1" in check.summary
    assert check.fix is not None and home in check.fix and away in check.fix
