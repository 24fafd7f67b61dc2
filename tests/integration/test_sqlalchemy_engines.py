"""SQLAlchemy's asyncio engine on both engines (``postgresql+asyncpg``, ``mysql+aiomysql``) with an
``aurora_async.raw_connector`` as its ``async_creator``: units of work through a failover, a black-holed
writer cut by host monitoring (and what happens without it), and a reader engine for read/write
splitting. The PostgreSQL-only details (what SQLAlchemy raises, pre-ping, a stale endpoint) are in
``test_sqlalchemy``."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import String, event, exc, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import aurora_async
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually

from ._engine_ops import EngineOps

T = TypeVar("T")
URL = {"postgresql": "postgresql+asyncpg://", "mysql": "mysql+aiomysql://"}
WHO = {
    "postgresql": text("SELECT pg_catalog.aurora_db_instance_identifier()"),
    "mysql": text("SELECT @@server_id"),
}
SLOW = {"postgresql": "SELECT pg_sleep(30)", "mysql": "SELECT SLEEP(30)"}
DEFAULT_PLUGINS = ("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring")


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)  # what makes a unit idempotent
    instance: Mapped[str] = mapped_column(String(16))


def connector(sim: AuroraSimulator, **extra: Any) -> aurora_async.RawConnector:
    return aurora_async.raw_connector(
        sim.dsn("cluster"),
        cluster_instance_host_pattern=sim.instance_host_pattern,
        failover_timeout=20,
        **extra,
    )


def make_engine(sim: AuroraSimulator, made_by: aurora_async.RawConnector, **kwargs: Any) -> AsyncEngine:
    engine = create_async_engine(URL[sim.engine], async_creator=made_by, **kwargs)

    @event.listens_for(engine.sync_engine, "checkout")
    def replace_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():  # asyncpg's, and aiomysql's through ours
            raise exc.DisconnectionError("closed by aurora_async or the server")

    return engine


@pytest.fixture
async def writer(sim: AuroraSimulator) -> AsyncIterator[AsyncEngine]:
    async with connector(sim) as made_by:
        engine = make_engine(sim, made_by, pool_size=4)
        try:
            yield engine
        finally:
            await engine.dispose()


async def retried(work: Callable[[], Awaitable[T]], errors: list[exc.DBAPIError], attempts: int = 5) -> T:
    """Re-run ``work`` after SQLAlchemy reported the connection under it lost."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except exc.DBAPIError as error:
            if not error.connection_invalidated or attempt == attempts:
                raise
            errors.append(error)
    raise AssertionError("unreachable")


async def instance_of(engine: AsyncEngine, sim: AuroraSimulator) -> str:
    async with engine.connect() as conn:
        return str(await conn.scalar(WHO[sim.engine]))


async def test_units_of_work_through_a_failover_are_stored_exactly_once(
    sim: AuroraSimulator, ops: EngineOps, writer: AsyncEngine
) -> None:
    async with writer.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(writer, expire_on_commit=False)
    assert await instance_of(writer, sim) == sim.writer_id
    errors: list[exc.DBAPIError] = []
    acknowledged: Counter[str] = Counter()
    new_writer = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def unit(key: str) -> str:
        async with sessions() as session, session.begin():
            instance = str(await session.scalar(WHO[sim.engine]))
            if await session.get(Order, key) is None:
                session.add(Order(key=key, instance=instance))
            return instance

    async def worker(name: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            instance = await retried(functools.partial(unit, f"{name}-{n}"), errors)
            acknowledged[instance] += 1
            if new_writer.done() and instance == new_writer.result():
                return  # a unit of work acknowledged by the new writer

    tasks = [asyncio.ensure_future(worker(f"w{k}")) for k in range(4)]

    async def some_done() -> bool:
        return sum(acknowledged.values()) >= 20

    await eventually(some_done, timeout=20, what="units on the first writer")
    report = await sim.failover()
    new_writer.set_result(report.new_writer)
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    rows = await ops.outside(report.new_writer, "SELECT count(*) FROM orders")
    assert rows == sum(acknowledged.values())  # none lost, none twice (the key is the primary key)
    assert acknowledged[report.new_writer] >= 4 and acknowledged[sim.instance_ids[0]] >= 20
    assert await instance_of(writer, sim) == report.new_writer
    [cluster] = registry.clusters()
    assert cluster.refs >= 1  # the connector holds it for the engine's life


@pytest.mark.parametrize("monitored", [True, False], ids=["host_monitoring", "without"])
async def test_a_black_holed_writer_is_cut_within_the_detection_window(
    sim: AuroraSimulator, ops: EngineOps, monitored: bool
) -> None:
    """A call in flight on a silent writer: with host monitoring (the default) SQLAlchemy sees the
    connection lost within the detection window (3 probes of 0.4 s) and the unit of work re-runs on the
    new writer; without it, the call still waits when the topology has long named the new writer."""
    plugins = DEFAULT_PLUGINS if monitored else tuple(p for p in DEFAULT_PLUGINS if p != "host_monitoring")
    async with connector(sim, plugins=plugins, topology_refresh=30) as made_by:
        engine = make_engine(sim, made_by, pool_size=2)
        try:
            assert await instance_of(engine, sim) == sim.writer_id

            async def slow() -> None:
                async with engine.connect() as conn:
                    await conn.execute(text(SLOW[sim.engine]))

            in_flight = asyncio.ensure_future(slow())

            async def started() -> bool:
                return await ops.running(sim.writer_id, SLOW[sim.engine]) == 1

            await eventually(started, timeout=5, what="the slow call to run on the server")
            silent = time.monotonic()
            await sim.blackhole(sim.writer_id)
            report = await sim.failover()
            done, _ = await asyncio.wait([in_flight], timeout=6 - (time.monotonic() - silent))
            if not monitored:
                assert not done  # still waiting on the silent socket (TCP would give up minutes later)
                in_flight.cancel()
                await asyncio.gather(in_flight, return_exceptions=True)
                return
            cut_after = time.monotonic() - silent
            assert done, "host monitoring did not cut the call within 6 s"
            error = in_flight.exception()
            assert isinstance(error, exc.DBAPIError) and error.connection_invalidated, error
            assert cut_after < 6
            # the next unit of work goes to the new writer, through the topology (the endpoint's DNS
            # may still lead to the silent writer: a connect there would wait out its timeout)
            assert await retried(lambda: instance_of(engine, sim), []) == report.new_writer
            recovered = time.monotonic() - silent
            assert recovered < 8, f"{recovered:.1f} s from the black hole to a unit on the new writer"
        finally:
            await engine.dispose()


async def test_a_reader_engine_reads_from_replicas_and_the_writer_engine_writes(
    sim: AuroraSimulator, writer: AsyncEngine
) -> None:
    async with connector(
        sim, failover_mode="strict_reader", reader_host_selector_strategy="round_robin"
    ) as r:
        reader = make_engine(sim, r, pool_size=4)
        try:
            async with writer.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            writes = async_sessionmaker(writer, expire_on_commit=False)
            reads = async_sessionmaker(reader)
            async with writes() as session, session.begin():
                session.add(Order(key="k1", instance=sim.writer_id))

            async def replicated() -> bool:
                async with reads() as session:
                    return bool(await session.scalar(select(func.count()).select_from(Order)) == 1)

            await eventually(replicated, timeout=10, what="the row on the replicas")
            # four connections at once: each on a replica, spread over both
            conns = [await reader.connect() for _ in range(4)]
            try:
                seen = {str(await c.scalar(WHO[sim.engine])) for c in conns}
            finally:
                for c in conns:
                    await c.close()
            assert seen == set(sim.reader_ids)
            async with reads() as session, session.begin():
                session.add(Order(key="k2", instance="replica"))
                with pytest.raises(exc.DBAPIError):  # replicas refuse writes: nothing lands there
                    await session.flush()
            async with writes() as session:
                keys = (await session.scalars(select(Order.key))).all()
            assert keys == ["k1"]
        finally:
            await reader.dispose()
