"""FastAPI on Aurora: a pool in the lifespan, a connection per request, answers across a failover.

    .venv/bin/python examples/fastapi_app.py [--engine mysql]

``create_app(dsn, **options)`` is the whole integration: the lifespan opens an ``aurora_async`` pool, a
dependency lends each request a connection, and the endpoint's unit of work is wrapped in
``retry_on_failover`` (idempotent: an order carries its own key). The DSN picks the engine: a
``postgresql://`` one gives asyncpg-style connections, a ``mysql://`` one aiomysql-style connections
(``place_order`` and ``count_orders`` show both). Run as a script, it starts a simulated cluster and
sends requests through httpx's ASGI transport while the writer fails over; in production serve
``create_app(...)`` with uvicorn or any ASGI server.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

import aurora_async
from aurora_async import AuroraConnection, AuroraMySQLConnection

SCHEMA = {
    "postgresql": "CREATE TABLE IF NOT EXISTS orders(key uuid PRIMARY KEY, item text NOT NULL)",
    "mysql": "CREATE TABLE IF NOT EXISTS orders(`key` char(36) PRIMARY KEY, item text NOT NULL)",
}


async def place_order(conn: AuroraConnection | AuroraMySQLConnection, key: uuid.UUID, item: str) -> None:
    """One transaction; a re-run after a failover changes nothing (the key is the primary key)."""
    if isinstance(conn, AuroraMySQLConnection):  # aiomysql's API
        await conn.begin()
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO orders VALUES (%s, %s) ON DUPLICATE KEY UPDATE `key` = `key`", (str(key), item)
            )
        await conn.commit()
    else:  # asyncpg's API
        async with conn.transaction():
            await conn.execute("INSERT INTO orders VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, item)


async def count_orders(conn: AuroraConnection | AuroraMySQLConnection) -> int:
    if isinstance(conn, AuroraMySQLConnection):
        async with conn.cursor() as cur:
            await cur.execute("SELECT count(*) FROM orders")
            (total,) = await cur.fetchone()
        await conn.commit()  # autocommit is off (aiomysql's default): end the read's transaction
        return int(total)
    return int(await conn.fetchval("SELECT count(*) FROM orders"))


async def connection(request: Request) -> AsyncIterator[AuroraConnection | AuroraMySQLConnection]:
    """A dependency: a pooled connection for the duration of the request."""
    async with request.app.state.pool.acquire() as conn:
        yield conn


Connection = Annotated[AuroraConnection | AuroraMySQLConnection, Depends(connection)]


def create_app(dsn: str, **options: Any) -> FastAPI:
    """The application; ``options`` go to :func:`aurora_async.create_pool`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with aurora_async.create_pool(dsn, min_size=2, max_size=10, **options) as pool:
            async with pool.acquire() as conn:
                if isinstance(conn, AuroraMySQLConnection):
                    async with conn.cursor() as cur:
                        await cur.execute(SCHEMA["mysql"])
                else:
                    await conn.execute(SCHEMA["postgresql"])
            app.state.pool = pool
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/orders")
    async def create_order(item: str, conn: Connection) -> dict[str, str]:
        key = uuid.uuid4()  # the client's idempotency key would do as well

        @aurora_async.retry_on_failover(attempts=3, deadline=30)
        async def place() -> str:
            await place_order(conn, key, item)
            return str(conn.instance.instance_id)

        return {"key": str(key), "writer": await place()}

    @app.get("/orders/count")
    async def count(conn: Connection) -> dict[str, int]:
        return {"orders": await aurora_async.retry_on_failover(count_orders)(conn)}

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        """Readiness: what the library knows of the cluster, without a query (503 during a failover)."""
        health = aurora_async.health(request.app.state.pool)
        return JSONResponse(health.as_dict(), status_code=200 if health.healthy else 503)

    return app


async def main(engine: str) -> None:
    import httpx  # noqa: PLC0415 - only the demo needs a client

    from aurora_async.testing import AuroraSimulator  # noqa: PLC0415

    async with AuroraSimulator(engine=engine, instances=3) as sim:
        app = create_app(sim.dsn("cluster"), cluster_instance_host_pattern=sim.instance_host_pattern)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                statuses: list[int] = []
                writers: list[str] = []

                async def customer(n: int) -> None:
                    for _ in range(n):
                        response = await client.post("/orders", params={"item": "book"})
                        statuses.append(response.status_code)
                        if response.status_code == 200:
                            writers.append(response.json()["writer"])

                shoppers = asyncio.gather(*(customer(25) for _ in range(8)))
                await asyncio.sleep(0.3)
                report = await sim.failover()
                await shoppers
                total = (await client.get("/orders/count")).json()["orders"]
        print(f"{len(statuses)} requests: {statuses.count(200)} answered 200, others {set(statuses) - {200}}")
        print(f"orders written on {sorted(set(writers))}; the writer failed over to {report.new_writer}")
        print(f"{total} orders stored")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgresql", "mysql"], default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
