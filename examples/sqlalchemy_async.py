"""SQLAlchemy's asyncio ORM on Aurora PostgreSQL through aurora_async, riding through a failover.

    .venv/bin/python examples/sqlalchemy_async.py

``create_async_engine("postgresql+asyncpg://", async_creator=aurora_async.raw_connector(...))``:
every pooled connection is a genuine asyncpg connection, checked to be on the writer when it is made
(a stale writer endpoint that leads to a replica is corrected). Mid-run the writer dies. SQLAlchemy
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
"""

from __future__ import annotations

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

import aurora_async
from aurora_async.testing import AuroraSimulator

WORKERS = 4
ATTEMPTS = 5  # runs of one unit of work at most
WHO = text("SELECT pg_catalog.aurora_db_instance_identifier()")

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    __mapper_args__ = {"eager_defaults": True}  # read `instance` back with the INSERT

    key: Mapped[str] = mapped_column(String(32), primary_key=True)  # the unit of work's idempotency key
    worker: Mapped[str] = mapped_column(String(16))
    # which instance stored the row (the simulator, like Aurora, answers this function)
    instance: Mapped[str] = mapped_column(server_default=func.aurora_db_instance_identifier())


def make_engine(connector: aurora_async.RawConnector) -> AsyncEngine:
    engine = create_async_engine(
        "postgresql+asyncpg://",
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
        if dbapi_connection.driver_connection.is_closed():
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


async def insert_order(sessions: async_sessionmaker[AsyncSession], key: str, worker: str) -> str | None:
    """One unit of work: store order ``key`` unless it is already there; the instance that took it."""
    async with sessions() as session, session.begin():
        if await session.get(Order, key) is not None:
            return None
        order = Order(key=key, worker=worker)
        session.add(order)
        await session.flush()
        return order.instance


async def work(
    sessions: async_sessionmaker[AsyncSession], me: Worker, first: str, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        me.last_key += 1
        key = f"{me.name}-{me.last_key}"
        tries = len(me.errors)
        instance = await run_unit_of_work(
            functools.partial(insert_order, sessions, key, me.name),
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


async def instance_of(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as session:
        return str(await session.scalar(WHO))


def describe(error: exc.DBAPIError) -> str:
    orig = error.orig
    driver = orig.__cause__ if orig is not None and orig.__cause__ is not None else orig
    return (
        f"{type(error).__module__}.{type(error).__name__} (connection_invalidated="
        f"{error.connection_invalidated}; asyncpg {type(driver).__name__}: {driver})"
    )


async def main() -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="  log %(name)s: %(message)s")
    logging.getLogger("aurora_async.topology").setLevel(logging.INFO)  # the writer search, as it happens
    print("Starting a simulated 3-instance Aurora PostgreSQL cluster (real servers)...")
    async with AuroraSimulator(instances=3) as sim:
        dsn = sim.dsn("cluster")
        # The connector holds the cluster for the engine's life, so its topology survives the moment
        # the writer's death closes every pooled connection at once; without it the next connection
        # would dial the endpoint's dead instance and raise a bare ConnectionRefusedError until the
        # old writer is back as a replica or the endpoint's DNS moves.
        connector = aurora_async.raw_connector(
            dsn, cluster_instance_host_pattern=sim.instance_host_pattern, failover_timeout=20
        )
        engine = make_engine(connector)
        try:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            first = await instance_of(sessions)
            print(f"Engine checkouts land on instance {first} (pg_catalog.aurora_db_instance_identifier())")

            stop = asyncio.Event()
            workers = [Worker(f"w{k}") for k in range(WORKERS)]
            tasks = [asyncio.create_task(work(sessions, w, first, stop)) for w in workers]
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

            after = await instance_of(sessions)
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
        finally:
            await engine.dispose()
            await connector.aclose()
    # the key is the primary key: a row per acknowledged unit means none lost, none extra, none twice
    if rows != acknowledged or after != report.new_writer:
        raise SystemExit(f"MISMATCH: {rows} rows for {acknowledged} acknowledged units, engine on {after}")
    print("OK: every acknowledged unit of work is stored exactly once, and the engine is on the new writer.")


if __name__ == "__main__":
    asyncio.run(main())
