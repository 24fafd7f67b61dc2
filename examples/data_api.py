"""The RDS Data API: SQL over HTTPS from a worker that keeps no database connection.

    .venv/bin/python examples/data_api.py [--engine mysql]

(needs aioboto3: ``pip install 'aurora_async[aws]'``)

On AWS (Aurora Serverless v2 or provisioned, with the Data API enabled):

    async with aurora_async.data_api.connect(
        resource_arn="arn:aws:rds:us-east-1:123456789012:cluster:shop",
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:shop-db-AbCdEf",
        database="shop",
    ) as conn:
        ...

Here the local Data API emulator plays AWS, over the simulator's real PostgreSQL (or MySQL). The
example stores orders with typed values and a transaction, reads them back decoded, waits for a cluster
that is "resuming after auto-pause", and reads a result larger than one Data API response, paged (a
cursor on PostgreSQL; on MySQL, which has none, by key). As on AWS, MySQL's JSON comes back as text and
a UUID is stored as text.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import time
import uuid
from decimal import Decimal
from typing import Any, Literal

import aurora_async
from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, DataApiEmulator

ORDERS = {
    "postgresql": "CREATE TABLE orders (id uuid PRIMARY KEY, placed timestamptz, total numeric(10, 2), "
    "items jsonb, receipt bytea)",
    "mysql": "CREATE TABLE orders (id char(36) PRIMARY KEY, placed datetime(6), total decimal(10, 2), "
    "items json, receipt blob)",
}
BIG = {  # 5000 rows of 100 bytes and more: over one response's limit
    "postgresql": "SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 5000) g",
    "mysql": "SELECT seq AS g, repeat('x', 100) AS pad FROM seq_1_to_5000 WHERE seq > :last ORDER BY seq "
    "LIMIT 1000",
}


def order(n: int, engine: str) -> dict[str, Any]:
    mysql = engine == "mysql"
    return {
        "id": str(uuid.uuid4()) if mysql else uuid.uuid4(),
        "placed": dt.datetime(2026, 11, 23, 9, n, tzinfo=None if mysql else dt.UTC),
        "total": Decimal("19.90") * n,
        "items": [{"sku": f"sku-{n}", "qty": n}],
        "receipt": bytes([n]) * 4,
    }


async def large_result(conn: Any, engine: str) -> tuple[int, str]:
    if engine == "postgresql":
        return len(await conn.fetch(BIG[engine])), "paged with a cursor"
    rows: list[Any] = []
    while page := await conn.fetch(BIG[engine], {"last": rows[-1]["g"] if rows else 0}):
        rows += page
    return len(rows), "paged by key, 1000 at a time"


async def main(engine: Literal["postgresql", "mysql"]) -> None:
    os.environ.update(DUMMY_AWS_ENV)  # dummy credentials: nothing here talks to AWS
    async with (
        AuroraSimulator(engine=engine, instances=1) as sim,
        DataApiEmulator(sim, response_limit=200_000) as emulator,
        aurora_async.data_api.connect(
            resource_arn=emulator.resource_arn,
            secret_arn=emulator.secret_arn,
            endpoint_url=emulator.endpoint_url,  # leave out on AWS
            engine=engine,
        ) as conn,
    ):
        await conn.execute(ORDERS[engine])
        orders = [order(n, engine) for n in range(1, 4)]
        sql = "INSERT INTO orders VALUES (:id, :placed, :total, :items, :receipt)"
        async with conn.transaction():  # BeginTransaction ... CommitTransaction
            await conn.executemany(sql, orders)
        rows = await conn.fetch("SELECT * FROM orders WHERE total > :min ORDER BY placed", {"min": 20})
        for row in rows:
            when, total = row["placed"], row["total"]
            print(f"order {str(row['id'])[:8]} placed {when:%H:%M} total {total!r} items {row['items']}")
        stored = {row["id"]: dict(row) for row in rows}
        for values in stored.values():
            if isinstance(values["items"], str):  # MySQL's JSON, as text
                values["items"] = json.loads(values["items"])
        print("values came back with their types:", all(stored[o["id"]] == o for o in orders[1:]))

        emulator.pause(1.0)  # the cluster was auto-paused: DatabaseResumingException for a second
        started = time.monotonic()
        count = await conn.fetchval("SELECT count(*) FROM orders")
        print(f"paused cluster: {count} orders counted after {time.monotonic() - started:.1f} s of retries")

        size, how = await large_result(conn, engine)
        print(f"large result: {size} rows (over the response limit, so {how})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["postgresql", "mysql"], default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
