"""Behind an RDS Proxy: aurora_async reaches the cluster through the proxy only.

    .venv/bin/python examples/rds_proxy.py [--engine mysql]

A host named ``<name>.proxy-<id>.<region>.rds.amazonaws.com`` puts a connection in proxy mode by
itself; the simulator's proxy endpoint is an IP address, so this example says ``rds_proxy=True``.
Six workers record orders through the proxy while the writer crashes. The proxy moves an idle
connection to the new writer unnoticed (asyncpg with ``statement_cache_size=0``: named prepared
statements would pin the connection to its backend; aiomysql, with autocommit, prepares nothing); a
connection whose statement was cut off is closed by the proxy, and aurora_async reconnects it through
the proxy and raises ``FailoverSuccessError`` (or ``TransactionResolutionUnknownError`` in a
transaction), so the worker checks and retries. No connection, the library's own included, ever goes
around the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from typing import Any

from _engines import ENGINES, instance_sql, is_mysql, scalar

import aurora_async
from aurora_async import FailoverSuccessError, TransactionResolutionUnknownError

SCHEMA = "CREATE TABLE IF NOT EXISTS orders(id int PRIMARY KEY, worker int)"
INSERT = {
    "postgresql": "INSERT INTO orders VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
    "mysql": "INSERT INTO orders VALUES (%s, %s) ON DUPLICATE KEY UPDATE id = id",
}


def proxy_options(engine: str) -> dict[str, Any]:
    """Through the proxy only; asyncpg without named prepared statements (they pin a backend), aiomysql
    with autocommit (each insert its own transaction, as asyncpg's are)."""
    driver = {"autocommit": True} if engine == "mysql" else {"statement_cache_size": 0}
    return {"engine": engine, "rds_proxy": True, **driver}


async def record(conn: Any, order: int, worker: int, errors: Counter[str]) -> None:
    """Store ``order`` once, whatever happens to the writer behind the proxy."""
    while True:
        try:
            await scalar(conn, INSERT["mysql" if is_mysql(conn) else "postgresql"], order, worker)
            return
        except (FailoverSuccessError, TransactionResolutionUnknownError) as exc:
            errors[type(exc).__name__] += 1  # reconnected through the proxy: the insert is idempotent


async def work(dsn: str, engine: str, worker: int, orders: range, errors: Counter[str]) -> str:
    async with aurora_async.connect(dsn, **proxy_options(engine)) as conn:
        for order in orders:
            await record(conn, order, worker, errors)
            await asyncio.sleep(0.005)  # an application's own pace
        return str(await scalar(conn, instance_sql(conn)))


async def main(engine: str) -> None:
    from aurora_async.testing import AuroraSimulator  # noqa: PLC0415

    async with AuroraSimulator(engine=engine, instances=3, proxy=True) as sim:
        dsn = sim.dsn("proxy")
        async with aurora_async.connect(dsn, **proxy_options(engine)) as conn:
            await scalar(conn, SCHEMA)
        print(f"proxy {sim.proxy_endpoint} in front of writer {sim.writer_id}")
        errors: Counter[str] = Counter()
        workers = [
            asyncio.create_task(work(dsn, engine, w, range(w * 100, w * 100 + 60), errors)) for w in range(6)
        ]
        await asyncio.sleep(0.2)
        report = await sim.failover()
        print(f"failover: {report.old_writer} -> {report.new_writer}")
        finished_on = await asyncio.gather(*workers)
        async with aurora_async.connect(dsn, **proxy_options(engine)) as conn:
            stored = await scalar(conn, "SELECT count(*) FROM orders")
        status = await sim.proxy_status()
        proxy = status["rds_proxies"]["proxy"]
        direct = sum(listener["accepted"] for listener in status["listeners"].values()) - proxy["backends"]
        print(f"360 orders sent, {stored} stored, workers ended on {set(finished_on)}")
        print(f"errors the workers saw: {dict(errors) or 'none'}")
        print(f"proxy: {proxy['reattached']} idle connections moved, {proxy['dropped']} closed")
        print(f"connections that went around the proxy: {direct}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=ENGINES, default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
