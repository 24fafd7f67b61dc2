"""``AuroraMySQLConnection``: the aiomysql Connection and Cursor API over a connection that survives
failover.

Session state set through the facade (``autocommit()``, ``select_db()``, ``set_charset()``) or with the
statements ``USE db``, ``SET NAMES cs``, ``SET SESSION TRANSACTION ISOLATION LEVEL ...``,
``SET [SESSION] transaction_isolation|tx_isolation = ...`` and ``SET autocommit = ...`` run through a
cursor is applied again on the new physical connection after a failover.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

import aiomysql
import pymysql

from .._cluster import Cluster
from .._concurrency import AwaitableContext
from .._config import Config
from .._driver import discard
from .._exceptions import FailoverError, FailoverSuccessError, TransactionResolutionUnknownError
from .._read_write import ReadWriteSession
from .._topology import Instance
from .driver import MySQLConnection

_HEAD = re.compile(r"\s*(USE|SET)\b", re.IGNORECASE)
_USE = re.compile(r"\s*USE\s+`?([^`\s;]+)`?\s*;?\s*$", re.IGNORECASE)
_SET_NAMES = re.compile(r"\s*SET\s+NAMES\s+'?([A-Za-z0-9_]+)'?", re.IGNORECASE)
_LEVEL = r"(READ\s+UNCOMMITTED|READ\s+COMMITTED|REPEATABLE\s+READ|SERIALIZABLE)"
_SET_ISOLATION = re.compile(
    rf"\s*SET\s+(?:SESSION\s+|LOCAL\s+)TRANSACTION\s+ISOLATION\s+LEVEL\s+{_LEVEL}\s*;?\s*$", re.IGNORECASE
)
_SET_ISOLATION_VAR = re.compile(
    r"\s*SET\s+(?:SESSION\s+|LOCAL\s+|@@SESSION\.|@@LOCAL\.|@@)?(?:transaction_isolation|tx_isolation)"
    r"\s*=\s*'([A-Za-z\- ]+)'\s*;?\s*$",
    re.IGNORECASE,
)
_SET_AUTOCOMMIT = re.compile(
    r"\s*SET\s+(?:SESSION\s+|LOCAL\s+|@@SESSION\.|@@LOCAL\.|@@)?autocommit\s*=\s*(0|1|ON|OFF|TRUE|FALSE)"
    r"\s*;?\s*$",
    re.IGNORECASE,
)


class AuroraMySQLConnection(ReadWriteSession):
    """A connection to an Aurora MySQL / RDS MySQL cluster with the aiomysql ``Connection`` API.

    ``cursor()`` gives cursors with aiomysql's API (``execute``, ``executemany``, ``fetchone``,
    ``fetchmany``, ``fetchall``, ``async with``, ``async for``; cursor classes such as
    ``aiomysql.DictCursor``) whose calls fail over. ``begin``, ``commit``, ``rollback``,
    ``autocommit``, ``select_db``, ``set_charset`` and ``ping`` fail over too. Other attributes are read
    from the current aiomysql connection (``conn.raw``), which changes at failover.
    """

    _raw: MySQLConnection

    def __init__(self, cluster: Cluster, config: Config, raw: MySQLConnection, instance: Instance) -> None:
        self._autocommit: bool | None = None  # what the application set; None: as the connection opened
        self._database: str | None = None
        self._charset: str | None = None
        self._isolation: str | None = None
        self._lost_implicit = False  # a failover cut off a transaction begin() did not open
        self._ending = False  # a COMMIT or ROLLBACK is on its way: whatever happens, it ends the transaction
        super().__init__(cluster, config, raw, instance)

    @property
    def raw(self) -> MySQLConnection:
        """The current aiomysql connection (it changes at failover)."""
        return self._raw

    # -- the aiomysql API, with failover -------------------------------------------------------------

    _END_LOST_BLOCK = "call rollback() (every call until then raises this error)"

    def cursor(self, *cursors: type[aiomysql.Cursor]) -> AwaitableContext[AuroraMySQLCursor]:
        """A cursor (``await conn.cursor()`` or ``async with conn.cursor() as cur``); cursor classes as
        for aiomysql, e.g. ``conn.cursor(aiomysql.DictCursor)``."""
        if self._closed:
            raise self._closed_error()
        raw = self._raw
        if raw.was_closed() and not self._failover:
            raw._ensure_alive()  # aiomysql's InterfaceError: "Not connected", "Cancelled during execution"
        for cls in cursors:
            if not (isinstance(cls, type) and issubclass(cls, aiomysql.Cursor)):
                raise TypeError("Custom cursor must be subclass of Cursor")
        cursor = AuroraMySQLCursor(self, cursors)
        return AwaitableContext(lambda: self._cursor_ready(cursor), _close_cursor)

    async def _cursor_ready(self, cursor: AuroraMySQLCursor) -> AuroraMySQLCursor:
        raw = self._raw
        if raw.was_closed() and not self._closed:
            # closed under the application (a cancelled query): with failover, it fails over here,
            # where aiomysql would say it is closed (FailoverSuccessError; the cursor is not made)
            await self._guard(_ensure_alive, raw)
        return cursor

    async def begin(self) -> None:
        """Start a transaction. Its work is tracked through failover: if the connection fails over
        before :meth:`commit`, every call until :meth:`commit` or :meth:`rollback` raises
        ``TransactionResolutionUnknownError``, and so does that ``commit()``: a transaction is never
        reported committed when the failover took part of it away. (A ``begin()`` after that starts
        over.)"""
        self._end_block()  # MySQL ends any transaction at BEGIN: so does a lost one end here
        await self._drop_suspect_work()  # ... and BEGIN would commit what ran since a failover
        raw = self._raw
        await self._guard(raw.begin)
        self._begin_block(raw)

    async def commit(self) -> None:
        """Commit. With autocommit off, a transaction that a failover cut off (its first statements
        died with the old connection) is never committed in part: the work done since the failover is
        rolled back and ``TransactionResolutionUnknownError`` raised; re-run the whole transaction."""
        if self._closed:
            raise self._closed_error()
        if self._end_block():
            raise self._block_lost_error()
        if await self._drop_suspect_work():
            raise self._driver.failover_error(
                TransactionResolutionUnknownError,
                "this transaction was cut off by a failover: what ran before it died with the old "
                "connection, and what ran since was rolled back, so nothing of it is committed; re-run "
                "the whole transaction",
            )
        await self._ending_transaction(self._raw.commit)

    async def rollback(self) -> None:
        self._lost_implicit = False
        if self._end_block() and not self._closed:
            return  # the lost transaction was rolled back with the connection it lived on
        await self._ending_transaction(self._raw.rollback)

    async def _ending_transaction(self, end: Callable[[], Awaitable[None]]) -> None:
        """COMMIT or ROLLBACK: a failover that cuts it off reports the transaction's outcome to this
        call, and what runs after it is a new transaction (nothing of the old one to guard)."""
        self._ending = True
        try:
            await self._guard(end)
        finally:
            self._ending = False

    def _transaction_lost(self) -> None:
        self._lost_implicit = not self._ending

    async def _drop_suspect_work(self) -> bool:
        """After a failover cut off an untracked transaction: roll back what ran since on the new
        connection (the rest of a transaction whose start is gone). Returns whether it did."""
        if not self._lost_implicit:
            return False
        self._lost_implicit = False
        await self._guard(self._raw.rollback)
        return True

    async def autocommit(self, value: bool) -> None:
        """Turn autocommit on or off for this session (kept across failover)."""
        if value:
            await self._drop_suspect_work()  # turning autocommit on commits the open transaction
        await self._guard(self._raw.autocommit, bool(value))
        self._autocommit = bool(value)

    async def reset(self) -> None:
        """Put the session back as it was opened (what :func:`aurora_async.create_pool` does when a
        connection is released): an open transaction is rolled back; user variables, temporary
        tables, prepared statements, ``GET_LOCK`` locks and session settings are dropped
        (``COM_RESET_CONNECTION``); the character set, ``sql_mode``, autocommit and ``init_command``
        given at connect are applied again, and the database given at connect is made current again.
        Session state tracked for failover is forgotten. One round trip (the reset and the settings
        are sent together; two after a ``USE``, and ``init_command`` adds its own); none when no
        command reached the server since the connection opened or was last reset."""
        self._end_block()
        self._lost_implicit = False
        await self._guard(self._raw.reset_session)
        moved_to, opened_in = self._database, self._config.identity.database
        self._autocommit = self._database = self._charset = self._isolation = None
        if moved_to is not None and opened_in is not None and moved_to != opened_in:
            await self._guard(self._raw.select_db, opened_in)

    def get_autocommit(self) -> bool:
        return bool(self._raw.get_autocommit())

    async def select_db(self, db: str) -> None:
        """Make ``db`` the current database (kept across failover)."""
        await self._guard(self._raw.select_db, db)
        self._database = db

    async def set_charset(self, charset: str) -> None:
        """``SET NAMES charset`` (kept across failover)."""
        await self._guard(self._raw.set_charset, charset)
        self._charset = charset

    async def ping(self, reconnect: bool = True) -> None:
        """Check that the server answers (a ``COM_PING`` round trip), as aiomysql's ``ping()``.

        With ``reconnect=True`` (aiomysql's default), a connection that is closed (``close()``,
        ``ensure_closed()``, a query cancelled midway) or whose ping fails is connected again, and the
        ping sent on the new connection. The new connection is opened as :func:`aurora_async.connect`
        opens one: with this connection's identity and options, to the instance its failover mode
        asks for (in ``strict_writer`` mode the writer, even while the cluster endpoint's DNS still
        names a demoted one; with ``plugins=()`` the host it was given), moved to a reader again after
        ``set_read_only(True)``, and with the session state this connection tracks applied again (the
        database chosen, the character set, autocommit, the isolation level), as after a failover.
        With failover on, a ping that fails on an open connection fails over as any call does: the
        ping then returns once the connection is on the new instance (an open transaction still
        raises ``TransactionResolutionUnknownError``, and ``FailoverFailedError`` is raised when no
        instance could be reached).

        With ``reconnect=False``, a closed connection raises ``pymysql.err.Error("Already closed")``
        and a failing ping raises its error (with failover on: ``FailoverSuccessError`` after the
        failover, as for any call), as aiomysql's ``ping(False)`` does.
        """
        raw = self._raw
        if self._closed or (raw.was_closed() and not self._failover):
            if not reconnect:
                raise pymysql.err.Error("Already closed")
            await self._reopen()
            await self._guard(self._raw.ping, False)
            return
        try:
            if raw.was_closed():  # closed under the application: fails over
                await self._guard(_ensure_alive, raw)
            await self._guard(raw.ping, False)
        except FailoverSuccessError:
            if not reconnect:
                raise
        except FailoverError:
            raise
        except Exception:
            if not reconnect or self._failover:
                raise
            await self._reopen()  # as aiomysql: any failure of the ping leads to a new connection
            await self._guard(self._raw.ping, False)

    async def _reopen(self) -> None:
        """Open this connection again through the connect path (see :meth:`ping`)."""
        from .._connect import _open  # noqa: PLC0415 (_connect makes this facade: imported when used)

        read_only = self._read_only
        async with self._failover_lock:
            cluster, raw, instance = await _open(self._config)
            try:
                async with asyncio.timeout(self._config.options.auxiliary_query_timeout):
                    await self._restore_session(raw)
            except BaseException:
                discard(raw)
                await cluster.release_and_wait(self._identity)
                raise
            self._start_over(cluster, raw, instance)
            self._lost_implicit = False
        if read_only:
            await self.set_read_only(True)

    @property
    def closed(self) -> bool:
        return self.is_closed()

    def close(self) -> None:
        """Close at once (aiomysql's synchronous ``close()``); the cluster's background work stops with
        its last connection."""
        self.terminate()

    async def ensure_closed(self) -> None:
        """Say goodbye to the server (COM_QUIT), then close."""
        await self._close(None)

    async def __aenter__(self) -> AuroraMySQLConnection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.close()
        else:
            await self.ensure_closed()

    # -- session state --------------------------------------------------------------------------------

    def _note(self, query: str) -> None:
        """Remember session state that a statement just set (a look at its first word, no copy)."""
        head = _HEAD.match(query)
        if head is None:
            return
        if head.group(1).upper() == "USE":
            if match := _USE.match(query):
                self._database = match.group(1)
        elif match := _SET_NAMES.match(query):
            self._charset = match.group(1)
        elif match := _SET_ISOLATION.match(query) or _SET_ISOLATION_VAR.match(query):
            self._isolation = " ".join(match.group(1).replace("-", " ").upper().split())
        elif match := _SET_AUTOCOMMIT.match(query):
            self._autocommit = match.group(1).upper() in ("1", "ON", "TRUE")

    async def _restore_session(self, raw: MySQLConnection) -> None:
        if self._database is not None:
            await raw.select_db(self._database)
        if self._charset is not None:
            await raw.set_charset(self._charset)
        if self._autocommit is not None:
            await raw.autocommit(self._autocommit)
        if self._isolation is not None:
            async with raw.cursor() as cursor:
                await cursor.execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {self._isolation}")

    def _closed_error(self) -> Exception:
        error: Exception = pymysql.err.InterfaceError(0, "Not connected")
        return error

    async def _close_raw(self, timeout: float | None) -> None:
        async with asyncio.timeout(timeout or self._config.options.auxiliary_query_timeout):
            await self._raw.ensure_closed()  # COM_QUIT: a drain that a dead peer could stall


class AuroraMySQLCursor:
    """An aiomysql cursor that follows its connection through failover (a new driver cursor is made on
    the new physical connection; the result of a statement that failed is gone: re-run it)."""

    def __init__(self, conn: AuroraMySQLConnection, classes: tuple[type[aiomysql.Cursor], ...]) -> None:
        self._conn = conn
        self._classes = classes
        self._on: MySQLConnection | None = None
        self._cursor: Any = None
        self._closed = False
        self._arraysize: int | None = None  # set by the application: given to every driver cursor

    def _current(self) -> Any:
        raw = self._conn.raw
        if self._closed:
            raise pymysql.err.ProgrammingError("Cursor closed")
        if self._on is not raw:
            classes = self._classes
            if not classes:
                cls = raw.cursorclass
            elif len(classes) == 1:
                cls = classes[0]
            else:
                name = "".join(c.__name__ for c in classes).replace("Cursor", "") + "Cursor"
                cls = type(name, classes, {})
            self._cursor, self._on = cls(raw, raw.echo), raw
            if self._arraysize is not None:
                self._cursor.arraysize = self._arraysize
        return self._cursor

    @property
    def connection(self) -> AuroraMySQLConnection:
        return self._conn

    @property
    def raw(self) -> Any:
        """The current aiomysql cursor (a new one after a failover)."""
        return self._current()

    @property
    def arraysize(self) -> int:
        """How many rows ``fetchmany()`` returns by default (aiomysql's: 1); kept across failover."""
        if self._arraysize is not None:
            return self._arraysize
        return int(self._current().arraysize)

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value
        if self._cursor is not None:
            self._cursor.arraysize = value

    async def execute(self, query: str, args: Any = None) -> int:
        # made on the current cursor each time: a blue/green switchover may run it again on the next
        count: int = await self._conn._guard_call(lambda: self._current().execute(query, args))
        self._conn._note(query)
        return count

    async def executemany(self, query: str, args: Iterable[Any]) -> int | None:
        count: int | None = await self._conn._guard_call(lambda: self._current().executemany(query, args))
        return count

    async def callproc(self, procname: str, args: Any = ()) -> Any:
        return await self._conn._guard(self._current().callproc, procname, args)

    async def fetchone(self) -> Any:
        return await self._conn._guard(self._current().fetchone)

    async def fetchmany(self, size: int | None = None) -> Any:
        return await self._conn._guard(self._current().fetchmany, size)

    async def fetchall(self) -> Any:
        return await self._conn._guard(self._current().fetchall)

    async def scroll(self, value: int, mode: str = "relative") -> None:
        await self._conn._guard(self._current().scroll, value, mode)

    async def nextset(self) -> Any:
        return await self._conn._guard(self._current().nextset)

    def mogrify(self, query: str, args: Any = None) -> str:
        return str(self._current().mogrify(query, args))

    def __getattr__(self, name: str) -> Any:
        # description, rowcount, rownumber, lastrowid, arraysize, ...: of the current driver cursor
        if name.startswith("__") or name in ("_cursor", "_conn", "_on"):
            raise AttributeError(name)
        cursor = self._cursor if self._cursor is not None else self._current()
        return getattr(cursor, name)

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close the cursor (reads what is left of an unbuffered result, as aiomysql does)."""
        if self._closed:
            return
        self._closed = True
        cursor, self._cursor = self._cursor, None
        if cursor is not None and self._on is self._conn.raw and not self._on.is_closed():
            if self._conn._block_lost:  # closing runs no statement: not refused with the lost block
                await cursor.close()
            else:
                await self._conn._guard(cursor.close)

    async def __aenter__(self) -> AuroraMySQLCursor:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AuroraMySQLCursor:
        return self

    async def __anext__(self) -> Any:
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row


async def _ensure_alive(raw: MySQLConnection) -> None:
    raw._ensure_alive()  # raises aiomysql's InterfaceError on a connection closed under the application


async def _close_cursor(cursor: AuroraMySQLCursor, exc: BaseException | None) -> None:
    await cursor.close()
