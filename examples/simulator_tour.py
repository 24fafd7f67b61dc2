"""A tour of the local Aurora simulator (``make demo``).

    .venv/bin/python examples/simulator_tour.py [--engine mysql]

Starts a three-instance Aurora PostgreSQL (or MySQL) cluster of real servers, shows its endpoints and
topology, keeps a plain asyncpg (or aiomysql) client writing through the writer cluster endpoint, fails
the cluster over and prints the timeline of what the simulator did and what that client went through.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg
import pymysql
from _engines import ENGINES, plain_connect, terminate

from aurora_async.testing import AuroraSimulator

# Aurora's own catalog, as the simulator serves it (MySQL: the proxy maps information_schema's table)
TOPOLOGY_SQL = {
    "postgresql": "SELECT server_id, session_id = 'MASTER_SESSION_ID', replica_lag_in_msec "
    "FROM pg_catalog.aurora_replica_status() ORDER BY server_id",
    "mysql": "SELECT SERVER_ID, SESSION_ID = 'MASTER_SESSION_ID', REPLICA_LAG_IN_MILLISECONDS "
    "FROM information_schema.replica_host_status ORDER BY SERVER_ID",
}
WHOAMI_SQL = {
    "postgresql": "SELECT pg_catalog.aurora_db_instance_identifier(), pg_catalog.pg_is_in_recovery()",
    "mysql": "SELECT @@aurora_server_id, @@innodb_read_only",
}
ORDERS = {
    "postgresql": "CREATE TABLE orders(id serial PRIMARY KEY, note text)",
    "mysql": "CREATE TABLE orders(id int AUTO_INCREMENT PRIMARY KEY, note text)",
}
LOST = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, pymysql.err.MySQLError)


async def rows(sim: AuroraSimulator, sql: str) -> list[Any]:
    conn = await plain_connect(sim, timeout=5)
    try:
        if sim.engine == "mysql":
            async with conn.cursor() as cur:
                await cur.execute(sql)
                return list(await cur.fetchall())
        return list(await conn.fetch(sql))
    finally:
        terminate(conn)


async def print_topology(sim: AuroraSimulator) -> None:
    for server_id, is_writer, lag in await rows(sim, TOPOLOGY_SQL[sim.engine]):
        role = "writer" if is_writer else "reader"
        print(f"    {server_id:>4}  {role:<6}  lag {lag if lag is not None else '-'} ms")


async def whoami(sim: AuroraSimulator) -> str:
    [(instance_id, read_only)] = await rows(sim, WHOAMI_SQL[sim.engine])
    return f"instance {instance_id} ({'read-only replica' if read_only else 'writer'})"


async def execute(conn: Any, sql: str) -> None:
    if isinstance(conn, asyncpg.Connection):
        await conn.execute(sql, timeout=1)
    else:
        async with conn.cursor() as cur:
            await asyncio.wait_for(cur.execute(sql), 1)


async def plain_client(sim: AuroraSimulator, stop: asyncio.Event, outages: list[tuple[float, float]]) -> int:
    """What an application without a failover-aware driver does: insert, reconnect on any error."""
    written, down_since = 0, None
    while not stop.is_set():
        try:
            conn = await plain_connect(sim, timeout=1)
            try:
                while not stop.is_set():
                    await execute(conn, "INSERT INTO orders(note) VALUES ('demo')")
                    written += 1
                    if down_since is not None:
                        outages.append((down_since, time.monotonic()))
                        down_since = None
                    await asyncio.sleep(0.01)
            finally:
                terminate(conn)
        except LOST:
            if down_since is None:
                down_since = time.monotonic()
            await asyncio.sleep(0.05)
    return written


async def main(engine: str) -> None:
    driver = "aiomysql" if engine == "mysql" else "asyncpg"
    name = "MySQL" if engine == "mysql" else "PostgreSQL"
    print(f"Starting a simulated Aurora {name} cluster (3 instances, real servers)...")
    async with AuroraSimulator(engine=engine, instances=3, dns_delay=2.0) as sim:
        print(f"  {sim.timeline[0].detail}")
        print(f"  writer endpoint  {sim.cluster_endpoint}")
        print(f"  reader endpoint  {sim.reader_endpoint}")
        print(f"  host pattern     {sim.instance_host_pattern}")
        print("  topology (Aurora's catalog):")
        await print_topology(sim)

        setup = await plain_connect(sim, timeout=5)
        await execute(setup, ORDERS[engine])
        terminate(setup)

        stop, outages = asyncio.Event(), list[tuple[float, float]]()
        client = asyncio.create_task(plain_client(sim, stop, outages))
        await asyncio.sleep(0.5)

        print("\nFailing over (the writer's server is killed)...")
        report = await sim.failover()
        print(report.format())
        print(f"\n  writer endpoint right after the failover -> {await whoami(sim)}")
        print(f"  (stale DNS: it follows the new writer {sim.dns_delay:g} s after the promotion)")
        await sim.wait_dns_settled()
        print(f"  after the DNS delay                      -> {await whoami(sim)}")
        await asyncio.sleep(0.5)
        stop.set()
        written = await client

        print("\n  topology now:")
        await print_topology(sim)
        [(stored,)] = await rows(sim, "SELECT count(*) FROM orders")
        print(f"\n  plain {driver} client: {written} inserts acknowledged, {stored} rows on the new writer")
        for start, end in outages:
            print(f"  it could not write for {end - start:.2f} s (from +{(start - report.started_at):.2f} s)")
        print("  aurora_async is being built to cut that window down to the failover itself.")

        print("\nEverything the simulator did:")
        origin = sim.timeline[0].at
        for event in sim.timeline:
            print(f"  +{event.at - origin:7.3f} s  {event.step}{': ' + event.detail if event.detail else ''}")
    print("\nCluster stopped and removed.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=ENGINES, default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
