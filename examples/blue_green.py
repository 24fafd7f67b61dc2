"""A blue/green switchover, with and without aurora_async's ``bg`` plugin.

    .venv/bin/python examples/blue_green.py [--engine mysql]

A simulated Aurora cluster (blue) gets a blue/green deployment: a green cluster that replicates from
it (real servers; see aurora_async.testing). Two groups of workers write through the cluster endpoint,
20 inserts a second each:

- aurora_async workers with ``plugins=...,bg``: the library reads the deployment's metadata, holds their
  inserts while the switchover runs, moves them to green's writer and runs the held inserts there;
- plain asyncpg (or aiomysql) workers: reconnect to the same endpoint after any error, as most apps do.

Then the switchover: blue stops taking writes and every connection of both clusters is dropped, green
catches up, the names swap (DNS follows 2 s later) and green takes writes. The output is the
switchover's timeline, then each worker's failed inserts, its longest pause and where it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from dataclasses import dataclass

from _engines import ENGINES, close, instance_sql, plain_connect, scalar

import aurora_async
from aurora_async.testing import AuroraSimulator

WORKERS = 3
PAUSE = 0.05  # between inserts: 20 a second per worker
PLUGINS = "initial_connection,aurora_connection_tracker,failover,host_monitoring,bg"
LEDGER = "CREATE TABLE ledger(id bigint PRIMARY KEY, worker text)"
INSERT = {"postgresql": "INSERT INTO ledger VALUES ($1, $2)", "mysql": "INSERT INTO ledger VALUES (%s, %s)"}


@dataclass
class Worker:
    name: str
    writes: int = 0
    failed: int = 0
    longest: float = 0.0  # the longest time one insert took, or from a failure to the next success
    last_error: str = ""
    on: str = "?"


async def run(
    worker: Worker, connect: object, sim: AuroraSimulator, ids: itertools.count[int], stop: asyncio.Event
) -> None:
    conn = None
    since = time.monotonic()
    while not stop.is_set():
        try:
            if conn is None:
                conn = await connect()  # type: ignore[operator]
            await scalar(conn, INSERT[sim.engine], next(ids), worker.name)
        except Exception as exc:  # a failed request: what the application sees
            worker.failed += 1
            worker.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:70]}"
            if not worker.name.startswith("aurora"):  # the plain driver: reconnect after any error
                if conn is not None:
                    conn.terminate() if hasattr(conn, "terminate") else conn.close()
                conn = None
            await asyncio.sleep(PAUSE)
            continue
        now = time.monotonic()
        worker.longest = max(worker.longest, now - since)
        worker.writes += 1
        await asyncio.sleep(PAUSE)
        since = time.monotonic()
    if conn is not None:
        worker.on = str(await scalar(conn, instance_sql(conn)))
        await close(conn)


async def main(engine: str) -> None:
    async with AuroraSimulator(engine=engine, instances=2, dns_delay=2.0) as sim:
        setup = await plain_connect(sim)
        await scalar(setup, LEDGER)
        await close(setup)
        deployment = await sim.create_blue_green()
        print(f"blue: writer {sim.writer_id}; green: writer {deployment.green.writer_id}, replicating")

        options: dict[str, object] = {
            "cluster_instance_host_pattern": sim.instance_host_pattern,
            "plugins": PLUGINS,
        }
        if engine == "mysql":
            options["autocommit"] = True

        async def ours() -> object:
            return await aurora_async.connect(sim.dsn("cluster"), **options)

        async def plain() -> object:
            return await plain_connect(sim, timeout=2)

        ids, stop = itertools.count(1), asyncio.Event()
        workers = [Worker(f"aurora-{k}") for k in range(WORKERS)] + [
            Worker(f"plain-{k}") for k in range(WORKERS)
        ]
        tasks = [
            asyncio.create_task(run(w, ours if w.name.startswith("aurora") else plain, sim, ids, stop))
            for w in workers
        ]
        await asyncio.sleep(2.0)  # writes on blue (the library reads the metadata every second)
        report = await deployment.switchover()
        await asyncio.sleep(2.0)  # writes on green
        stop.set()
        await asyncio.gather(*tasks)

        print(report.format())
        for w in workers:
            detail = f"  last error: {w.last_error}" if w.failed else ""
            pause = f"longest pause {w.longest * 1000:6.0f} ms"
            print(f"{w.name:<9} {w.writes:4d} writes, {w.failed:3d} failed, {pause}, ends on {w.on}{detail}")
        green, blue = deployment.green.writer_id, sim.writer_id
        print(f"green's writer is {green}; blue's old writer {blue} takes no writes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=ENGINES, default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
