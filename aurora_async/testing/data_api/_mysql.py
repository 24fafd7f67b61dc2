"""The Data API emulator's MySQL backend (MariaDB through aiomysql, client-side interpolation).

``:name`` becomes ``%s`` (literal ``%`` doubled), filled with the Python value of its ``Field`` member
through pymysql's escaping (bytes as ``_binary X'..'`` literals: aiomysql 0.3 cannot escape bytes with
PyMySQL 1.1+); hinted strings stay strings, which MySQL converts. Results are typed from
the column definitions the server sends (type, length, flags, character set): TINYINT(1) and BIT(1) are
booleans, binary strings (character set 63) and BIT(n>1) blobs; DECIMAL and temporal values are read as
the server's text. Sessions run with ``time_zone='+00:00'``, autocommit outside transactions, and
CLIENT_FOUND_ROWS (``numberOfRecordsUpdated`` counts matched rows, as with Connector/J's default).

How results are typed: ``_mysql_types``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomysql
import pymysql
from pymysql.constants import CLIENT

from ...data_api._placeholders import find_placeholders
from ._backend import (
    APPLICATION_NAME,
    CLOSE_TIMEOUT,
    StatementResult,
    Translated,
    missing_parameter,
)
from ._encoding import NULL
from ._mysql_types import column_of, conversions
from ._protocol import ApiError, Param, ResultOptions, database_error, unavailable

log = logging.getLogger("aurora_async.testing.data_api")

# client-side errors (CR_*) and server errors that mean the connection is gone
_CONNECTION_ERRNOS = {1053, 1927, 2002, 2003, 2006, 2013, 2014, 2055}
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z]+)", re.DOTALL)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
# SQLSTATEs of common server errors (MySQL's server error reference), for PyMySQL releases before 1.2,
# which drop the one the error packet carries
_SQLSTATES = {
    1044: "42000",  # ER_DBACCESS_DENIED_ERROR
    1045: "28000",  # ER_ACCESS_DENIED_ERROR
    1046: "3D000",  # ER_NO_DB_ERROR
    1048: "23000",  # ER_BAD_NULL_ERROR
    1049: "42000",  # ER_BAD_DB_ERROR
    1050: "42S01",  # ER_TABLE_EXISTS_ERROR
    1051: "42S02",  # ER_BAD_TABLE_ERROR
    1054: "42S22",  # ER_BAD_FIELD_ERROR
    1062: "23000",  # ER_DUP_ENTRY
    1064: "42000",  # ER_PARSE_ERROR
    1142: "42000",  # ER_TABLEACCESS_DENIED_ERROR
    1146: "42S02",  # ER_NO_SUCH_TABLE
    1213: "40001",  # ER_LOCK_DEADLOCK
    1264: "22003",  # ER_WARN_DATA_OUT_OF_RANGE
    1406: "22001",  # ER_DATA_TOO_LONG
    1451: "23000",  # ER_ROW_IS_REFERENCED_2
    1452: "23000",  # ER_NO_REFERENCED_ROW_2
}


class _Cursor(aiomysql.Cursor):  # type: ignore[misc]
    """aiomysql's cursor without ``SHOW WARNINGS`` and ``warnings.warn`` after a statement with warnings:
    they are not errors, and the Data API does not report them."""

    async def _show_warnings(self, conn: Any) -> None:
        return None


class MySQLBackend:
    """Sessions to the writer through ``dsn`` (``mysql://user[:password]@host:port/database``)."""

    dialect = "mysql"

    def __init__(self, dsn: str, tag: str) -> None:
        parts = urlsplit(dsn)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 3306
        self._user = unquote(parts.username or "")
        self._password = unquote(parts.password or "")
        self._tag = tag
        self._conv = conversions()
        self.dropped: set[int] = set()  # connection ids of sessions dropped rather than closed

    def translate(self, sql: str, params: Mapping[str, Param]) -> Translated:
        first = _FIRST_WORD.match(sql)
        keyword = first.group(1).upper() if first else ""
        writes = keyword == "CALL" or (
            keyword in ("INSERT", "REPLACE", "DELETE", "UPDATE") and _RETURNING.search(sql) is not None
        )
        placeholders = find_placeholders(sql, "mysql")
        if not placeholders:
            return Translated(sql, None, writes)
        pieces: list[str] = []
        args: list[Any] = []
        last = 0
        for placeholder in placeholders:
            param = params.get(placeholder.name)
            if param is None:
                raise missing_parameter(placeholder.name)
            pieces += [sql[last : placeholder.start].replace("%", "%%"), "%s"]
            args.append(param.value)
            last = placeholder.end
        pieces.append(sql[last:].replace("%", "%%"))
        return Translated("".join(pieces), tuple(args), writes)

    async def open(self, database: str | None, timeout: float) -> Any:
        """A plain aiomysql connection (also for KILL QUERY)."""
        conn = aiomysql.Connection(
            host=self._host,
            port=self._port,
            user=self._user,
            password=self._password,
            db=database,
            charset="utf8mb4",
            autocommit=True,
            conv=self._conv,
            init_command="SET time_zone='+00:00'",
            client_flag=CLIENT.FOUND_ROWS,
            connect_timeout=None,  # our deadline covers the whole connect
            program_name=f"{APPLICATION_NAME} {self._tag}",
        )
        try:
            async with asyncio.timeout(timeout):
                await conn._connect()
        except BaseException:
            conn.close()
            raise
        return conn

    async def connect(self, database: str, timeout: float) -> MySQLSession:
        return MySQLSession(self, await self.open(database, timeout))

    async def kill_query(self, connection_id: int) -> None:
        """``KILL QUERY`` from a connection of its own (the session is busy running the query)."""
        async with asyncio.timeout(CLOSE_TIMEOUT):
            conn = await self.open(None, CLOSE_TIMEOUT)
            try:
                async with conn.cursor(_Cursor) as cursor:
                    await cursor.execute(f"KILL QUERY {int(connection_id)}")
            finally:
                conn.close()

    async def sweep(self) -> None:
        if not self.dropped:
            return
        ids, self.dropped = sorted(self.dropped), set()
        async with asyncio.timeout(CLOSE_TIMEOUT):
            conn = await self.open(None, CLOSE_TIMEOUT)
            try:
                async with conn.cursor(_Cursor) as cursor:
                    for connection_id in ids:
                        try:
                            await cursor.execute(f"KILL CONNECTION {int(connection_id)}")
                        except pymysql.err.MySQLError:  # 1094 unknown thread: it is gone already
                            pass
            finally:
                conn.close()

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, OSError | TimeoutError | asyncio.IncompleteReadError | pymysql.err.InterfaceError):
            return True
        return _errno(exc) in _CONNECTION_ERRNOS

    def api_error(self, exc: BaseException) -> ApiError | None:
        """A server error is ``DatabaseErrorException`` "<message>; Error code: <errno>; SQLState:
        <state>", the form the ``aurora-data-api`` client parses (``Error code: (\\d+); SQLState:
        (\\d+)$``, since its 0.4.0) to classify errors."""
        if isinstance(exc, ApiError):
            return exc
        if self.is_connection_error(exc):
            return unavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        errno = _errno(exc)
        if errno is not None:
            message = exc.args[1] if len(exc.args) > 1 else ""
            return database_error(f"{message}; Error code: {errno}; SQLState: {_sqlstate(exc, errno)}")
        return None


def _sqlstate(exc: BaseException, errno: int) -> str:
    """The SQLSTATE of a server error: the one its error packet carried (PyMySQL 1.2 keeps it as
    ``exc.sqlstate``), else the one MySQL documents for the most common error numbers, else HY000 (the
    general error)."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate
    return _SQLSTATES.get(errno, "HY000")


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


class MySQLSession:
    """One aiomysql connection of the emulator."""

    def __init__(self, backend: MySQLBackend, conn: Any) -> None:
        self._backend = backend
        self.conn = conn
        self.connection_id: int = int(conn.thread_id())
        self.broken = False

    def usable(self) -> bool:
        writer = self.conn._writer
        return not self.broken and writer is not None and not writer.transport.is_closing()

    def in_transaction(self) -> bool:
        return bool(self.conn.get_transaction_status())

    async def execute(
        self, statement: Translated, options: ResultOptions, *, implicit_transaction: bool
    ) -> StatementResult:
        if implicit_transaction and statement.writes_rows and not self.in_transaction():
            await self.conn.begin()
        sql = statement.sql
        if statement.args is not None:
            sql %= tuple(self._literal(value) for value in statement.args)
        cursor = await self.conn.cursor(_Cursor)
        await cursor.execute(sql)
        if cursor.description is None:
            result = StatementResult(
                updated=max(cursor.rowcount, 0),
                generated=[{"longValue": cursor.lastrowid}] if cursor.lastrowid else [],
            )
        else:
            columns = [column_of(packet) for packet in cursor._result.fields]
            rows = await cursor.fetchall()
            records = [
                [
                    NULL if value is None else column.encode(value, options)
                    for column, value in zip(columns, row, strict=True)
                ]
                for row in rows
            ]
            result = StatementResult(records=records, columns=columns)
        while await cursor.nextset():
            pass
        return result

    def _literal(self, value: Any) -> str:
        """pymysql's escaping, except for bytes (aiomysql 0.3 cannot escape them with PyMySQL 1.1+)."""
        if isinstance(value, bytes):
            return f"_binary X'{value.hex()}'"
        return str(self.conn.escape(value))

    async def begin(self) -> None:
        await self.conn.begin()

    async def commit(self) -> None:
        await self.conn.commit()

    async def rollback(self) -> None:
        await self.conn.rollback()

    async def interrupt(self, task: asyncio.Task[Any]) -> None:
        try:
            await self._backend.kill_query(self.connection_id)
        except Exception as exc:  # then the connection is dropped instead
            log.debug("KILL QUERY %d failed: %r", self.connection_id, exc)
        await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        if not task.done():
            task.cancel()
            self.abort()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)

    async def close(self) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.conn.ensure_closed()
        except Exception:  # whatever went wrong, the connection goes
            self.abort()

    def abort(self) -> None:
        if self.conn._writer is not None:
            self._backend.dropped.add(self.connection_id)
        self.broken = True
        self.conn.close()
