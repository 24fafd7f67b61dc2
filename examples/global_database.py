"""An Aurora Global Database: connections through the global writer endpoint follow the primary role to
another region, through a planned switchover and then an unplanned failover.

    .venv/bin/python examples/global_database.py [--engine mysql]

A simulated cluster (us-east-1) becomes the primary region of a Global Database whose secondary region
(eu-west-1) is a cluster of its own that replicates it (real servers; see aurora_async.testing). Three
aurora_async workers write through the global writer endpoint, each on its own connection, with
``global_cluster_instance_host_patterns`` naming each region's instances. A worker re-runs an insert
after ``FailoverSuccessError`` (the insert had not run) and counts it.

First ``switchover()`` moves the primary role to eu-west-1 with no data loss; then, with replication
held back for a moment, ``failover(allow_data_loss=True)`` loses eu-west-1 and promotes us-east-1 with
what it had. The output: the two timelines, each worker's writes, failover errors and where it ends,
and which acknowledged inserts the failover lost (the tail that had not reached us-east-1: no client
can be told about those, they were acknowledged).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from _engines import ENGINES, close, plain_connect, scalar

import aurora_async
from aurora_async import FailoverSuccessError
from aurora_async.testing import AuroraSimulator

WORKERS = 3
PAUSE = 0.05  # between inserts: 20 a second per worker
LEDGER = "CREATE TABLE ledger(id bigint PRIMARY KEY, worker text)"
INSERT = {"postgresql": "INSERT INTO ledger VALUES ($1, $2)", "mysql": "INSERT INTO ledger VALUES (%s, %s)"}


@dataclass
class Worker:
    name: str
    acknowledged: set[int] = field(default_factory=set)
    failovers: int = 0  # FailoverSuccessError: the insert is run again
    on: str = "?"


async def run(worker: Worker, conn: Any, engine: str, ids: itertools.count[int],
              stop: asyncio.Event) -> None:  # fmt: skip
    while not stop.is_set():
        row_id = next(ids)
        while True:
            try:
                await scalar(conn, INSERT[engine], row_id, worker.name)
                break
            except FailoverSuccessError:
                worker.failovers += 1
        worker.acknowledged.add(row_id)
        await asyncio.sleep(PAUSE)
    worker.on = f"{conn.instance.instance_id} ({conn.instance.region})"


async def main(engine: str) -> None:
    async with AuroraSimulator(engine=engine, instances=2, dns_delay=2.0) as sim:
        setup = await plain_connect(sim)
        await scalar(setup, LEDGER)
        await close(setup)
        gdb = await sim.create_global_database("eu-west-1")
        print(f"primary {gdb.primary_region} (writer {gdb.writer_id}); secondary {gdb.secondary_region}")

        patterns = (
            f"{sim.region}:{sim.instance_host_pattern},"
            f"{gdb.secondary_region}:{gdb.secondary.instance_host_pattern}"
        )
        options: dict[str, object] = {"global_cluster_instance_host_patterns": patterns}
        if engine == "mysql":
            options["autocommit"] = True
        conns = [await aurora_async.connect(gdb.dsn(), **options) for _ in range(WORKERS)]
        print(f"dialect {aurora_async.health(conns[0]).dialect}")
        ids = itertools.count(1)
        workers = [Worker(f"aurora-{k}") for k in range(WORKERS)]

        async def phase(move: str) -> None:
            stop = asyncio.Event()
            pairs = zip(workers, conns, strict=True)
            tasks = [asyncio.create_task(run(w, c, engine, ids, stop)) for w, c in pairs]
            await asyncio.sleep(1.0)
            if move == "switchover":
                report = await gdb.switchover()
            else:
                await gdb.hold_replication()
                await asyncio.sleep(0.3)  # an unreplicated tail
                report = await gdb.failover(allow_data_loss=True)
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*tasks)
            print(report.format())
            for w in workers:
                print(f"{w.name}  {len(w.acknowledged):4d} acknowledged, {w.failovers} failover error(s), "
                      f"on {w.on}")  # fmt: skip

        await phase("switchover")
        await phase("failover")
        check = conns[0]
        stored = set(await rows(check, engine))
        acknowledged = set().union(*(w.acknowledged for w in workers))
        lost = sorted(acknowledged - stored)
        print(f"{len(acknowledged)} inserts acknowledged, {len(stored)} stored, {len(lost)} lost in the "
              f"failover (ids {lost[0] if lost else '-'}..{lost[-1] if lost else '-'})")  # fmt: skip
        print(f"global writer now {gdb.writer_id} in {gdb.primary_region}")
        for conn in conns:
            await close(conn)


async def rows(conn: Any, engine: str) -> list[int]:
    """Every id stored (aiomysql's cursor API or asyncpg's)."""
    if engine == "mysql":
        async with conn.cursor() as cur:
            await cur.execute("SELECT id FROM ledger")
            return [int(r[0]) for r in await cur.fetchall()]
    return [int(r[0]) for r in await conn.fetch("SELECT id FROM ledger")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=ENGINES, default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
