"""aiohttp on Aurora: the pool lives in a cleanup context, handlers retry a unit of work on failover.

    .venv/bin/python examples/aiohttp_app.py [--engine mysql]

``create_app(dsn, **options)`` builds the ``web.Application``; the DSN picks the engine (a
``postgresql://`` DSN gives asyncpg-style connections, a ``mysql://`` DSN aiomysql-style ones: ``run``
below is the only place that differs). Run as a script, it serves the app on loopback against a
simulated cluster and sends requests while the writer fails over.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

import aurora_async
from aurora_async import AuroraConnection, AuroraMySQLConnection, AuroraPool

SQL = {
    "postgresql": {
        "schema": "CREATE TABLE IF NOT EXISTS visits(key uuid PRIMARY KEY, page text NOT NULL)",
        "record": "INSERT INTO visits VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",  # idempotent by key
        "count": "SELECT count(*) FROM visits",
    },
    "mysql": {
        "schema": "CREATE TABLE IF NOT EXISTS visits(`key` char(36) PRIMARY KEY, page text NOT NULL)",
        "record": "INSERT INTO visits VALUES (%s, %s) ON DUPLICATE KEY UPDATE `key` = `key`",
        "count": "SELECT count(*) FROM visits",
    },
}
POOL: web.AppKey[AuroraPool[Any]] = web.AppKey("pool", AuroraPool)


async def run(conn: AuroraConnection | AuroraMySQLConnection, statement: str, *args: Any) -> Any:
    """Run one of ``SQL``'s statements in its own transaction; the first column of its first row."""
    if isinstance(conn, AuroraMySQLConnection):  # aiomysql's API: a cursor, commit (autocommit is off)
        async with conn.cursor() as cur:
            await cur.execute(SQL["mysql"][statement], args)
            row = await cur.fetchone()
        await conn.commit()
        return row[0] if row else None
    return await conn.fetchval(SQL["postgresql"][statement], *args)  # asyncpg's API: autocommits


def create_app(dsn: str, **options: Any) -> web.Application:
    """The application; ``options`` go to :func:`aurora_async.create_pool`."""

    async def pool_context(app: web.Application) -> AsyncIterator[None]:
        async with aurora_async.create_pool(dsn, min_size=2, max_size=10, **options) as pool:
            async with pool.acquire() as conn:
                await run(conn, "schema")
            app[POOL] = pool
            yield

    async def record_visit(request: web.Request) -> web.Response:
        key, page = str(uuid.uuid4()), request.match_info["page"]

        @aurora_async.retry_on_failover(attempts=3, deadline=30)
        async def record() -> str:
            async with request.app[POOL].acquire() as conn:
                await run(conn, "record", key, page)
                return str(conn.instance.instance_id)

        return web.json_response({"key": key, "writer": await record()})

    async def count(request: web.Request) -> web.Response:
        async with request.app[POOL].acquire() as conn:
            total = await aurora_async.retry_on_failover(run)(conn, "count")
        return web.json_response({"visits": total})

    async def healthz(request: web.Request) -> web.Response:
        """Readiness: what the library knows of the cluster, without a query (503 during a failover)."""
        health = aurora_async.health(request.app[POOL])
        return web.json_response(health.as_dict(), status=200 if health.healthy else 503)

    app = web.Application()
    app.cleanup_ctx.append(pool_context)
    app.router.add_post("/visits/{page}", record_visit)
    app.router.add_get("/visits/count", count)
    app.router.add_get("/healthz", healthz)
    return app


async def main(engine: str) -> None:
    from aiohttp.test_utils import TestClient, TestServer  # noqa: PLC0415 - a loopback server for the demo

    from aurora_async.testing import AuroraSimulator  # noqa: PLC0415

    async with AuroraSimulator(engine=engine, instances=3) as sim:
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgresql", "mysql"], default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
