"""The Data API emulator's PostgreSQL backend (asyncpg, prepared statements).

Parameters are sent with the types the real Data API (pgjdbc underneath) gives them: ``:name`` becomes
``($k::int8)``, ``($k::float8)``, ``($k::bool)``, ``($k::bytea)`` or ``($k::varchar)`` by the ``Field``
member, ``(($k::text)::<type>)`` for a ``typeHint``, and a bare ``$k`` for ``isNull`` (the parentheses
keep a following ``[i]`` or ``::cast`` from binding to the type name). Date, time, numeric and network
types are read as PostgreSQL's text (session ``timezone=UTC``, ``DateStyle=ISO``), so ``infinity``,
``NaN`` and the exact scale of a numeric survive. JSON comes back compact (``_json_text``). Errors read
``ERROR: <message>[; Hint: ...][; Position: <n>]; SQLState: <code>`` (:func:`server_error_text`), and a
commit of a transaction that an earlier error aborted answers success, as the service does.

What asyncpg does not expose is reported as unknown: ``nullable`` is 2, ``tableName``/``schemaName`` are
empty, and ``precision``/``scale`` are the type's defaults (no typmod, so ``varchar(10)`` and
``numeric(10,2)`` look like ``varchar`` and ``numeric``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from ...data_api._placeholders import find_placeholders
from ._backend import (
    APPLICATION_NAME,
    CLOSE_TIMEOUT,
    Column,
    SessionLost,
    StatementResult,
    Translated,
    missing_parameter,
)
from ._encoding import NULL, decimal_field, long_field, metadata, temporal_text
from ._json_text import NumberOutOfRange, compact_json
from ._protocol import (
    MULTISTATEMENTS,
    ApiError,
    Field,
    Param,
    ResultOptions,
    blob,
    database_error,
    unavailable,
    unsupported_type,
)

log = logging.getLogger("aurora_async.testing.data_api")

_CASTS = {"long": "int8", "double": "float8", "bool": "bool", "blob": "bytea", "string": "varchar"}
# json, not jsonb: PostgreSQL has an assignment cast json -> jsonb, so a JSON hint fills a jsonb column
_HINT_TYPES = {
    "DECIMAL": "numeric",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "UUID": "uuid",
    "JSON": "json",
}
# read as text: exact scale, 'infinity', 'NaN', PostgreSQL's own formatting of addresses
_TEXT_TYPES = ("date", "time", "timestamp", "timestamptz", "numeric", "uuid", "inet", "cidr")
_CONNECTION_SQLSTATES = {"57P01", "57P02", "57P03"}  # admin shutdown, crash shutdown, cannot connect now
_BROKEN_CONNECTION = ("connection is closed", "another operation is in progress", "is cancelling")

Encoder = Callable[[Any, ResultOptions], Field]


def _string(value: Any, options: ResultOptions) -> Field:
    return {"stringValue": value.decode() if isinstance(value, bytes) else str(value)}


def _json(value: Any, options: ResultOptions) -> Field:
    text = value.decode() if isinstance(value, bytes) else str(value)
    try:
        return {"stringValue": compact_json(text)}
    except NumberOutOfRange as exc:
        raise ApiError(
            "UnsupportedResultException",
            f"The result contains a JSON number beyond the range the Data API returns ({exc}; a double "
            "ends at about 1.8e308). Cast it to a supported type, for example with ::text.",
        ) from None


def _temporal(value: Any, options: ResultOptions) -> Field:
    return {"stringValue": temporal_text(value)}


def _double(value: Any, options: ResultOptions) -> Field:
    return {"doubleValue": float(value)}


def _boolean(value: Any, options: ResultOptions) -> Field:
    return {"booleanValue": bool(value)}


def _bytes(value: Any, options: ResultOptions) -> Field:
    return blob(bytes(value))


def _long(value: Any, options: ResultOptions) -> Field:
    return long_field(int(value), options)


def _decimal(value: Any, options: ResultOptions) -> Field:
    return decimal_field(str(value), options)


# type name -> (JDBC type, precision, scale, signed, case sensitive, encoder); the numbers are pgjdbc's
_MAX = 2_147_483_647
_SCALARS: dict[str, tuple[int, int, int, bool, bool, Encoder]] = {
    "int2": (5, 5, 0, True, False, _long),
    "int4": (4, 10, 0, True, False, _long),
    "int8": (-5, 19, 0, True, False, _long),
    "oid": (-5, 10, 0, False, False, _long),
    "float4": (7, 8, 8, True, False, _double),
    "float8": (8, 17, 17, True, False, _double),
    "numeric": (2, 0, 0, True, False, _decimal),
    "bool": (-7, 1, 0, False, False, _boolean),
    "bytea": (-2, _MAX, 0, False, False, _bytes),
    "text": (12, _MAX, 0, False, True, _string),
    "varchar": (12, _MAX, 0, False, True, _string),
    "bpchar": (1, _MAX, 0, False, True, _string),
    "char": (1, 1, 0, False, True, _string),
    "name": (12, 63, 0, False, True, _string),
    "date": (91, 13, 0, False, False, _string),
    "time": (92, 15, 6, False, False, _temporal),
    "timestamp": (93, 29, 6, False, False, _temporal),
    "timestamptz": (93, 35, 6, False, False, _temporal),
    "json": (1111, _MAX, 0, False, True, _json),
    "jsonb": (1111, _MAX, 0, False, True, _json),
    "uuid": (1111, 36, 0, False, True, _string),
    "inet": (1111, _MAX, 0, False, True, _string),
    "cidr": (1111, _MAX, 0, False, True, _string),
    "void": (1111, 0, 0, False, False, _string),  # SELECT pg_sleep(1): NULL
}
_EXTENSION_STRINGS = frozenset(("citext", "vector"))  # extension types the Data API returns as strings
_ARRAY_MEMBERS = {
    "bool": "booleanValues",
    "int2": "longValues",
    "int4": "longValues",
    "int8": "longValues",
    "float4": "doubleValues",
    "float8": "doubleValues",
}
_ARRAY_ELEMENTS = frozenset(_SCALARS) - {"bytea", "oid", "void"}


class PostgresBackend:
    """Sessions to the writer through ``dsn``, with the parameter and result encodings above."""

    dialect = "postgresql"

    def __init__(self, dsn: str, tag: str) -> None:
        self._dsn = dsn
        self._application_name = f"{APPLICATION_NAME} {tag}"
        self._type_kinds: dict[tuple[str, int], str] = {}  # (database, oid) -> pg_type.typtype
        self.dropped: set[int] = set()  # backend pids of sessions dropped rather than closed

    def translate(self, sql: str, params: Mapping[str, Param]) -> Translated:
        pieces: list[str] = []
        args: list[Any] = []
        numbers: dict[str, int] = {}
        last = 0
        for placeholder in find_placeholders(sql, "postgresql"):
            param = params.get(placeholder.name)
            if param is None:
                raise missing_parameter(placeholder.name)
            number = numbers.get(param.name)
            if number is None:
                args.append(param.value)
                number = numbers[param.name] = len(args)
            pieces += [sql[last : placeholder.start], _placeholder(number, param)]
            last = placeholder.end
        pieces.append(sql[last:])
        return Translated("".join(pieces), tuple(args))

    async def connect(self, database: str, timeout: float) -> PostgresSession:
        settings = {"timezone": "UTC", "datestyle": "ISO, MDY", "application_name": self._application_name}
        async with asyncio.timeout(timeout):
            conn = await asyncpg.connect(self._dsn, database=database, server_settings=settings)
            try:
                for type_name in _TEXT_TYPES:
                    await conn.set_type_codec(
                        type_name, schema="pg_catalog", encoder=str, decoder=str, format="text"
                    )
            except BaseException:
                conn.terminate()
                raise
        return PostgresSession(self, conn, database)

    async def sweep(self) -> None:
        if not self.dropped:
            return
        pids, self.dropped = sorted(self.dropped), set()
        async with asyncio.timeout(CLOSE_TIMEOUT):
            conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "data api sweep"})
            try:
                await conn.fetch(
                    "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
                    "WHERE pid = ANY($1::int4[]) AND application_name = $2",
                    pids,
                    self._application_name,
                )
            finally:
                await conn.close()

    def is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, OSError | TimeoutError | asyncpg.exceptions.InternalClientError):
            return True
        if isinstance(exc, asyncpg.InterfaceError):  # not "the server expects 1 argument ..."
            return isinstance(exc, asyncpg.ConnectionDoesNotExistError) or any(
                words in str(exc) for words in _BROKEN_CONNECTION
            )
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return isinstance(exc, asyncpg.PostgresError) and (
            sqlstate.startswith("08") or sqlstate in _CONNECTION_SQLSTATES
        )

    def api_error(self, exc: BaseException) -> ApiError | None:
        if isinstance(exc, ApiError):
            return exc
        if self.is_connection_error(exc):
            return unavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if isinstance(exc, asyncpg.InterfaceError):  # the driver refused the statement
            return database_error(f"ERROR: {exc}")
        if isinstance(exc, asyncpg.PostgresError):
            message = str(getattr(exc, "message", "") or exc)
            if exc.sqlstate == "42601" and "cannot insert multiple commands" in message:
                return ApiError("ValidationException", MULTISTATEMENTS)
            return database_error(server_error_text(exc))
        return None

    async def column(self, conn: asyncpg.Connection, database: str, attribute: Any) -> Column:
        """The encoding and metadata of one result column (UnsupportedResultException for types the
        Data API cannot return)."""
        label: str = attribute.name
        pg_type = attribute.type
        if pg_type.kind == "array":
            element = pg_type.name[:-2] if pg_type.name.endswith("[]") else pg_type.name.lstrip("_")
            type_name = f"_{element}"
            if pg_type.schema != "pg_catalog" or element not in _ARRAY_ELEMENTS:
                raise unsupported_type(type_name)
            encode = _array_encoder(element, type_name)
            return Column(
                label,
                metadata(label, type_name, 2003, precision=_MAX, array_base_type=_SCALARS[element][0]),
                encode,
            )
        if pg_type.kind == "scalar" and pg_type.schema == "pg_catalog" and pg_type.name in _SCALARS:
            jdbc, precision, scale, signed, case_sensitive, encoder = _SCALARS[pg_type.name]
            return Column(
                label,
                metadata(
                    label,
                    pg_type.name,
                    jdbc,
                    precision=precision,
                    scale=scale,
                    signed=signed,
                    case_sensitive=case_sensitive,
                ),
                encoder,
            )
        if pg_type.kind == "scalar" and (
            pg_type.name in _EXTENSION_STRINGS or await self._type_kind(conn, database, pg_type.oid) == "e"
        ):
            info = metadata(label, pg_type.name, 1111, precision=_MAX, case_sensitive=True)
            return Column(label, info, _string)
        raise unsupported_type(pg_type.name)

    async def _type_kind(self, conn: asyncpg.Connection, database: str, oid: int) -> str:
        key = (database, oid)
        if key not in self._type_kinds:
            kind = await conn.fetchval("SELECT typtype::text FROM pg_catalog.pg_type WHERE oid = $1", oid)
            self._type_kinds[key] = str(kind or "")
        return self._type_kinds[key]


def server_error_text(exc: asyncpg.PostgresError) -> str:
    """The message of ``DatabaseErrorException`` for a PostgreSQL error:
    ``ERROR: <message>[; Hint: <hint>][; Position: <n>]; SQLState: <code>``.

    That is the form Serverless v2 and provisioned clusters use (v1 put ``\\n  Position: <n>`` on a line
    of its own; the ``aurora-data-api`` client's "Capture v2 errors" change, in its 0.5.0, accepts
    ``(?:\\n |;) Position``). The hint comes before the position, as in messages a public Data API client
    records as captured from the live service (``ERROR: operator does not exist: integer = text; Hint:
    No operator matches ...; Position: 36; SQLState: 42883``); the detail and context lines are not part
    of it: its captured not-null violation reads ``ERROR: null value in column "name" of relation "t"
    violates not-null constraint; SQLState: 23502``, without PostgreSQL's "Failing row contains ..."
    detail, and so do the unique violations other clients match (``...violates unique constraint
    "<name>"; SQLState: 23505``, no "Key (...)=(...)" detail)."""
    parts = [f"ERROR: {getattr(exc, 'message', None) or exc}"]
    hint = getattr(exc, "hint", None)
    if hint:
        parts.append(f"Hint: {hint}")
    position = getattr(exc, "position", None)
    if position:
        parts.append(f"Position: {position}")
    parts.append(f"SQLState: {exc.sqlstate}")
    return "; ".join(parts)


def _placeholder(number: int, param: Param) -> str:
    if param.kind == "null":
        return f"${number}"
    if param.hint is not None:
        return f"((${number}::text)::{_HINT_TYPES[param.hint]})"
    return f"(${number}::{_CASTS[param.kind]})"


def _array_encoder(element: str, type_name: str) -> Encoder:
    member = _ARRAY_MEMBERS.get(element, "stringValues")
    scalar = _SCALARS[element][5]

    def encode(values: Any, options: ResultOptions) -> Field:
        if any(isinstance(value, list) for value in values):
            raise unsupported_type(f"{type_name} (a multidimensional array)")
        name = member
        if member == "longValues" and options.long_as_string:
            name = "stringValues"
        items: list[Any] = []
        for value in values:
            if value is None:
                items.append(None)
            elif name == "stringValues":
                encoded = scalar(value, ResultOptions(long_as_string=True))
                items.append(encoded["stringValue"])
            else:
                items.append(value)
        return {"arrayValue": {name: items}}

    return encode


def _updated(status: str | None) -> int:
    """The row count of a command tag (``INSERT 0 5``, ``UPDATE 3``, ``MOVE 2``; 0 for ``CREATE ...``)."""
    last = (status or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresSession:
    """One asyncpg connection of the emulator."""

    def __init__(self, backend: PostgresBackend, conn: asyncpg.Connection, database: str) -> None:
        self._backend = backend
        self.conn = conn
        self.database = database
        self.connection_id: int = conn.get_server_pid()
        self.broken = False

    def usable(self) -> bool:
        return not self.broken and not self.conn.is_closed()

    def in_transaction(self) -> bool:
        return self.conn.is_in_transaction()

    async def execute(
        self, statement: Translated, options: ResultOptions, *, implicit_transaction: bool
    ) -> StatementResult:
        conn = self.conn
        args = statement.args or ()
        try:
            prepared = await conn.prepare(statement.sql)
        except Exception as exc:  # nothing ran yet: a dead session may be replaced
            raise self._lost(exc) from exc
        attributes = prepared.get_attributes()
        if not attributes:
            await prepared.fetch(*args)
            return StatementResult(updated=_updated(prepared.get_statusmsg()))
        columns = [await self._backend.column(conn, self.database, attribute) for attribute in attributes]
        if implicit_transaction and not conn.is_in_transaction():
            await conn.execute("BEGIN")
        rows = await prepared.fetch(*args)
        records = [
            [
                NULL if value is None else column.encode(value, options)
                for column, value in zip(columns, row, strict=True)
            ]
            for row in rows
        ]
        return StatementResult(records=records, columns=columns)

    async def begin(self) -> None:
        try:
            await self.conn.execute("BEGIN")
        except Exception as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: Exception) -> Exception:
        """``SessionLost`` for a connection-level failure, else ``exc``."""
        if self._backend.is_connection_error(exc):
            return SessionLost(f"{type(exc).__name__}: {exc}")
        return exc

    async def commit(self) -> None:
        """``COMMIT``. In a transaction that an earlier statement aborted, PostgreSQL rolls back and
        answers with the command tag ``ROLLBACK`` instead of an error; the Data API passes that on as a
        successful CommitTransaction (see ``StatementRunner.end``), and so does this."""
        if await self.conn.execute("COMMIT") == "ROLLBACK":
            log.debug("Data API emulator: COMMIT of an aborted transaction rolled it back")

    async def rollback(self) -> None:
        await self.conn.execute("ROLLBACK")

    async def interrupt(self, task: asyncio.Task[Any]) -> None:
        # asyncpg answers a cancelled query with a cancel request to the server; the next command on the
        # connection waits until the server acknowledged it
        task.cancel()
        await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)
        if not task.done():
            self.abort()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT)

    async def close(self) -> None:
        try:
            await self.conn.close(timeout=CLOSE_TIMEOUT)
        except Exception:  # whatever went wrong, the connection goes
            self.abort()

    def abort(self) -> None:
        if not self.conn.is_closed():
            self._backend.dropped.add(self.connection_id)
        self.broken = True
        self.conn.terminate()
