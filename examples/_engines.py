"""What the examples do differently on the two engines: asyncpg's API or aiomysql's for a statement and
a close, and the plain driver's connect through the cluster endpoint (what the examples compare with)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiomysql
import asyncpg

from aurora_async import AuroraMySQLConnection
from aurora_async.testing import AuroraSimulator

ENGINES = ("postgresql", "mysql")


def is_mysql(conn: Any) -> bool:
    return isinstance(conn, AuroraMySQLConnection | aiomysql.Connection)


async def scalar(conn: Any, sql: str, *args: Any) -> Any:
    """The first column of the first row; ``sql`` in the engine's placeholder style ($1 or %s)."""
    if is_mysql(conn):
        async with conn.cursor() as cur:
            await cur.execute(sql, args or None)
            row = await cur.fetchone()
            return row[0] if row else None
    return await conn.fetchval(sql, *args)


async def row(conn: Any, sql: str) -> Any:
    if is_mysql(conn):
        async with conn.cursor() as cur:
            await cur.execute(sql)
            return await cur.fetchone()
    return await conn.fetchrow(sql)


async def close(conn: Any) -> None:
    """Close politely (aiomysql: ``ensure_closed()``; asyncpg: ``close()``)."""
    if is_mysql(conn):
        await conn.ensure_closed()
    else:
        await conn.close()


def terminate(conn: Any) -> None:
    """Close at once, without a goodbye to a server that may be silent."""
    if is_mysql(conn):
        conn.close()
    else:
        conn.terminate()


async def plain_connect(sim: AuroraSimulator, target: str = "cluster", timeout: float = 10) -> Any:
    """The plain driver (asyncpg or aiomysql), as the simulator's user, through ``target``."""
    if sim.engine == "mysql":
        dsn = urlsplit(sim.dsn(target))
        return await aiomysql.connect(
            host=dsn.hostname,
            port=dsn.port,
            user=dsn.username,
            db=dsn.path.lstrip("/"),
            autocommit=True,
            connect_timeout=timeout,
        )
    return await asyncpg.connect(sim.dsn(target), timeout=timeout)


def instance_sql(conn: Any) -> str:
    """Which instance the session is on, asked of the server (the simulator's instance ids are the
    MariaDB server ids)."""
    return "SELECT @@server_id" if is_mysql(conn) else "SELECT pg_catalog.aurora_db_instance_identifier()"


def database(sim: AuroraSimulator) -> str:
    return "app" if sim.engine == "mysql" else "postgres"


def current_user_sql(sim: AuroraSimulator) -> str:
    """The login user's name (MySQL's CURRENT_USER() says user@host: the name alone)."""
    return (
        "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)" if sim.engine == "mysql" else "SELECT current_user"
    )
