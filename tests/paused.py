"""Helpers for the Serverless v2 auto-pause tests (simulator and library): a plain driver connection
(asyncpg, or aiomysql) to one simulated instance within a deadline, and what it reached."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomysql
import asyncpg
import pymysql

from aurora_async.testing import AuroraSimulator
from tests.helpers import CONNECTION_LOST

# what a plain connection raises when its instance reset it (either driver)
LOST = (*CONNECTION_LOST, pymysql.err.OperationalError, pymysql.err.InterfaceError)

MYSQL_HOST_ID_SQL = "SELECT @@aurora_server_id"  # rewritten by the simulator's proxy for MariaDB
PG_HOST_ID_SQL = "SELECT pg_catalog.aurora_db_instance_identifier()"


async def plain_connect(sim: AuroraSimulator, target: str, timeout: float) -> Any:
    """A plain asyncpg (or aiomysql) connection to ``target`` within ``timeout`` seconds, as an
    application without aurora_async would open it. aiomysql's own ``connect_timeout`` covers only the
    TCP connect (not the server's greeting), so the deadline is an ``asyncio.timeout`` around it all."""
    if sim.engine == "postgresql":
        return await asyncpg.connect(sim.dsn(target), timeout=timeout)
    host, port = sim.endpoint(target).rsplit(":", 1)
    async with asyncio.timeout(timeout):
        return await aiomysql.connect(
            host=host, port=int(port), user="admin", db="app", connect_timeout=timeout
        )


async def plain_host_id(sim: AuroraSimulator, conn: Any) -> str:
    """The instance a plain connection reached, asked over that connection."""
    if sim.engine == "postgresql":
        return str(await conn.fetchval(PG_HOST_ID_SQL))
    async with conn.cursor() as cur:
        await cur.execute(MYSQL_HOST_ID_SQL)
        row = await cur.fetchone()
    return str(row[0])


async def plain_close(sim: AuroraSimulator, conn: Any) -> None:
    if sim.engine == "postgresql":
        await conn.close()
    else:
        conn.close()
