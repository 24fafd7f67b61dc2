"""The RDS Data API: SQL over HTTPS from a worker that keeps no database connection.

    .venv/bin/python examples/data_api.py

(needs aioboto3: ``pip install 'aurora_async[aws]'``)

On AWS (Aurora Serverless v2 or provisioned, with the Data API enabled):

    async with aurora_async.data_api.connect(
        resource_arn="arn:aws:rds:us-east-1:123456789012:cluster:shop",
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:shop-db-AbCdEf",
        database="shop",
    ) as conn:
        ...

Here the local Data API emulator plays AWS, over the simulator's real PostgreSQL. The example stores
orders with typed values and a transaction, reads them back decoded, waits for a cluster that is
"resuming after auto-pause", and reads a result larger than one Data API response, paged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import uuid
from decimal import Decimal

import aurora_async
from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, DataApiEmulator


async def main() -> None:
    os.environ.update(DUMMY_AWS_ENV)  # dummy credentials: nothing here talks to AWS
    async with (
        AuroraSimulator(instances=1) as sim,
        DataApiEmulator(sim, response_limit=200_000) as emulator,
        aurora_async.data_api.connect(
            resource_arn=emulator.resource_arn,
            secret_arn=emulator.secret_arn,
            endpoint_url=emulator.endpoint_url,  # leave out on AWS
            engine="postgresql",
        ) as conn,
    ):
        await conn.execute(
            "CREATE TABLE orders (id uuid PRIMARY KEY, placed timestamptz, total numeric(10, 2), "
            "items jsonb, receipt bytea)"
        )
        orders = [
            {
                "id": uuid.uuid4(),
                "placed": dt.datetime(2026, 11, 23, 9, n, tzinfo=dt.UTC),
                "total": Decimal("19.90") * n,
                "items": [{"sku": f"sku-{n}", "qty": n}],
                "receipt": bytes([n]) * 4,
            }
            for n in range(1, 4)
        ]
        sql = "INSERT INTO orders VALUES (:id, :placed, :total, :items, :receipt)"
        async with conn.transaction():  # BeginTransaction ... CommitTransaction
            await conn.executemany(sql, orders)
        rows = await conn.fetch("SELECT * FROM orders WHERE total > :min ORDER BY placed", {"min": 20})
        for row in rows:
            when, total = row["placed"], row["total"]
            print(f"order {str(row['id'])[:8]} placed {when:%H:%M} total {total!r} items {row['items']}")
        stored = {row["id"]: dict(row) for row in rows}
        print("values came back with their types:", all(stored[o["id"]] == o for o in orders[1:]))

        emulator.pause(1.0)  # the cluster was auto-paused: DatabaseResumingException for a second
        started = time.monotonic()
        count = await conn.fetchval("SELECT count(*) FROM orders")
        print(f"paused cluster: {count} orders counted after {time.monotonic() - started:.1f} s of retries")

        big = await conn.fetch("SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 5000) g")
        print(f"large result: {len(big)} rows (over the response limit, so paged with a cursor)")


if __name__ == "__main__":
    asyncio.run(main())
