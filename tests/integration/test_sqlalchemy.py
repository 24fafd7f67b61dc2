"""SQLAlchemy's asyncio engine on the simulator, with ``aurora_async.connect_raw`` as its async_creator.

What SQLAlchemy 2.1 (asyncpg dialect) raises when the writer fails over, what replaces the lost
connection (pre-ping, an ``is_closed()`` checkout check, a ``raw_connector`` that keeps the cluster's
topology while every pooled connection dies), that units of work retried on ``connection_invalidated``
lose and duplicate nothing, and that ``engine.dispose()`` leaves nothing running.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import String, event, exc, func, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import aurora_async
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from tests.helpers import IS_READER_SQL, eventually, fetchval, refused
from tests.integration.test_examples import _run

T = TypeVar("T")
WHO = text("SELECT pg_catalog.aurora_db_instance_identifier()")
FAILOVER_TIMEOUT = 20.0
# every disconnect SQLAlchemy reported with connection_invalidated=True across failovers and switchovers:
# DBAPIError (asyncpg ConnectionDoesNotExistError, mid-statement), InterfaceError ("connection is
# closed", a statement on a connection already known dead), InternalError (asyncpg InternalClientError)
DISCONNECTS = (exc.DBAPIError, exc.InterfaceError, exc.InternalError)


class Base(DeclarativeBase):
    pass


class Ledger(Base):
    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)  # what makes a unit of work idempotent
    instance: Mapped[str] = mapped_column(server_default=func.aurora_db_instance_identifier())


def options_for(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "failover_timeout": FAILOVER_TIMEOUT,
        **extra,
    }


def connect_raw(sim: AuroraSimulator, **extra: Any) -> Callable[[], Awaitable[asyncpg.Connection]]:
    """The ``async_creator``: one ``connect_raw`` through the writer cluster endpoint."""
    return functools.partial(aurora_async.connect_raw, sim.dsn("cluster"), **options_for(sim, **extra))


def make_engine(creator: Callable[[], Awaitable[asyncpg.Connection]], **kwargs: Any) -> AsyncEngine:
    return create_async_engine("postgresql+asyncpg://", async_creator=creator, **kwargs)


def replace_closed_on_checkout(engine: AsyncEngine) -> None:
    """A free stand-in for pool_pre_ping: a pooled connection aurora_async or the server closed."""

    @event.listens_for(engine.sync_engine, "checkout")
    def replace_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise exc.DisconnectionError("closed")


async def run_unit_of_work(
    work: Callable[[], Awaitable[T]], retried: list[exc.DBAPIError], attempts: int = 5
) -> T:
    """Re-run ``work`` after a DBAPIError with ``connection_invalidated``; record each such error."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except exc.DBAPIError as error:
            if not error.connection_invalidated or attempt == attempts:
                raise
            retried.append(error)
    raise AssertionError("unreachable")


@pytest.fixture
async def engine(aurora_postgres: AuroraSimulator) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(connect_raw(aurora_postgres))
    yield engine
    await engine.dispose()


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


async def instance_of(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str(await conn.scalar(WHO))


async def driver_connection(engine: AsyncEngine) -> asyncpg.Connection:
    """The asyncpg connection the pool hands out next (checked out and back in)."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    return raw


async def closed(raw: asyncpg.Connection) -> bool:
    return bool(raw.is_closed())


# -- (a) the engine lands on the writer ----------------------------------------------------------------


async def test_engine_with_connect_raw_lands_on_the_writer(
    aurora_postgres: AuroraSimulator, engine: AsyncEngine
) -> None:
    sim = aurora_postgres
    await create_tables(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        row = Ledger(key="first")
        session.add(row)
        await session.flush()
        assert row.instance == sim.writer_id == "11"
        assert await session.scalar(text(IS_READER_SQL)) is False
    raw = await driver_connection(engine)
    assert type(raw) is asyncpg.Connection  # the driver's own class, as SQLAlchemy's dialect wants
    [cluster] = registry.clusters()
    assert cluster.refs == 1 and cluster.tracker.count("11") == 1  # watched by the connection tracker


@pytest.mark.aurora_simulator(dns_delay=5.0)  # the writer endpoint stays stale for the whole test
async def test_stale_writer_endpoint_still_lands_on_the_new_writer(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    report = await sim.failover()
    assert await fetchval(sim.dsn("cluster"), IS_READER_SQL) is True  # the endpoint leads to a replica
    engine = make_engine(connect_raw(sim))
    try:
        assert await instance_of(engine) == report.new_writer
        await create_tables(engine)  # writable
    finally:
        await engine.dispose()


# -- (b) what SQLAlchemy raises across a failover, and the replacement connection ----------------------


async def test_first_use_after_failover_raises_an_invalidated_interface_error(
    aurora_postgres: AuroraSimulator, engine: AsyncEngine
) -> None:
    sim = aurora_postgres
    await create_tables(engine)
    old = await driver_connection(engine)  # idle in the pool, on 11
    report = await sim.failover()
    await eventually(lambda: closed(old), timeout=10, what="the pooled connection to close")

    with pytest.raises(exc.DBAPIError) as caught:
        async with engine.connect() as conn:  # no pre-ping: the pool hands out the dead connection
            await conn.execute(WHO)
    error = caught.value
    assert type(error) is exc.InterfaceError
    assert error.connection_invalidated is True
    assert type(error.orig) is AsyncAdapt_asyncpg_dbapi.InterfaceError
    assert type(error.orig.__cause__) is asyncpg.InterfaceError
    assert str(error.orig.__cause__) == "connection is closed"

    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        row = Ledger(key="after")
        session.add(row)
        await session.flush()
        assert row.instance == report.new_writer
        assert await session.scalar(WHO) == report.new_writer
    new = await driver_connection(engine)
    assert new is not old and not new.is_closed()
    [cluster] = registry.clusters()
    assert cluster.refs == 1 and cluster.tracker.count(report.new_writer) == 1
    assert cluster.tracker.count("11") == 0


async def _sleeping_on(sim: AuroraSimulator, instance_id: str) -> bool:
    return bool(
        await fetchval(
            sim.dsn(instance_id), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
        )
    )


async def test_statement_in_flight_when_the_writer_dies_raises_an_invalidated_dbapi_error(
    aurora_postgres: AuroraSimulator, engine: AsyncEngine
) -> None:
    sim = aurora_postgres

    async def long_query() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(30)"))

    query = asyncio.ensure_future(long_query())
    await eventually(lambda: _sleeping_on(sim, "11"), timeout=10, what="the query to start")
    report = await sim.failover()
    with pytest.raises(exc.DBAPIError) as caught:
        await asyncio.wait_for(query, 15)
    error = caught.value
    assert type(error) is exc.DBAPIError  # the generic class: asyncpg's error is a PostgresError
    assert error.connection_invalidated is True
    assert type(error.orig) is AsyncAdapt_asyncpg_dbapi.Error
    assert type(error.orig.__cause__) is asyncpg.ConnectionDoesNotExistError
    assert await instance_of(engine) == report.new_writer  # the next checkout connects anew


@pytest.mark.aurora_simulator(dns_delay=30.0)  # the writer endpoint leads to 11 throughout
async def test_a_raw_connector_reaches_the_new_writer_past_a_dead_endpoint(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    # two clusters as far as aurora_async is concerned: one held by a RawConnector
    connector = aurora_async.raw_connector(sim.dsn("cluster"), **options_for(sim))
    anchored = make_engine(connector)
    alone = make_engine(connect_raw(sim, cluster_id="alone"))
    try:
        assert await instance_of(anchored) == await instance_of(alone) == "11"
        report = await sim.failover()
        await sim.crash("11")  # the old writer, now a replica, goes down: the endpoint refuses
        assert await refused(sim.cluster_endpoint)

        retried: list[exc.DBAPIError] = []
        # alone: its only connection died with the writer, and with it connect_raw's hold on the cluster;
        # but the registry remembers what that cluster learned (for topology_refresh seconds), so a
        # fresh connect_raw goes past the dead endpoint to the new writer too
        assert await run_unit_of_work(lambda: instance_of(alone), retried) == report.new_writer
        assert [type(e) for e in retried] == [exc.InterfaceError]  # the dead pooled connection

        retried.clear()
        # the connector's cluster still knows the topology, so its next connection goes to the new writer
        assert await run_unit_of_work(lambda: instance_of(anchored), retried) == report.new_writer
        assert [type(e) for e in retried] == [exc.InterfaceError]
    finally:
        await anchored.dispose()
        await alone.dispose()
        await connector.aclose()


@pytest.mark.parametrize("guard", ["pool_pre_ping", "is_closed_on_checkout"])
async def test_a_checkout_guard_replaces_the_dead_pooled_connection_silently(
    aurora_postgres: AuroraSimulator, guard: str
) -> None:
    sim = aurora_postgres
    engine = make_engine(connect_raw(sim), pool_pre_ping=guard == "pool_pre_ping")
    if guard == "is_closed_on_checkout":
        replace_closed_on_checkout(engine)
    try:
        old = await driver_connection(engine)
        report = await sim.failover()
        await eventually(lambda: closed(old), timeout=10, what="the pooled connection to close")
        assert await instance_of(engine) == report.new_writer  # no error: replaced at checkout
        assert await driver_connection(engine) is not old
    finally:
        await engine.dispose()


# -- (c) concurrent units of work through a failover -----------------------------------------------


async def test_concurrent_units_of_work_lose_and_duplicate_nothing_across_a_failover(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    tasks_count = 20
    connector = aurora_async.raw_connector(sim.dsn("cluster"), **options_for(sim))
    engine = make_engine(connector, pool_size=tasks_count, max_overflow=0)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    acknowledged: dict[str, str | None] = {}  # key -> instance that stored it (None: found there)
    per_task: list[list[str | None]] = [[] for _ in range(tasks_count)]
    retried: list[exc.DBAPIError] = []
    stop = asyncio.Event()

    async def unit(key: str) -> str | None:
        async with sessions() as session, session.begin():
            stored = await session.execute(
                insert(Ledger)
                .values(key=key)
                .on_conflict_do_nothing(index_elements=[Ledger.key])
                .returning(Ledger.instance)
            )
            return stored.scalar_one_or_none()  # None: an earlier attempt had committed it

    async def worker(k: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key = f"t{k}-{n}"
            mine: list[exc.DBAPIError] = []
            instance = await run_unit_of_work(functools.partial(unit, key), mine)
            retried.extend(mine)
            assert instance is not None or mine, f"{key} was there before it was first run"
            acknowledged[key] = instance
            per_task[k].append(instance)

    def progress(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
        async def holds() -> bool:
            for task in tasks:
                if task.done():
                    task.result()  # a worker that failed fails the test now, with its error
            return check()

        return holds

    try:
        await create_tables(engine)
        tasks = [asyncio.ensure_future(worker(k)) for k in range(tasks_count)]
        try:
            await eventually(
                progress(lambda: all(len(done) >= 2 for done in per_task)), timeout=30, what="every task"
            )
            report = await sim.failover()
            new = report.new_writer
            await eventually(
                progress(lambda: all(new in done for done in per_task)),
                timeout=40,
                what="every task to commit a unit on the new writer",
            )
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 40)
        for task in tasks:
            task.result()  # none raised: in particular no bare OSError from a checkout
    finally:
        await engine.dispose()
        await connector.aclose()

    assert retried, "no unit of work was in flight when the writer died"
    assert all(type(e) in DISCONNECTS and e.connection_invalidated for e in retried), retried
    rows = await _ledger(sim.dsn(new))  # read from the new writer itself
    assert len(rows) == len(acknowledged)  # one row per acknowledged unit: none twice
    stored = dict(rows)
    assert stored.keys() == acknowledged.keys()  # none lost, none that was not acknowledged
    assert set(stored.values()) == {"11", new}
    for key, instance in acknowledged.items():
        if instance is not None:
            assert stored[key] == instance, key
    assert sum(i == new for i in stored.values()) >= tasks_count


async def _ledger(dsn: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch("SELECT key, instance FROM ledger")
    finally:
        await conn.close(timeout=5)
    return [(r["key"], r["instance"]) for r in rows]


# -- (d) dispose leaves nothing behind -------------------------------------------------------------


async def test_dispose_leaves_no_task_and_no_cluster(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    before = set(asyncio.all_tasks())
    engine = make_engine(connect_raw(sim), pool_size=5, max_overflow=0)
    conns = [await engine.connect() for _ in range(5)]
    assert [await c.scalar(WHO) for c in conns] == ["11"] * 5
    [cluster] = registry.clusters()
    assert cluster.refs == 5 and cluster.tracker.count("11") == 5
    for c in conns:
        await c.close()  # back to the pool, still open
    report = await sim.failover()
    retried: list[exc.DBAPIError] = []
    assert await run_unit_of_work(lambda: instance_of(engine), retried) == report.new_writer
    # one dead pooled connection raised; that invalidated the whole pool, so SQLAlchemy replaced the
    # other four at checkout without trying them
    assert len(retried) == 1 and type(retried[0]) is exc.InterfaceError
    assert len(registry.clusters()) == 1

    await engine.dispose()

    def ours() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]

    async def nothing_left() -> bool:
        return registry.clusters() == [] and ours() == []

    # asyncpg runs termination listeners (connect_raw's release of the cluster) with call_soon
    await eventually(nothing_left, timeout=5, what="the cluster and its tasks to stop")
    assert registry.clusters() == [] and ours() == []

    async def no_client_backends() -> bool:
        count = await fetchval(
            sim.dsn(report.new_writer),
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
        return count == 1  # only the query that counts

    await eventually(no_client_backends, timeout=10, what="the server to see every connection closed")


# -- (e) the example ---------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_sqlalchemy_example_retries_and_stores_every_acknowledged_unit(engine: str) -> None:
    text_ = await _run("sqlalchemy_async.py", "--engine", engine)
    assert "Engine checkouts land on instance 11 " in text_, text_
    errors = re.findall(
        r"^  w\d: +\+ *\d+ ms (sqlalchemy\.exc\.\w+) \(connection_invalidated=(\w+);", text_, re.M
    )
    if engine == "postgresql":
        assert errors, text_  # asyncpg: a unit is always in flight (MySQL's are quicker: maybe none was)
    disconnects = {f"sqlalchemy.exc.{c.__name__}" for c in (*DISCONNECTS, exc.OperationalError)}
    assert all(kind in disconnects for kind, _ in errors), text_
    assert all(invalidated == "True" for _, invalidated in errors), text_
    moved = re.search(r"Instance before the failover: 11; after: (\d+) \(new writer: (\d+)\)", text_)
    assert moved and moved.group(1) == moved.group(2) != "11", text_
    counts = re.search(
        r"Units acknowledged: (\d+) \((\d+) on 11, (\d+) on \d+; .*rows committed: (\d+)", text_
    )
    assert counts, text_
    acknowledged, on_old, on_new, rows = map(int, counts.groups())
    assert acknowledged == rows and on_old > 0 and on_new > 0, text_
    replica = re.search(r"reader engine \(failover_mode='strict_reader'\) reads (\d+) rows on (\d+)", text_)
    assert replica and int(replica.group(1)) == rows and replica.group(2) != moved.group(1), text_
    assert "OK: every acknowledged unit of work is stored exactly once" in text_, text_
