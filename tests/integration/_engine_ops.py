"""What differs between PostgreSQL (asyncpg API) and MySQL (aiomysql API) in the engine-parametrized
failover suite (``test_failover.py``): how a statement runs, a scalar is read and a transaction is
written on an aurora_async connection, which SQL sleeps, tells a replica from the writer or names the
backend, which driver errors mean "connection lost" or "read-only", how a connection is closed, and how
an instance is inspected from outside (a plain driver connection, no aurora_async).

The same split as ``tests/stateful/engines.py`` (one class per engine behind one interface), reduced to
what the failover tests need.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import aiomysql
import asyncpg
import pymysql

from aurora_async import AuroraConnection, AuroraMySQLConnection
from aurora_async.testing import AuroraSimulator
from tests.helpers import AURORA_HOST_ID_SQL, IS_READER_SQL, fetchval

Conn = AuroraConnection | AuroraMySQLConnection

MYSQL_READ_ONLY = 1290  # ER_OPTION_PREVENTS_STATEMENT: "--read-only option", what a replica answers a write


class Tx(Protocol):
    """A transaction begun by hand: ended by ``commit()`` or ``rollback()``."""

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class Statements(Protocol):
    """One statement handle made once and used across a failover (asyncpg: the connection itself;
    aiomysql: one cursor, which must keep working on the new physical connection)."""

    async def execute(self, sql: str) -> None: ...

    async def scalar(self, sql: str) -> Any: ...


def _bool(value: Any) -> bool:
    assert value in (True, False), f"not a boolean answer: {value!r}"  # (1 == True, 0 == False)
    return bool(value)


class EngineOps(ABC):
    engine: str
    #: the physical connection class that ``connect_raw`` returns
    raw_class: type[Any]
    #: the dialect code per topology mode
    dialects: dict[str, str]
    #: what the cause of a TransactionResolutionUnknownError is when the server vanished mid transaction
    lost_connection_errors: tuple[type[BaseException], ...]
    #: what an application's connect raises when it timed out (as the driver's own connect would)
    connect_timed_out: type[BaseException]
    #: the backend's instance id, as the first column (PostgreSQL: a string; MySQL: an int)
    host_id_sql: str
    #: true on a replica, false on the writer
    is_reader_sql: str
    #: how many connections the "one writer search" test opens
    many: int
    #: the server's id for the session asking (PostgreSQL's backend PID, MySQL's connection id)
    session_id_sql: str
    #: how many sessions the server lists with id ``{id}`` (0 or 1)
    session_listed_sql: str

    def __init__(self, sim: AuroraSimulator) -> None:
        self.sim = sim

    def options(self, **extra: Any) -> dict[str, Any]:
        return {
            "cluster_instance_host_pattern": self.sim.instance_host_pattern,
            "failover_timeout": 20,
            **extra,
        }

    # -- on an aurora_async connection ---------------------------------------------------------------

    @abstractmethod
    async def scalar(self, conn: Conn, sql: str) -> Any:
        """The first column of the first row (None without a row); MySQL: on a cursor of its own."""

    @abstractmethod
    async def execute(self, conn: Conn, sql: str) -> None:
        """Run a statement, inside the current transaction if one is open (no commit)."""

    @abstractmethod
    async def write(self, conn: Conn, sql: str) -> None:
        """Run a statement and commit it (asyncpg autocommits; aiomysql commits after it)."""

    @abstractmethod
    async def insert_many(self, conn: Conn, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """``executemany`` an INSERT of ``rows`` into ``table``, in the driver's placeholder style."""

    @abstractmethod
    async def statements(self, conn: Conn) -> Statements: ...

    @abstractmethod
    async def begin(self, conn: Conn) -> Tx:
        """Begin a transaction by hand (asyncpg: ``transaction().start()``; aiomysql: ``begin()``)."""

    @abstractmethod
    def transaction(self, conn: Conn) -> AbstractAsyncContextManager[Any]:
        """A transaction block: committed when the block ends, rolled back when it raises (asyncpg's own
        ``conn.transaction()``; for aiomysql ``begin()`` / ``commit()`` / ``rollback()`` around it)."""

    async def is_reader(self, conn: Conn) -> bool:
        return _bool(await self.scalar(conn, self.is_reader_sql))

    async def host_id(self, conn: Conn) -> str:
        return str(await self.scalar(conn, self.host_id_sql))

    @abstractmethod
    async def close(self, conn: Conn) -> None:
        """The engine's polite close (asyncpg: ``close()``; aiomysql: ``ensure_closed()``)."""

    @abstractmethod
    def is_read_only_refusal(self, exc: BaseException | None) -> bool:
        """The driver's error for a write sent to a read-only instance."""

    @abstractmethod
    def slow_sql(self, seconds: int) -> str: ...

    # -- a raw connection (connect_raw) --------------------------------------------------------------

    @abstractmethod
    async def raw_scalar(self, raw: Any, sql: str) -> Any: ...

    @abstractmethod
    async def close_raw(self, raw: Any) -> None: ...

    async def raw_is_reader(self, raw: Any) -> bool:
        return _bool(await self.raw_scalar(raw, self.is_reader_sql))

    # -- from outside: a plain driver connection through the instance's (or an endpoint's) proxy ------

    @abstractmethod
    async def outside(self, target: str, sql: str) -> Any:
        """One value read at ``target`` (``"cluster"``, ``"reader"`` or an instance id)."""

    @abstractmethod
    async def outside_rows(self, target: str, sql: str) -> list[tuple[Any, ...]]:
        """Every row read at ``target`` (an instance id, ``"cluster"`` or ``"reader"``)."""

    async def outside_is_reader(self, target: str) -> bool:
        return _bool(await self.outside(target, self.is_reader_sql))

    @abstractmethod
    async def running(self, instance: str, sql: str) -> int:
        """How many sessions on ``instance`` are running ``sql``."""

    @abstractmethod
    async def client_sessions(self, instance: str) -> int:
        """The client sessions on ``instance`` (the one asking included)."""


# -- PostgreSQL -----------------------------------------------------------------------------------------


def _pg(conn: Conn) -> AuroraConnection:
    assert isinstance(conn, AuroraConnection), conn
    return conn


class _PgStatements:
    def __init__(self, conn: AuroraConnection) -> None:
        self.conn = conn

    async def execute(self, sql: str) -> None:
        await self.conn.execute(sql)

    async def scalar(self, sql: str) -> Any:
        return await self.conn.fetchval(sql)


class PgOps(EngineOps):
    engine = "postgresql"
    raw_class = asyncpg.Connection
    dialects = {"aurora": "aurora-pg", "multi-az": "multi-az-pg"}
    lost_connection_errors = (asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError)
    connect_timed_out = TimeoutError
    host_id_sql = AURORA_HOST_ID_SQL
    is_reader_sql = IS_READER_SQL
    many = 200
    session_id_sql = "SELECT pg_backend_pid()"
    session_listed_sql = "SELECT count(*) FROM pg_stat_activity WHERE pid = {id}"

    async def scalar(self, conn: Conn, sql: str) -> Any:
        return await _pg(conn).fetchval(sql)

    async def execute(self, conn: Conn, sql: str) -> None:
        await _pg(conn).execute(sql)

    async def write(self, conn: Conn, sql: str) -> None:
        await _pg(conn).execute(sql)

    async def insert_many(self, conn: Conn, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        marks = ", ".join(f"${i + 1}" for i in range(len(rows[0])))
        await _pg(conn).executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    async def statements(self, conn: Conn) -> Statements:
        return _PgStatements(_pg(conn))

    async def begin(self, conn: Conn) -> Tx:
        tx = _pg(conn).transaction()
        await tx.start()
        return tx

    def transaction(self, conn: Conn) -> AbstractAsyncContextManager[Any]:
        return _pg(conn).transaction()

    async def close(self, conn: Conn) -> None:
        await _pg(conn).close()

    def is_read_only_refusal(self, exc: BaseException | None) -> bool:
        return isinstance(exc, asyncpg.ReadOnlySQLTransactionError)

    def slow_sql(self, seconds: int) -> str:
        return f"SELECT pg_sleep({seconds})"

    async def raw_scalar(self, raw: Any, sql: str) -> Any:
        assert isinstance(raw, asyncpg.Connection)
        return await raw.fetchval(sql)

    async def close_raw(self, raw: Any) -> None:
        assert isinstance(raw, asyncpg.Connection)
        await raw.close()

    async def outside(self, target: str, sql: str) -> Any:
        return await fetchval(self.sim.dsn(target), sql)

    async def outside_rows(self, target: str, sql: str) -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(self.sim.dsn(target), timeout=5)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def running(self, instance: str, sql: str) -> int:
        count = await self.outside(instance, f"SELECT count(*) FROM pg_stat_activity WHERE query = '{sql}'")
        return int(count)

    async def client_sessions(self, instance: str) -> int:
        count = await self.outside(
            instance, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        )
        return int(count)


# -- MySQL ----------------------------------------------------------------------------------------------


def _my(conn: Conn) -> AuroraMySQLConnection:
    assert isinstance(conn, AuroraMySQLConnection), conn
    return conn


class _MyStatements:
    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    async def execute(self, sql: str) -> None:
        await self.cursor.execute(sql)

    async def scalar(self, sql: str) -> Any:
        await self.cursor.execute(sql)
        row = await self.cursor.fetchone()
        return row[0] if row else None


class _MyTx:
    def __init__(self, conn: AuroraMySQLConnection) -> None:
        self.conn = conn

    async def commit(self) -> None:
        await self.conn.commit()

    async def rollback(self) -> None:
        await self.conn.rollback()


class MyOps(EngineOps):
    engine = "mysql"
    raw_class = aiomysql.Connection
    dialects = {"aurora": "aurora-mysql", "multi-az": "multi-az-mysql"}
    lost_connection_errors = (pymysql.err.Error,)
    connect_timed_out = pymysql.err.OperationalError  # 2003, "Can't connect to MySQL server on ..."
    host_id_sql = "SELECT @@server_id"
    is_reader_sql = "SELECT @@read_only"
    many = 50
    session_id_sql = "SELECT CONNECTION_ID()"
    session_listed_sql = "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = {id}"

    async def scalar(self, conn: Conn, sql: str) -> Any:
        async with _my(conn).cursor() as cur:
            await cur.execute(sql)
            row = await cur.fetchone()
            return row[0] if row else None

    async def execute(self, conn: Conn, sql: str) -> None:
        async with _my(conn).cursor() as cur:
            await cur.execute(sql)

    async def write(self, conn: Conn, sql: str) -> None:
        await self.execute(conn, sql)
        await _my(conn).commit()

    async def insert_many(self, conn: Conn, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        marks = ", ".join(["%s"] * len(rows[0]))
        async with _my(conn).cursor() as cur:
            await cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    async def statements(self, conn: Conn) -> Statements:
        return _MyStatements(await _my(conn).cursor())

    async def begin(self, conn: Conn) -> Tx:
        await _my(conn).begin()
        return _MyTx(_my(conn))

    def transaction(self, conn: Conn) -> AbstractAsyncContextManager[Any]:
        return self._block(_my(conn))

    @asynccontextmanager
    async def _block(self, conn: AuroraMySQLConnection) -> AsyncIterator[None]:
        await conn.begin()
        try:
            yield
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()

    async def close(self, conn: Conn) -> None:
        await _my(conn).ensure_closed()

    def is_read_only_refusal(self, exc: BaseException | None) -> bool:
        return (
            isinstance(exc, pymysql.err.OperationalError)
            and bool(exc.args)
            and exc.args[0] == MYSQL_READ_ONLY
        )

    def slow_sql(self, seconds: int) -> str:
        return f"SELECT SLEEP({seconds})"

    async def raw_scalar(self, raw: Any, sql: str) -> Any:
        assert isinstance(raw, aiomysql.Connection)
        async with raw.cursor() as cur:
            await cur.execute(sql)
            row = await cur.fetchone()
            return row[0] if row else None

    async def close_raw(self, raw: Any) -> None:
        await raw.ensure_closed()

    async def outside(self, target: str, sql: str) -> Any:
        rows = await self.outside_rows(target, sql)
        return rows[0][0] if rows else None

    async def outside_rows(self, target: str, sql: str) -> list[tuple[Any, ...]]:
        sim = self.sim
        endpoint = {"cluster": sim.cluster_endpoint, "reader": sim.reader_endpoint}.get(target)
        host, port = (endpoint or sim.endpoint(target)).rsplit(":", 1)
        conn = await aiomysql.connect(host=host, port=int(port), user="admin", db="app", connect_timeout=5)
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql)
                return list(await cur.fetchall())
        finally:
            conn.close()

    async def running(self, instance: str, sql: str) -> int:
        count = await self.outside(
            instance, f"SELECT count(*) FROM information_schema.processlist WHERE info = '{sql}'"
        )
        return int(count)

    async def client_sessions(self, instance: str) -> int:
        count = await self.outside(
            instance, "SELECT count(*) FROM information_schema.processlist WHERE user = 'admin'"
        )
        return int(count)


def engine_ops(sim: AuroraSimulator) -> EngineOps:
    return PgOps(sim) if sim.engine == "postgresql" else MyOps(sim)
