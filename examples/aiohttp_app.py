"""aiohttp on Aurora: the pool lives in a cleanup context, handlers retry a unit of work on failover.

    .venv/bin/python examples/aiohttp_app.py

``create_app(dsn, **options)`` builds the ``web.Application``; run as a script, it serves it on
loopback against a simulated cluster and sends requests while the writer fails over.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

import aurora_async
from aurora_async import AuroraConnection, AuroraPool

SCHEMA = "CREATE TABLE IF NOT EXISTS visits(key uuid PRIMARY KEY, page text NOT NULL)"
INSERT = "INSERT INTO visits VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"  # idempotent by key
POOL: web.AppKey[AuroraPool[AuroraConnection]] = web.AppKey("pool", AuroraPool)


def create_app(dsn: str, **options: Any) -> web.Application:
    """The application; ``options`` go to :func:`aurora_async.create_pool`."""

    async def pool_context(app: web.Application) -> AsyncIterator[None]:
        async with aurora_async.create_pool(dsn, min_size=2, max_size=10, **options) as pool:
            async with pool.acquire() as conn:
                await conn.execute(SCHEMA)
            app[POOL] = pool
            yield

    async def record_visit(request: web.Request) -> web.Response:
        key, page = uuid.uuid4(), request.match_info["page"]

        @aurora_async.retry_on_failover(attempts=3, deadline=30)
        async def record() -> str:
            async with request.app[POOL].acquire() as conn:
                await conn.execute(
                    "INSERT INTO visits VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, page
                )
                return str(conn.instance.instance_id)

        return web.json_response({"key": str(key), "writer": await record()})

    async def count(request: web.Request) -> web.Response:
        async with request.app[POOL].acquire() as conn:
            total = await aurora_async.retry_on_failover(conn.fetchval)("SELECT count(*) FROM visits")
        return web.json_response({"visits": total})

    app = web.Application()
    app.cleanup_ctx.append(pool_context)
    app.router.add_post("/visits/{page}", record_visit)
    app.router.add_get("/visits/count", count)
    return app


async def main() -> None:
    from aiohttp.test_utils import TestClient, TestServer  # noqa: PLC0415 - a loopback server for the demo

    from aurora_async.testing import AuroraSimulator  # noqa: PLC0415

    async with AuroraSimulator(instances=3) as sim:
        app = create_app(sim.dsn("cluster"), cluster_instance_host_pattern=sim.instance_host_pattern)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            statuses: list[int] = []

            async def visitor(n: int) -> None:
                for _ in range(n):
                    response = await client.post("/visits/home")
                    statuses.append(response.status)

            visitors = asyncio.gather(*(visitor(25) for _ in range(8)))
            await asyncio.sleep(0.3)
            report = await sim.failover()
            await visitors
            total = (await (await client.get("/visits/count")).json())["visits"]
        answered = statuses.count(200)
        print(f"{len(statuses)} requests: {answered} answered 200; failed over to {report.new_writer}")
        print(f"{total} visits stored")


if __name__ == "__main__":
    asyncio.run(main())
