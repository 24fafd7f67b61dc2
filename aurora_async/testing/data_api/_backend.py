"""What the Data API emulator needs from a database engine, and the encodings both engines share.

One backend per engine (``_postgres``: PostgreSQL through asyncpg, ``_mysql``: MariaDB
through aiomysql) turns a statement with Data API parameters into the driver's form, runs it on one of
its sessions (a real connection to the simulator's writer) and encodes the result as Data API ``Field``
values and ``columnMetadata``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

from ._protocol import INT64, ApiError, Field, Param, ResultOptions

if TYPE_CHECKING:
    from ..simulator._simulator import AuroraSimulator

NULL: Field = {"isNull": True}
CLOSE_TIMEOUT = 5.0  # seconds for a graceful close, a cancel or a KILL QUERY before giving up
APPLICATION_NAME = "aurora_async data api emulator"

_TEMPORAL = re.compile(
    r"(?P<main>(?:\d+-\d\d-\d\d )?-?\d+:\d\d:\d\d)(?:\.(?P<frac>\d+))?"
    r"(?:[+-]\d\d(?::\d\d){0,2})?(?P<era> BC)?"
)


class SessionLost(ConnectionError):
    """The session turned out to be dead before the statement reached the server: nothing ran, so
    another session may run it."""


@dataclass(frozen=True)
class Translated:
    """A statement in the driver's form: ``sql`` with the driver's placeholders and ``args`` (None: no
    parameters at all); ``writes_rows`` says that it may change data and return rows at once, so that
    outside a transaction it runs in one of its own (rolled back if its response is too large)."""

    sql: str
    args: tuple[Any, ...] | None
    writes_rows: bool = True


@dataclass
class Column:
    """One result column: its ``ColumnMetadata`` and how a driver value becomes a ``Field``."""

    label: str
    metadata: dict[str, Any]
    encode: Callable[[Any, ResultOptions], Field]


@dataclass
class StatementResult:
    """What a statement produced. ``records`` is None when it returned no result set."""

    records: list[list[Field]] | None = None
    columns: list[Column] = field(default_factory=list)
    updated: int = 0
    generated: list[Field] = field(default_factory=list)


class Session(Protocol):
    """One database connection of the emulator (in a pool, or held by a transaction)."""

    connection_id: int
    broken: bool

    def usable(self) -> bool: ...

    def in_transaction(self) -> bool: ...

    async def execute(
        self, statement: Translated, options: ResultOptions, *, implicit_transaction: bool
    ) -> StatementResult:
        """Run ``statement``. With ``implicit_transaction``, a statement that may write and return rows
        starts a transaction first (the caller commits or rolls it back)."""
        ...

    async def begin(self) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def interrupt(self, task: asyncio.Task[Any]) -> None:
        """Stop ``task``, which runs a statement on this session, and cancel the statement on the server;
        returns when ``task`` is done (or the session was given up: ``broken``)."""
        ...

    async def close(self) -> None:
        """Close gracefully, within ``CLOSE_TIMEOUT``; else drop the connection."""
        ...

    def abort(self) -> None:
        """Drop the connection at once (the server rolls back what it had open)."""
        ...


class Backend(Protocol):
    """An engine: sessions to the simulator's writer, parameter translation and error mapping."""

    dialect: str

    def translate(self, sql: str, params: Mapping[str, Param]) -> Translated: ...

    async def connect(self, database: str, timeout: float) -> Session: ...

    def api_error(self, exc: BaseException) -> ApiError | None:
        """The Data API error for a driver exception (None: not a database error at all)."""
        ...

    def is_connection_error(self, exc: BaseException) -> bool: ...

    async def sweep(self) -> None:
        """End the server sessions of connections dropped while they were busy (a dropped connection's
        query runs on until the server notices): called once the emulator closed everything else."""
        ...


def make_backend(sim: AuroraSimulator, tag: str) -> Backend:
    """The backend for ``sim.engine``, connecting through the writer endpoint (``sim.dsn("cluster")``)."""
    if sim.engine == "mysql":
        from ._mysql import MySQLBackend  # noqa: PLC0415 - keep aiomysql out of PostgreSQL use

        return MySQLBackend(sim.dsn("cluster"), tag)
    from ._postgres import PostgresBackend  # noqa: PLC0415

    return PostgresBackend(sim.dsn("cluster"), tag)


def missing_parameter(name: str) -> ApiError:
    return ApiError("BadRequestException", f'No value specified for parameter "{name}" (:{name} in the SQL)')


# -- encodings shared by both engines ---------------------------------------------------------------------


def long_field(value: int, options: ResultOptions) -> Field:
    if options.long_as_string or not INT64[0] <= value <= INT64[1]:
        return {"stringValue": str(value)}
    return {"longValue": value}


def decimal_field(text: str, options: ResultOptions) -> Field:
    """DECIMAL/NUMERIC: the database's own text, or (``DOUBLE_OR_LONG``) a long when integral."""
    if not options.decimal_as_number:
        return {"stringValue": text}
    try:
        number = Decimal(text)
    except InvalidOperation:
        return {"stringValue": text}
    if number.is_finite() and number == number.to_integral_value() and INT64[0] <= number <= INT64[1]:
        return {"longValue": int(number)}
    return {"doubleValue": float(number)}


def temporal_text(text: str) -> str:
    """``HH:MM:SS[.ffffff]`` and ``YYYY-MM-DD HH:MM:SS[.ffffff]`` from the database's text: the fraction
    as six digits, only when not zero (like ``isoformat``), the UTC offset dropped (sessions run in UTC).
    Dates, ``infinity`` and other text pass unchanged."""
    match = _TEMPORAL.fullmatch(text)
    if match is None:
        return text
    fraction = (match["frac"] or "").ljust(6, "0")[:6]
    return match["main"] + (f".{fraction}" if fraction.strip("0") else "") + (match["era"] or "")


def metadata(
    label: str,
    type_name: str,
    jdbc_type: int,
    *,
    nullable: int = 2,
    precision: int = 0,
    scale: int = 0,
    schema_name: str = "",
    table_name: str = "",
    signed: bool = False,
    auto_increment: bool = False,
    case_sensitive: bool = False,
    array_base_type: int = 0,
) -> dict[str, Any]:
    """A ``ColumnMetadata`` (``name`` and ``label`` are both the column's label)."""
    return {
        "name": label,
        "label": label,
        "typeName": type_name,
        "type": jdbc_type,
        "nullable": nullable,
        "precision": precision,
        "scale": scale,
        "schemaName": schema_name,
        "tableName": table_name,
        "isSigned": signed,
        "isAutoIncrement": auto_increment,
        "isCaseSensitive": case_sensitive,
        "isCurrency": False,
        "arrayBaseColumnType": array_base_type,
    }
