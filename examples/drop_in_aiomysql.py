"""Code written for aiomysql, ported by changing its connect call only.

    .venv/bin/python examples/drop_in_aiomysql.py

``save()`` and ``count()`` below are plain aiomysql code: a transaction with ``begin()`` / ``commit()``
and a retry on pymysql's ``OperationalError`` 2013 ("Lost connection to MySQL server during query",
what aiomysql raises when the connection under a call is lost), and a ``DictCursor`` made once and kept.
Only ``open_connection()`` changed, from ``aiomysql.connect(...)`` to ``aurora_async.connect(dsn, ...)``.
Through a failover the retry catches aurora_async's ``FailoverSuccessError`` (it is also that
``OperationalError``, code 2013), the connection is already on the new writer, and the cursor made
before the failover keeps working on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomysql
import pymysql

import aurora_async

LOST_CONNECTION = 2013  # CR_SERVER_LOST


async def open_connection(dsn: str, pattern: str) -> Any:
    # was: return await aiomysql.connect(host=..., port=..., user=..., db=...)
    return await aurora_async.connect(dsn, cluster_instance_host_pattern=pattern)


async def save(conn: Any, key: int) -> int:
    """Store ``key`` once; on a lost connection, try again (unchanged aiomysql code)."""
    attempts = 0
    while True:
        attempts += 1
        try:
            await conn.begin()
            async with conn.cursor() as cur:
                await cur.execute("INSERT INTO saved VALUES (%s) ON DUPLICATE KEY UPDATE k = k", (key,))
            await conn.commit()
            return attempts
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != LOST_CONNECTION:
                raise
            continue  # aiomysql code would reconnect here; through aurora_async it already has


async def count(cur: Any) -> int:
    await cur.execute("SELECT count(*) AS n, @@server_id AS server FROM saved")
    row = await cur.fetchone()
    return int(row["n"])


async def main() -> None:
    from aurora_async.testing import AuroraSimulator  # noqa: PLC0415

    async with AuroraSimulator(engine="mysql", instances=2) as sim:
        conn = await open_connection(sim.dsn("cluster"), sim.instance_host_pattern)
        try:
            async with conn.cursor() as cur:
                await cur.execute("CREATE TABLE saved(k int PRIMARY KEY)")
            kept = await conn.cursor(aiomysql.DictCursor)  # made once, used across the failover
            await save(conn, 1)
            print(f"before: {await count(kept)} row(s)")
            report = await sim.failover()
            print(f"failover: {report.old_writer} -> {report.new_writer}")
            attempts = await save(conn, 2)
            print(f"save(2) took {attempts} attempts; the connection is on {conn.instance.instance_id}")
            await kept.execute("SELECT @@server_id AS server")
            print(f"the cursor made before the failover reads from {(await kept.fetchone())['server']}")
            print(f"rows: {await count(kept)}")
            await kept.close()
        finally:
            await conn.ensure_closed()


if __name__ == "__main__":
    asyncio.run(main())
