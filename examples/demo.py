"""``make demo``: asyncio workers riding through an Aurora failover, with and without aurora_async.

    .venv/bin/python examples/demo.py [--engine mysql]

A simulated three-instance Aurora PostgreSQL (or MySQL) cluster (real servers, see
aurora_async.testing) takes writes from two groups of workers through the writer cluster endpoint:

- aurora_async workers: ``aurora_async.connect()``, retry the insert on ``FailoverSuccessError``;
- plain asyncpg (or aiomysql) workers: reconnect to the same endpoint after any error (what most apps
  do).

Mid-run the writer dies. Each worker's timeline shows its last write on the old writer, the error it
saw, its first write on the new writer and the gap; the endpoint's DNS stays stale for 3 s, as it does
for clients of Aurora.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pymysql
from _engines import ENGINES, close, instance_sql, plain_connect, scalar, terminate

import aurora_async
from aurora_async.testing import AuroraSimulator

WORKERS = 4
PAUSE = 0.01  # between inserts
INSERT = {
    "postgresql": "INSERT INTO orders(worker) VALUES ($1)",
    "mysql": "INSERT INTO orders(worker) VALUES (%s)",
}
ORDERS = {
    "postgresql": "CREATE TABLE orders(id bigserial PRIMARY KEY, worker text)",
    "mysql": "CREATE TABLE orders(id bigint AUTO_INCREMENT PRIMARY KEY, worker text)",
}
LOST = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, pymysql.err.MySQLError)
MYSQL_READ_ONLY = 1290  # "--read-only option": the old writer, now a replica, refused the insert


def refused_as_read_only(exc: BaseException) -> bool:
    """The insert was refused by a read-only instance, so it surely did not commit."""
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return True
    return isinstance(exc, pymysql.err.OperationalError) and exc.args[0] == MYSQL_READ_ONLY


@dataclass
class Timeline:
    name: str
    before: tuple[float, str] | None = None  # last success on the old writer: (time, instance)
    error: tuple[float, str] | None = None  # first error after the failover started
    after: tuple[float, str] | None = None  # first success on the new writer
    writes: int = 0
    unknown: int = 0  # inserts in flight when the connection died: they may or may not have committed
    recovered: asyncio.Event = field(default_factory=asyncio.Event)

    def ok(self, at: float, instance: str, old_writer: str) -> None:
        self.writes += 1
        if instance == old_writer and self.error is None:
            self.before = (at, instance)
        elif instance != old_writer and self.after is None:
            self.after = (at, instance)
            self.recovered.set()

    def failed(self, at: float, exc: BaseException) -> None:
        if self.error is None:
            self.error = (at, type(exc).__name__)


async def aurora_worker(sim: AuroraSimulator, timeline: Timeline, stop: asyncio.Event) -> None:
    driver = {"autocommit": True} if sim.engine == "mysql" else {}
    conn: Any = await aurora_async.connect(
        sim.dsn("cluster"),
        cluster_instance_host_pattern=sim.instance_host_pattern,
        failover_timeout=30,
        **driver,
    )
    try:
        while not stop.is_set():
            try:
                await scalar(conn, INSERT[sim.engine], timeline.name)
            except aurora_async.FailoverSuccessError as exc:
                timeline.failed(time.monotonic(), exc)
                timeline.unknown += exc.may_have_run  # an idempotent app would check before retrying
                continue  # the connection is on the new writer: just retry
            timeline.ok(time.monotonic(), conn.instance.instance_id, "11")
            await asyncio.sleep(PAUSE)
    finally:
        await close(conn)


async def plain_worker(sim: AuroraSimulator, timeline: Timeline, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            conn = await plain_connect(sim, timeout=2)
            try:
                instance = str(await scalar(conn, instance_sql(conn)))
                while not stop.is_set():
                    timeline.unknown += 1  # until the server answers
                    try:
                        await asyncio.wait_for(scalar(conn, INSERT[sim.engine], timeline.name), 2)
                    except LOST as exc:
                        if refused_as_read_only(exc):
                            timeline.unknown -= 1  # rejected by the old writer, now a replica
                        raise
                    timeline.unknown -= 1
                    timeline.ok(time.monotonic(), instance, "11")
                    await asyncio.sleep(PAUSE)
            finally:
                terminate(conn)
        except LOST as exc:
            timeline.failed(time.monotonic(), exc)
            await asyncio.sleep(0.05)


def describe(timeline: Timeline, origin: float) -> str:
    def at(point: tuple[float, str] | None) -> str:
        return f"+{(point[0] - origin) * 1000:6.0f} ms on {point[1]}" if point else "        -        "

    error = f"{timeline.error[1]} at +{(timeline.error[0] - origin) * 1000:.0f} ms" if timeline.error else "-"
    gap = (
        f"{(timeline.after[0] - timeline.before[0]) * 1000:6.0f} ms"
        if timeline.before and timeline.after
        else "   n/a   "
    )
    return (
        f"  {timeline.name:<8} last ok {at(timeline.before)} | first ok {at(timeline.after)} "
        f"| gap {gap} | {error}"
    )


async def main(engine: str) -> None:
    driver = "aiomysql" if engine == "mysql" else "asyncpg"
    name = "MySQL" if engine == "mysql" else "PostgreSQL"
    print(f"Starting a simulated 3-instance Aurora {name} cluster (real servers)...")
    async with AuroraSimulator(engine=engine, instances=3, dns_delay=3.0) as sim:
        setup = await plain_connect(sim)
        await scalar(setup, ORDERS[engine])
        await close(setup)

        stop = asyncio.Event()
        ours = [Timeline(f"aurora-{k}") for k in range(WORKERS)]
        plain = [Timeline(f"plain-{k}") for k in range(WORKERS)]
        workers = [asyncio.create_task(aurora_worker(sim, t, stop)) for t in ours]
        workers += [asyncio.create_task(plain_worker(sim, t, stop)) for t in plain]
        await asyncio.sleep(1.0)

        print("Killing the writer (instance 11)...\n")
        report = await sim.failover()
        everyone = asyncio.gather(*(t.recovered.wait() for t in ours + plain))
        try:
            await asyncio.wait_for(everyone, 15)
        finally:
            stop.set()
        await asyncio.gather(*workers)

        print(report.format())
        origin = report.started_at
        print("\nWorkers (times from the writer's death; gap: last write on 11 -> first on the new writer):")
        for timeline in ours + plain:
            print(describe(timeline, origin))
        promoted = next(e.at for e in report.events if e.step == "replica promoted")
        ours_after = [t.after[0] - promoted for t in ours if t.after]
        plain_after = [t.after[0] - promoted for t in plain if t.after]
        if ours_after and plain_after:
            print(
                f"\nFirst write on the new writer after its promotion: aurora_async "
                f"{max(ours_after) * 1000:.0f} ms (slowest worker), plain {driver} "
                f"{min(plain_after) * 1000:.0f} ms (fastest worker; it waits for the endpoint's DNS)."
            )
        check = await plain_connect(sim, sim.writer_id)
        rows = await scalar(check, "SELECT count(*) FROM orders")
        await close(check)
        acknowledged = sum(t.writes for t in ours + plain)
        unknown = sum(t.unknown for t in ours + plain)
        print(
            f"{acknowledged} inserts acknowledged, {unknown} in flight when their connection died "
            f"(outcome unknown), {rows} rows on the new writer."
        )
    print("Cluster stopped and removed.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=ENGINES, default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
