"""SQLAlchemy's asyncio ORM on Aurora (PostgreSQL or MySQL) through aurora_async, riding through a failover.

    .venv/bin/python examples/sqlalchemy_async.py [--engine mysql]

``create_async_engine("postgresql+asyncpg://", async_creator=aurora_async.raw_connector(...))`` (or
``"mysql+aiomysql://"`` with a ``mysql://`` DSN): every pooled connection is a genuine asyncpg (aiomysql)
connection, checked to be on the writer when it is made (a stale writer endpoint that leads to a
replica is corrected), and watched by host monitoring (a call on a black-holed instance fails within
the detection window instead of waiting on TCP). Mid-run the writer dies. SQLAlchemy
raises its own errors, not aurora_async's: a unit of work in flight fails with a
``sqlalchemy.exc.DBAPIError`` (or its ``InterfaceError`` / ``InternalError`` subclasses) whose
``connection_invalidated`` is True, and the pool has already discarded that connection. So:

- ``run_unit_of_work`` re-runs a unit after such an error; the unit is idempotent (its order key is the
  primary key, looked up first) because one cut off during its COMMIT may have committed;
- the connector (``aurora_async.raw_connector``) holds the cluster for the engine's life: it keeps the
  cluster's topology alive while every pooled connection dies with the writer, so a new connection
  whose endpoint still leads to the dead writer reaches the new one through that topology instead of
  raising a bare ``ConnectionRefusedError`` (which SQLAlchemy would pass on unwrapped);
- a ``checkout`` hook replaces pooled connections that aurora_async or the server already closed.

Read/write splitting: a second engine whose connector has ``failover_mode="strict_reader"`` hands out
connections on replicas; sessions made from it read there (``async_sessionmaker(reader)``), sessions
from the writer engine write. The example counts the rows on a replica at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import String, event, exc, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import TextClause

import aurora_async
from aurora_async.testing import AuroraSimulator

WORKERS = 4
ATTEMPTS = 5  # runs of one unit of work at most
URL = {"postgresql": "postgresql+asyncpg://", "mysql": "mysql+aiomysql://"}
# which instance answers (the simulator, like Aurora, answers these)
WHO: dict[str, TextClause] = {
    "postgresql": text("SELECT pg_catalog.aurora_db_instance_identifier()"),
    "mysql": text("SELECT @@server_id"),
}

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)  # the unit of work's idempotency key
    worker: Mapped[str] = mapped_column(String(16))
    instance: Mapped[str] = mapped_column(String(16))  # which instance stored the row


def make_engine(engine_name: str, connector: aurora_async.RawConnector) -> AsyncEngine:
    engine = create_async_engine(
        URL[engine_name],
        async_creator=connector,
        # No pre-ping. It would cost every checkout a BEGIN / ';' / ROLLBACK exchange with the server
        # (three round trips), and it cannot replace the retry below: a failover that strikes while a
        # unit of work runs still raises. What it would catch, a pooled connection whose instance is
        # no longer the writer, aurora_async has already closed (the server died, or the connection
        # tracker terminated it when the writer changed): the free `is_closed()` check below finds it.
        pool_pre_ping=False,
        pool_size=WORKERS,
    )

    @event.listens_for(engine.sync_engine, "checkout")
    def replace_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():  # asyncpg's; aiomysql's through aurora_async
            raise exc.DisconnectionError("closed by aurora_async or the server")  # the pool reconnects

    return engine


async def run_unit_of_work(
    work: Callable[[], Awaitable[T]], on_retry: Callable[[exc.DBAPIError], None] | None = None
) -> T:
    """Run ``work`` (a whole unit of work, from checkout to COMMIT) again when SQLAlchemy reports that
    the connection under it was lost: a ``DBAPIError`` with ``connection_invalidated``. Its next
    checkout makes a new connection, on the new writer. Any other error, or the last attempt's, is
    raised. ``work`` must be idempotent: a unit cut off during its COMMIT may have committed."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await work()
        except exc.DBAPIError as error:
            if not error.connection_invalidated or attempt == ATTEMPTS:
                raise
            if on_retry is not None:
                on_retry(error)
    raise AssertionError("unreachable")


@dataclass
class Worker:
    name: str
    acknowledged: int = 0
    already_there: int = 0  # retried units whose first attempt had committed after all
    last_key: int = 0
    errors: list[tuple[float, exc.DBAPIError]] = field(default_factory=list)
    on: Counter[str] = field(default_factory=Counter)  # acknowledged units per instance
    moved_at: float | None = None  # when the first unit landed off the first writer
    moved: asyncio.Event = field(default_factory=asyncio.Event)


async def insert_order(
    sessions: async_sessionmaker[AsyncSession], who: TextClause, key: str, worker: str
) -> str | None:
    """One unit of work: store order ``key`` unless it is already there; the instance that took it."""
    async with sessions() as session, session.begin():
        if await session.get(Order, key) is not None:
            return None
        instance = str(await session.scalar(who))
        session.add(Order(key=key, worker=worker, instance=instance))
        return instance


async def work(
    sessions: async_sessionmaker[AsyncSession], who: TextClause, me: Worker, first: str, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        me.last_key += 1
        key = f"{me.name}-{me.last_key}"
        tries = len(me.errors)
        instance = await run_unit_of_work(
            functools.partial(insert_order, sessions, who, key, me.name),
            on_retry=lambda error: me.errors.append((time.monotonic(), error)),
        )
        me.acknowledged += 1
        if instance is None:
            if len(me.errors) == tries:
                raise AssertionError(f"{key} existed before its first attempt")
            me.already_there += 1
            continue
        me.on[instance] += 1
        if instance != first and me.moved_at is None:
            me.moved_at = time.monotonic()
            me.moved.set()


async def instance_of(sessions: async_sessionmaker[AsyncSession], who: TextClause) -> str:
    async with sessions() as session:
        return str(await session.scalar(who))


async def count_on_replica(
    reads: async_sessionmaker[AsyncSession], who: TextClause, expected: int | None
) -> tuple[str, int]:
    """Which replica a reader-engine session is on, and the orders it sees once replication caught up
    (waiting at most 10 s)."""
    deadline = time.monotonic() + 10
    async with reads() as session:
        replica = str(await session.scalar(who))
        while True:
            count = int(await session.scalar(select(func.count()).select_from(Order)) or 0)
            if count == expected or time.monotonic() > deadline:
                return replica, count
            await session.rollback()  # a new snapshot for the next look
            await asyncio.sleep(0.05)


def describe(error: exc.DBAPIError) -> str:
    orig = error.orig
    driver = orig.__cause__ if orig is not None and orig.__cause__ is not None else orig
    return (
        f"{type(error).__module__}.{type(error).__name__} (connection_invalidated="
        f"{error.connection_invalidated}; {type(driver).__module__.split('.')[0]} "
        f"{type(driver).__name__}: {driver})"
    )


async def main(engine_name: str) -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="  log %(name)s: %(message)s")
    logging.getLogger("aurora_async.topology").setLevel(logging.INFO)  # the writer search, as it happens
    print(f"Starting a simulated 3-instance Aurora {engine_name} cluster (real servers)...")
    who = WHO[engine_name]
    async with AuroraSimulator(engine=engine_name, instances=3) as sim:
        dsn = sim.dsn("cluster")
        # The connector holds the cluster for the engine's life, so its topology survives the moment
        # the writer's death closes every pooled connection at once; without it the next connection
        # would dial the endpoint's dead instance and raise a bare ConnectionRefusedError until the
        # old writer is back as a replica or the endpoint's DNS moves.
        connector = aurora_async.raw_connector(
            dsn, cluster_instance_host_pattern=sim.instance_host_pattern, failover_timeout=20
        )
        engine = make_engine(engine_name, connector)
        try:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            first = await instance_of(sessions, who)
            print(f"Engine checkouts land on instance {first} ({who})")

            stop = asyncio.Event()
            workers = [Worker(f"w{k}") for k in range(WORKERS)]
            tasks = [asyncio.create_task(work(sessions, who, w, first, stop)) for w in workers]
            print(f"{WORKERS} workers are inserting orders, one AsyncSession unit of work each.")
            try:
                await asyncio.sleep(1.0)  # let them write on the first writer
                print(f"Killing the writer ({first})...\n")
                report = await sim.failover()
                await asyncio.wait_for(asyncio.gather(*(w.moved.wait() for w in workers)), 15)
                await asyncio.sleep(0.5)  # and write there a little
            finally:
                stop.set()
                outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            if failed:
                raise failed[0]

            print(report.format())
            origin = report.started_at
            print("\nWhat SQLAlchemy raised in the units of work in flight (each unit was re-run):")
            seen: Counter[str] = Counter()
            for w in workers:
                for at, error in w.errors:
                    seen[type(error).__name__] += 1
                    print(f"  {w.name}: +{(at - origin) * 1000:5.0f} ms {describe(error)}")
            promoted = next(e.at for e in report.events if e.step == "replica promoted") - origin
            print(f"First unit acknowledged by the new writer (promoted at +{promoted * 1000:.0f} ms):")
            for w in workers:
                assert w.moved_at is not None
                print(f"  {w.name}: +{(w.moved_at - origin) * 1000:5.0f} ms")
            kinds = ", ".join(f"{n} x sqlalchemy.exc.{name}" for name, n in sorted(seen.items()))
            print(f"Retried after: {kinds or 'nothing (no unit was in flight)'}")

            after = await instance_of(sessions, who)
            print(
                f"\nInstance before the failover: {first}; after: {after} (new writer: {report.new_writer})"
            )
            acknowledged = sum(w.acknowledged for w in workers)
            already = sum(w.already_there for w in workers)
            per_instance: Counter[str] = Counter()
            for w in workers:
                per_instance.update(w.on)
            spread = ", ".join(f"{n} on {i}" for i, n in sorted(per_instance.items()))
            async with sessions() as session:
                rows = await session.scalar(select(func.count()).select_from(Order))
            print(
                f"Units acknowledged: {acknowledged} ({spread}; {already} found committed on retry); "
                f"rows committed: {rows}"
            )
            # read/write splitting: a second engine whose connections are on replicas
            async with aurora_async.raw_connector(
                dsn, cluster_instance_host_pattern=sim.instance_host_pattern, failover_mode="strict_reader"
            ) as reader_connector:
                reader = make_engine(engine_name, reader_connector)
                try:
                    replica, replica_rows = await count_on_replica(async_sessionmaker(reader), who, rows)
                finally:
                    await reader.dispose()
            print(f"A reader engine (failover_mode='strict_reader') reads {replica_rows} rows on {replica}")
        finally:
            await engine.dispose()
            await connector.aclose()
    # the key is the primary key: a row per acknowledged unit means none lost, none extra, none twice
    if rows != acknowledged or after != report.new_writer:
        raise SystemExit(f"MISMATCH: {rows} rows for {acknowledged} acknowledged units, engine on {after}")
    print("OK: every acknowledged unit of work is stored exactly once, and the engine is on the new writer.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgresql", "mysql"], default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
