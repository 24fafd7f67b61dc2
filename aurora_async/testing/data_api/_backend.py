"""What the Data API emulator needs from a database engine: the ``Backend`` and ``Session`` protocols
and the values they exchange (a translated statement, a result and its columns).

One backend per engine (``_postgres``: PostgreSQL through asyncpg, ``_mysql``: MariaDB
through aiomysql) turns a statement with Data API parameters into the driver's form, runs it on one of
its sessions (a real connection to the simulator's writer) and encodes the result as Data API ``Field``
values and ``columnMetadata`` (with the helpers of ``_encoding``); ``_factory`` picks the backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._protocol import ApiError, Field, Param, ResultOptions

CLOSE_TIMEOUT = 5.0  # seconds for a graceful close, a cancel or a KILL QUERY before giving up
APPLICATION_NAME = "aurora_async data api emulator"


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


def missing_parameter(name: str) -> ApiError:
    return ApiError("BadRequestException", f'No value specified for parameter "{name}" (:{name} in the SQL)')
