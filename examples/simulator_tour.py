"""A tour of the local Aurora simulator (``make demo``).

Starts a three-instance Aurora PostgreSQL cluster of real servers, shows its endpoints and topology,
keeps a plain asyncpg client writing through the writer cluster endpoint, fails the cluster over and
prints the timeline of what the simulator did and what that client went through.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from aurora_async.testing import AuroraSimulator

TOPOLOGY_SQL = (
    "SELECT server_id, session_id = 'MASTER_SESSION_ID' AS is_writer, replica_lag_in_msec, "
    "last_update_timestamp FROM pg_catalog.aurora_replica_status() ORDER BY server_id"
)


async def print_topology(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        for row in await conn.fetch(TOPOLOGY_SQL):
            role = "writer" if row["is_writer"] else "reader"
            lag = row["replica_lag_in_msec"]
            print(f"    {row['server_id']:>4}  {role:<6}  lag {lag if lag is not None else '-'} ms")
    finally:
        await conn.close()


async def whoami(dsn: str) -> str:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        row = await conn.fetchrow(
            "SELECT pg_catalog.aurora_db_instance_identifier() AS id, pg_catalog.pg_is_in_recovery() AS ro"
        )
        assert row is not None
        return f"instance {row['id']} ({'read-only replica' if row['ro'] else 'writer'})"
    finally:
        await conn.close()


async def plain_client(dsn: str, stop: asyncio.Event, outages: list[tuple[float, float]]) -> int:
    """What an application without a failover-aware driver does: insert, reconnect on any error."""
    written, down_since = 0, None
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn, timeout=1)
            try:
                while not stop.is_set():
                    await conn.execute("INSERT INTO orders(note) VALUES ('demo')", timeout=1)
                    written += 1
                    if down_since is not None:
                        outages.append((down_since, time.monotonic()))
                        down_since = None
                    await asyncio.sleep(0.01)
            finally:
                conn.terminate()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            if down_since is None:
                down_since = time.monotonic()
            await asyncio.sleep(0.05)
    return written


async def main() -> None:
    print("Starting a simulated Aurora PostgreSQL cluster (3 instances, real servers)...")
    async with AuroraSimulator(instances=3, dns_delay=2.0) as sim:
        print(f"  {sim.timeline[0].detail}")
        print(f"  writer endpoint  {sim.cluster_endpoint}")
        print(f"  reader endpoint  {sim.reader_endpoint}")
        print(f"  host pattern     {sim.instance_host_pattern}")
        print("  topology (pg_catalog.aurora_replica_status()):")
        await print_topology(sim.dsn("cluster"))

        setup = await asyncpg.connect(sim.dsn("cluster"), timeout=5)
        await setup.execute("CREATE TABLE orders(id serial PRIMARY KEY, note text)")
        await setup.close()

        stop, outages = asyncio.Event(), list[tuple[float, float]]()
        client = asyncio.create_task(plain_client(sim.dsn("cluster"), stop, outages))
        await asyncio.sleep(0.5)

        print("\nFailing over (the writer's server is killed)...")
        report = await sim.failover()
        print(report.format())
        print(f"\n  writer endpoint right after the failover -> {await whoami(sim.dsn('cluster'))}")
        print(f"  (stale DNS: it follows the new writer {sim.dns_delay:g} s after the promotion)")
        await sim.wait_dns_settled()
        print(f"  after the DNS delay                      -> {await whoami(sim.dsn('cluster'))}")
        await asyncio.sleep(0.5)
        stop.set()
        written = await client

        print("\n  topology now:")
        await print_topology(sim.dsn("cluster"))
        check = await asyncpg.connect(sim.dsn("cluster"), timeout=5)
        stored = await check.fetchval("SELECT count(*) FROM orders")
        await check.close()
        print(f"\n  plain asyncpg client: {written} inserts acknowledged, {stored} rows on the new writer")
        for start, end in outages:
            print(f"  it could not write for {end - start:.2f} s (from +{(start - report.started_at):.2f} s)")
        print("  aurora_async is being built to cut that window down to the failover itself.")

        print("\nEverything the simulator did:")
        origin = sim.timeline[0].at
        for event in sim.timeline:
            print(f"  +{event.at - origin:7.3f} s  {event.step}{': ' + event.detail if event.detail else ''}")
    print("\nCluster stopped and removed.")


if __name__ == "__main__":
    asyncio.run(main())
