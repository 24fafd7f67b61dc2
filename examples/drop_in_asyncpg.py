"""Code written for asyncpg, ported by changing its connect call only.

    .venv/bin/python examples/drop_in_asyncpg.py

``save()`` and ``listen()`` below are plain asyncpg code: a retry on ``asyncpg.PostgresConnectionError``
(what asyncpg raises when the connection under a call is lost), a ``LISTEN`` callback that uses the
connection it is given, a transaction block. Only ``open_connection()`` changed, from
``asyncpg.connect(dsn)`` to ``aurora_async.connect(dsn, ...)``. Through a failover the retry catches
aurora_async's ``FailoverSuccessError`` (it is also asyncpg's ``ConnectionDoesNotExistError``), the
connection is already on the new writer, and the listener keeps receiving notifications there.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

import aurora_async


async def open_connection(dsn: str, pattern: str) -> Any:
    # was: return await asyncpg.connect(dsn)
    return await aurora_async.connect(dsn, cluster_instance_host_pattern=pattern)


async def save(conn: Any, key: int) -> int:
    """Store ``key`` once; on a lost connection, try again (unchanged asyncpg code)."""
    attempts = 0
    while True:
        attempts += 1
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO saved VALUES ($1) ON CONFLICT DO NOTHING", key)
            return attempts
        except asyncpg.PostgresConnectionError:
            continue  # asyncpg code would reconnect here; through aurora_async it already has


async def listen(conn: Any, heard: asyncio.Queue[str]) -> None:
    def on_notify(connection: Any, pid: int, channel: str, payload: str) -> None:
        assert connection is conn  # the connection the listener was added on
        heard.put_nowait(payload)

    await conn.add_listener("saved", on_notify)


async def main() -> None:
    from aurora_async.testing import AuroraSimulator  # noqa: PLC0415

    async with AuroraSimulator(instances=2) as sim:
        conn = await open_connection(sim.dsn("cluster"), sim.instance_host_pattern)
        try:
            await conn.execute("CREATE TABLE saved(key int PRIMARY KEY)")
            heard: asyncio.Queue[str] = asyncio.Queue()
            await listen(conn, heard)
            await save(conn, 1)
            report = await sim.failover()
            print(f"failover: {report.old_writer} -> {report.new_writer}")
            attempts = await save(conn, 2)
            print(f"save(2) took {attempts} attempts; the connection is on {conn.instance.instance_id}")
            notifier = await asyncpg.connect(sim.dsn(sim.writer_id))
            try:
                await notifier.execute("NOTIFY saved, 'after the failover'")
            finally:
                await notifier.close()
            print(f"listener heard: {await asyncio.wait_for(heard.get(), 10)!r}")
            print(f"rows: {await conn.fetchval('SELECT count(*) FROM saved')}")
        finally:
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
