"""A plain driver connection (asyncpg or aiomysql) behind one small interface, for tests that observe
the simulator on both engines without the library."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiomysql
import asyncpg


class Plain:
    """A plain driver connection (asyncpg or aiomysql, autocommit) behind one small interface."""

    def __init__(self, engine: str, conn: Any) -> None:
        self.engine, self.conn = engine, conn

    @classmethod
    async def open(cls, engine: str, dsn: str, *, user: str | None = None, password: str = "") -> Plain:
        if engine == "postgresql":
            kwargs: dict[str, Any] = {"timeout": 5}
            if user is not None:
                kwargs.update(user=user, password=password)
            return cls(engine, await asyncpg.connect(dsn, **kwargs))
        parts = urlsplit(dsn)
        conn = await aiomysql.connect(
            host=parts.hostname,
            port=parts.port,
            user=user or parts.username,
            password=password if user is not None else (parts.password or ""),
            db=parts.path.lstrip("/"),
            autocommit=True,
            connect_timeout=5,
        )
        return cls(engine, conn)

    def sql(self, text: str) -> str:
        return text if self.engine == "postgresql" else text.replace("$1", "%s").replace("$2", "%s")

    async def execute(self, text: str, *args: Any) -> None:
        if self.engine == "postgresql":
            await self.conn.execute(text, *args, timeout=5)
            return
        async with self.conn.cursor() as cur:
            await asyncio.wait_for(cur.execute(self.sql(text), args or None), 5)

    async def rows(self, text: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.engine == "postgresql":
            return [tuple(r) for r in await self.conn.fetch(text, *args, timeout=5)]
        async with self.conn.cursor() as cur:
            await asyncio.wait_for(cur.execute(self.sql(text), args or None), 5)
            return [tuple(r) for r in await cur.fetchall()]

    async def value(self, text: str, *args: Any) -> Any:
        rows = await self.rows(text, *args)
        return rows[0][0] if rows else None

    async def close(self) -> None:
        if self.engine == "postgresql":
            await self.conn.close()
        else:
            self.conn.close()
