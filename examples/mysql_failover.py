"""Aurora MySQL through a failover, with the aiomysql API.

    .venv/bin/python examples/mysql_failover.py

Eight workers share nothing but the cluster: each has its own ``aurora_async.connect("mysql://...")``
connection and records orders, one transaction per order, with the aiomysql cursor API. Mid-run the
writer crashes. A worker whose statement was cut off gets ``FailoverSuccessError`` (its connection is
already on the new writer) or, inside a transaction, ``TransactionResolutionUnknownError``; then it calls
``rollback()`` to end the lost transaction (until then every call raises that error again). It then
checks whether the order was stored and re-runs the transaction only if it was not. At the end every
order is stored exactly once, on the new writer.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import aurora_async
from aurora_async import AuroraMySQLConnection, FailoverSuccessError, TransactionResolutionUnknownError

SCHEMA = "CREATE TABLE IF NOT EXISTS orders(id int PRIMARY KEY, worker int, attempts int)"


async def stored(conn: AuroraMySQLConnection, order: int) -> bool:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1 FROM orders WHERE id = %s", (order,))
        return await cur.fetchone() is not None


async def record(conn: AuroraMySQLConnection, order: int, worker: int, retries: Counter[str]) -> None:
    """Store ``order`` once, whatever failovers happen on the way."""
    attempt = 0
    while True:
        attempt += 1
        try:
            if attempt > 1 and await stored(conn, order):
                return  # the interrupted attempt had committed after all
            await conn.begin()
            async with conn.cursor() as cur:
                await cur.execute("INSERT INTO orders VALUES (%s, %s, %s)", (order, worker, attempt))
            await conn.commit()
            return
        except FailoverSuccessError as exc:
            retries[type(exc).__name__] += 1  # the connection is on the new writer: try again
        except TransactionResolutionUnknownError as exc:
            retries[type(exc).__name__] += 1
            # the transaction begin() opened is gone: end it (every call until then is refused, so
            # that no statement of the lost transaction runs on its own), then try again
            await conn.rollback()
        if attempt == 5:
            raise RuntimeError(f"order {order}: still failing after {attempt} attempts")


async def work(dsn: str, pattern: str, worker: int, orders: range, retries: Counter[str]) -> str:
    async with aurora_async.connect(dsn, engine="mysql", cluster_instance_host_pattern=pattern) as conn:
        for order in orders:
            await record(conn, order, worker, retries)
            await asyncio.sleep(0.01)
        return conn.instance.instance_id


async def main() -> None:
    from aurora_async.testing import AuroraSimulator  # noqa: PLC0415

    async with AuroraSimulator(engine="mysql", instances=3) as sim:
        dsn, pattern = sim.dsn("cluster"), sim.instance_host_pattern
        async with (
            aurora_async.connect(dsn, cluster_instance_host_pattern=pattern) as conn,
            conn.cursor() as cur,
        ):
            await cur.execute(SCHEMA)
        print(f"cluster: writer {sim.writer_id}, replicas {sim.reader_ids}, DSN {dsn}")
        retries: Counter[str] = Counter()
        workers = [
            asyncio.create_task(work(dsn, pattern, w, range(w * 100, w * 100 + 60), retries))
            for w in range(8)
        ]
        await asyncio.sleep(0.3)
        report = await sim.failover()
        print(f"failover: {report.old_writer} -> {report.new_writer}")
        finished_on = await asyncio.gather(*workers)
        async with (
            aurora_async.connect(dsn, cluster_instance_host_pattern=pattern) as conn,
            conn.cursor() as cur,
        ):
            await cur.execute("SELECT count(*), count(DISTINCT id) FROM orders")
            total, distinct = await cur.fetchone()
        print(f"480 orders sent, {total} stored ({distinct} distinct) on {set(finished_on)}")
        print(f"orders re-run after a failover error: {dict(retries) or 'none'}")


if __name__ == "__main__":
    asyncio.run(main())
