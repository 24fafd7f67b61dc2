"""``AuroraConnection``: the asyncpg Connection API over a physical connection that survives failover.

A call goes straight to asyncpg. Only when asyncpg raises does the facade look at the error: a
connection-level failure (or, in ``strict_writer`` mode, a read-only error) starts a failover, which
swaps in a connection to the right instance and raises ``FailoverSuccessError`` or
``TransactionResolutionUnknownError``; any other error passes through untouched.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from types import TracebackType
from typing import Any

import asyncpg
from asyncpg.transaction import ISOLATION_LEVELS, TransactionState

from .._cluster import Cluster
from .._config import Config
from .._driver import discard
from .._exceptions import FailoverFailedError
from .._read_write import ReadWriteSession
from .._topology import Instance
from ._listeners import Listener, Listeners
from ._settings import End, SessionSettings, Statement, may_change, parse


class AuroraConnection(ReadWriteSession):
    """A connection to an Aurora / RDS cluster with the asyncpg ``Connection`` API.

    Methods not listed here are forwarded to the current asyncpg connection (``conn.raw``) as they are.
    After a failover, objects obtained from the previous physical connection (prepared statements,
    cursors, ``conn.raw`` itself) belong to a closed connection: get new ones. ``server_settings`` and
    the other connect arguments apply to every new physical connection. Session settings changed with
    ``SET`` / ``RESET`` / ``DISCARD ALL`` statements run through :meth:`execute`, :meth:`fetch`,
    :meth:`fetchrow` or :meth:`fetchval` are set again on it too, as far as they took effect (a
    change inside a transaction block only once it commits; never ``SET LOCAL``; the rules are in
    ``aurora_async.postgresql._settings``). ``LISTEN`` channels added with :meth:`add_listener` are
    listened to again on the new connection.
    """

    _raw: asyncpg.Connection

    def __init__(self, cluster: Cluster, config: Config, raw: asyncpg.Connection, instance: Instance) -> None:
        self._listeners = Listeners(self, self._raw_ended)
        self._settings = SessionSettings()  # what SET statements changed on the current connection
        self._spare_settings = SessionSettings()  # ... and on the spare (read/write splitting)
        super().__init__(cluster, config, raw, instance)
        self._listeners.watch(raw)

    # -- what the application may ask --------------------------------------------------------------

    @property
    def raw(self) -> asyncpg.Connection:
        """The current asyncpg connection (it changes at failover)."""
        return self._raw

    # -- the asyncpg API, with failover -------------------------------------------------------------

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        if self._block_lost:
            raise self._block_lost_error()
        if self._cluster.blue_green.holding:
            await self._hold()
        self._busy_since = self._clock()
        try:
            while True:  # again after a blue/green switchover moved the connection (_failed)
                try:
                    if may_change(query):
                        return await self._tracked(self._raw.execute, query, *args, timeout=timeout)  # type: ignore[no-any-return]
                    return await self._raw.execute(query, *args, timeout=timeout)
                except Exception as exc:
                    if not await self._failed(exc, again=True):
                        raise
        finally:
            self._busy_since = None

    async def _tracked(self, method: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``query`` with ``method`` of the current asyncpg connection, and note what it did to
        session settings and the transaction once it succeeded."""
        statements = parse(query)
        raw = self._raw
        if not statements:
            return await method(query, *args, **kwargs)
        in_transaction = bool(raw.is_in_transaction())
        failed = in_transaction and await self._commit_would_roll_back(raw, statements)
        result = await method(query, *args, **kwargs)
        self._settings.note(statements, in_transaction=in_transaction, failed=failed)
        return result

    async def _commit_would_roll_back(self, raw: asyncpg.Connection, statements: list[Statement]) -> bool:
        """Whether a COMMIT would roll back (the transaction is in error), asked of the server only when
        it matters: pending setting changes and a COMMIT among ``statements``. (asyncpg does not tell a
        failed transaction from an open one; a statement refused in it is the sign, and changes
        nothing.)"""
        if not self._settings.pending or not any(isinstance(s, End) and s.commit for s in statements):
            return False
        try:
            await raw.execute("SELECT 1")
        except asyncpg.InFailedSQLTransactionError:
            return True
        return False

    async def executemany(self, command: str, args: Iterable[Any], *, timeout: float | None = None) -> None:
        if self._block_lost:
            raise self._block_lost_error()
        if self._cluster.blue_green.holding:
            await self._hold()
        self._busy_since = self._clock()
        try:
            while True:  # again after a blue/green switchover moved the connection (_failed)
                try:
                    return await self._raw.executemany(command, args, timeout=timeout)
                except Exception as exc:
                    if not await self._failed(exc, again=True):
                        raise
        finally:
            self._busy_since = None

    async def fetch(
        self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None
    ) -> list[Any]:
        if self._block_lost:
            raise self._block_lost_error()
        if self._cluster.blue_green.holding:
            await self._hold()
        self._busy_since = self._clock()
        try:
            while True:  # again after a blue/green switchover moved the connection (_failed)
                try:
                    if may_change(query):
                        fetched: list[Any] = await self._tracked(
                            self._raw.fetch, query, *args, timeout=timeout, record_class=record_class
                        )
                        return fetched
                    rows: list[Any] = await self._raw.fetch(
                        query, *args, timeout=timeout, record_class=record_class
                    )
                    return rows
                except Exception as exc:
                    if not await self._failed(exc, again=True):
                        raise
        finally:
            self._busy_since = None

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None
    ) -> Any:
        if self._block_lost:
            raise self._block_lost_error()
        if self._cluster.blue_green.holding:
            await self._hold()
        self._busy_since = self._clock()
        try:
            while True:  # again after a blue/green switchover moved the connection (_failed)
                try:
                    if may_change(query):
                        return await self._tracked(
                            self._raw.fetchrow, query, *args, timeout=timeout, record_class=record_class
                        )
                    return await self._raw.fetchrow(query, *args, timeout=timeout, record_class=record_class)
                except Exception as exc:
                    if not await self._failed(exc, again=True):
                        raise
        finally:
            self._busy_since = None

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        if self._block_lost:
            raise self._block_lost_error()
        if self._cluster.blue_green.holding:
            await self._hold()
        self._busy_since = self._clock()
        try:
            while True:  # again after a blue/green switchover moved the connection (_failed)
                try:
                    if may_change(query):
                        return await self._tracked(
                            self._raw.fetchval, query, *args, column=column, timeout=timeout
                        )
                    return await self._raw.fetchval(query, *args, column=column, timeout=timeout)
                except Exception as exc:
                    if not await self._failed(exc, again=True):
                        raise
        finally:
            self._busy_since = None

    async def fetchmany(
        self, query: str, args: Iterable[Any], *, timeout: float | None = None, record_class: Any = None
    ) -> list[Any]:
        rows: list[Any] = await self._guard(
            self._raw.fetchmany, query, args, timeout=timeout, record_class=record_class
        )
        return rows

    async def prepare(self, query: str, **kwargs: Any) -> Any:
        """A prepared statement on the current physical connection (invalid after a failover)."""
        return await self._guard(self._raw.prepare, query, **kwargs)

    async def copy_from_table(self, table_name: str, **kwargs: Any) -> str:
        return await self._guard(self._raw.copy_from_table, table_name, **kwargs)  # type: ignore[no-any-return]

    async def copy_from_query(self, query: str, *args: Any, **kwargs: Any) -> str:
        return await self._guard(self._raw.copy_from_query, query, *args, **kwargs)  # type: ignore[no-any-return]

    async def copy_to_table(self, table_name: str, **kwargs: Any) -> str:
        return await self._guard(self._raw.copy_to_table, table_name, **kwargs)  # type: ignore[no-any-return]

    async def copy_records_to_table(self, table_name: str, **kwargs: Any) -> str:
        return await self._guard(self._raw.copy_records_to_table, table_name, **kwargs)  # type: ignore[no-any-return]

    def cursor(self, query: str, *args: Any, **kwargs: Any) -> AuroraCursorFactory:
        """asyncpg's cursor factory (``async for record in conn.cursor(...)``, ``await conn.cursor(...)``;
        inside a transaction, as in asyncpg). Opening the cursor fails over like any call; the cursor
        itself belongs to the physical connection it was opened on."""
        return AuroraCursorFactory(self, query, args, kwargs)

    def transaction(
        self, *, isolation: str | None = None, readonly: bool = False, deferrable: bool = False
    ) -> AuroraTransaction:
        """A transaction block (asyncpg's API and rules; see :class:`AuroraTransaction`)."""
        return AuroraTransaction(self, isolation=isolation, readonly=readonly, deferrable=deferrable)

    async def reset(self, *, timeout: float | None = None) -> None:
        """asyncpg's ``reset()``: roll back an open transaction, drop session settings, listeners and
        advisory locks (what a pool does on release). Listeners added here are forgotten too, and a
        transaction block lost in a failover is ended."""
        self._listeners.clear()
        self._end_block()
        await self._guard(self._raw.reset, timeout=timeout)
        self._settings.reset()

    async def add_listener(self, channel: str, callback: Listener) -> None:
        """Listen on ``channel``: ``callback(connection, pid, channel, payload)`` (or a coroutine
        function) is called with this connection for each notification; listened to again on the new
        physical connection after a failover (notifications sent while it ran are missed)."""
        key = (channel, callback)
        relay = self._listeners.notifications.get(key) or self._listeners.relay(callback)
        await self._guard(self._raw.add_listener, channel, relay)
        self._listeners.notifications[key] = relay

    async def remove_listener(self, channel: str, callback: Listener) -> None:
        """Stop calling ``callback`` for ``channel`` (``UNLISTEN`` when it was the last one)."""
        relay = self._listeners.notifications.pop((channel, callback), None)
        if relay is not None:
            await self._guard(self._raw.remove_listener, channel, relay)

    def add_log_listener(self, callback: Listener) -> None:
        """``callback(connection, message)`` (or a coroutine function) for each server log message
        (``NOTICE``, ``WARNING``, ...) on this connection, across failovers."""
        self._listeners.add_log(self._raw, callback)

    def remove_log_listener(self, callback: Listener) -> None:
        self._listeners.remove_log(self._raw, callback)

    def add_termination_listener(self, callback: Listener) -> None:
        """``callback(connection)`` (or a coroutine function), once, when this connection is closed
        (``close()``, ``terminate()``, a failover that gave up; without failover, the loss of its
        physical connection). A failover that succeeds does not close it."""
        self._listeners.add_termination(callback)

    def remove_termination_listener(self, callback: Listener) -> None:
        self._listeners.remove_termination(callback)

    def _raw_ended(self, raw: Any) -> None:
        if raw is self._raw and (self._closed or not self._failover):
            self._listeners.ended()

    def _mark_closed(self) -> None:
        super()._mark_closed()
        self._listeners.ended()

    def _closed_error(self) -> Exception:
        return asyncpg.InterfaceError("connection is closed")

    async def _restore_session(self, raw: asyncpg.Connection) -> None:
        """Set the tracked session settings again on ``raw``, the new physical connection (all or none:
        one implicit transaction), and listen again. A transaction the failover cut off took its
        pending settings with it. When the settings cannot be set again (a role dropped since, ...),
        the connection is closed with ``FailoverFailedError``: it never runs on without them."""
        self._settings.rollback()
        script = self._settings.script()
        if script:
            try:
                await raw.execute(script)
            except Exception as exc:
                self._untrack()
                discard(raw)
                self._give_up()
                raise self._driver.failover_error(
                    FailoverFailedError,
                    f"the connection failed over to {self._instance.instance_id}, but its session settings "
                    f"could not be set again there ({type(exc).__name__}: see the cause); the connection "
                    "is closed",
                ) from exc
        await self._listeners.register_on(raw)

    async def set_read_only(self, read_only: bool) -> None:
        """Read/write splitting (see :class:`aurora_async._read_write.ReadWriteSession`); the settings
        tracked for each physical connection stay with it (the writer's and the reader's are apart)."""
        before, spare = self._raw, self._spare
        await super().set_read_only(read_only)
        if self._raw is not before:
            reused = spare is not None and self._raw is spare[0]
            now = self._spare_settings if reused else SessionSettings()
            self._settings, self._spare_settings = now, self._settings

    async def _close_raw(self, timeout: float | None) -> None:
        await self._raw.close(timeout=timeout)

    async def close(self, *, timeout: float | None = None) -> None:
        """Close the connection; the cluster's background work stops with its last connection."""
        await self._close(timeout)

    async def __aenter__(self) -> AuroraConnection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class AuroraTransaction:
    """``conn.transaction()``: asyncpg's transaction, aware that its connection can fail over.

    It keeps asyncpg's rules: it starts once (``start()`` on a started, committed, rolled back or failed
    transaction raises ``asyncpg.InterfaceError``, as does ``commit()`` or ``rollback()`` before
    ``start()`` or after the end, a manual ``commit()``/``rollback()`` inside its ``async with`` block,
    and entering that block twice); an error at ``start()``, ``commit()`` or ``rollback()`` leaves it
    failed.

    Starting it on a connection whose physical connection died fails over like any call (the block does
    not run: ``FailoverSuccessError``). A failure inside the block, or at COMMIT, raises
    ``TransactionResolutionUnknownError``. The block is then lost: every later call on the connection
    (a savepoint block included) raises ``TransactionResolutionUnknownError`` until the block ends, and
    a block that ends without an error in flight (the application caught the failover error inside it)
    raises it too, so it never reports success for work the failover took away.
    """

    def __init__(
        self, conn: AuroraConnection, *, isolation: str | None, readonly: bool, deferrable: bool
    ) -> None:
        if isolation and isolation not in ISOLATION_LEVELS:
            levels = ", ".join(sorted(ISOLATION_LEVELS))
            raise ValueError(f"isolation is expected to be one of {levels}, got {isolation!r}")
        self._conn = conn
        self._options: dict[str, Any] = {
            "isolation": isolation,
            "readonly": readonly,
            "deferrable": deferrable,
        }
        self._raw: asyncpg.Connection | None = None
        self._tx: Any = None
        self._outermost = False
        self._state = TransactionState.NEW
        self._managed = False  # inside its own ``async with`` block

    def __repr__(self) -> str:
        attrs = [f"state:{self._state.name.lower()}"]
        if self._options["isolation"]:
            attrs.append(str(self._options["isolation"]))
        attrs += [name for name in ("readonly", "deferrable") if self._options[name]]
        return f"<aurora_async.AuroraTransaction {' '.join(attrs)} {id(self):#x}>"

    def _check_state(self, operation: str, *, started: bool) -> None:
        """asyncpg's rules: raise ``InterfaceError`` when ``operation`` cannot run in this state."""
        state = self._state
        if state is TransactionState.STARTED and not started:
            raise asyncpg.InterfaceError(f"cannot {operation}; the transaction is already started")
        if state is TransactionState.NEW and started:
            raise asyncpg.InterfaceError(f"cannot {operation}; the transaction is not yet started")
        if state in _ENDED:
            raise asyncpg.InterfaceError(f"cannot {operation}; the transaction is {_ENDED[state]}")

    async def start(self) -> None:
        """Enter the transaction or savepoint block."""
        self._check_state("start", started=False)
        conn = self._conn
        outermost = conn._block_raw is None and not conn._block_lost
        try:
            self._raw, self._tx = await conn._guard(self._begin)
        except asyncpg.InterfaceError:
            raise  # asyncpg refused before sending BEGIN (a manual transaction is open, ...): still new
        except BaseException:
            self._state = TransactionState.FAILED
            raise
        self._state = TransactionState.STARTED
        if outermost:
            self._outermost = True
            conn._begin_block(self._raw)
            conn._settings.begin()
        else:
            conn._settings.savepoint(self)

    async def _begin(self) -> tuple[asyncpg.Connection, Any]:
        raw = self._conn.raw
        tx = raw.transaction(**self._options)  # raises at once on a closed connection: fails over
        await tx.start()
        return raw, tx

    def _lost(self) -> bool:
        """The transaction died with its physical connection: the connection failed over (or tried
        to, and gave up) since it began."""
        conn = self._conn
        if self._raw is None or self._raw is not conn.raw:
            return True
        return conn._block_lost and conn._block_raw is self._raw

    def _finish(self) -> None:
        if self._outermost:
            self._outermost = False
            self._conn._end_block()

    async def commit(self) -> None:
        """Leave the transaction or savepoint block and commit its work."""
        if self._managed:
            raise asyncpg.InterfaceError("cannot manually commit from within an `async with` block")
        await self._commit()

    async def rollback(self) -> None:
        """Leave the transaction or savepoint block and roll its work back."""
        if self._managed:
            raise asyncpg.InterfaceError("cannot manually rollback from within an `async with` block")
        await self._rollback()

    async def _commit(self) -> None:
        self._check_state("commit", started=True)
        if self._lost():
            self._finish()
            self._state = TransactionState.FAILED
            if self._conn._closed:
                raise self._conn._closed_error()
            raise self._conn._block_lost_error()
        outermost = self._outermost
        settings = self._conn._settings
        try:
            conn = self._conn
            failed = outermost and await conn._guard(conn._commit_would_roll_back, self._raw, _COMMIT)
            await self._conn._guard(self._tx.commit)
        except BaseException:
            self._state = TransactionState.FAILED
            raise
        finally:
            self._finish()
        if outermost:
            settings.commit(failed=failed)
        else:
            settings.release(self)
        self._state = TransactionState.COMMITTED

    async def _rollback(self) -> None:
        self._check_state("rollback", started=True)
        outermost = self._outermost
        try:
            if not self._lost():
                await self._conn._guard(self._tx.rollback)
                if outermost:
                    self._conn._settings.rollback()
                else:
                    self._conn._settings.rollback_to(self, keep=False)
        except BaseException:
            self._state = TransactionState.FAILED
            raise
        finally:
            self._finish()  # a lost transaction is rolled back already: it died with its connection
        self._state = TransactionState.ROLLEDBACK

    async def __aenter__(self) -> AuroraTransaction:
        if self._managed:
            raise asyncpg.InterfaceError("cannot enter context: already in an `async with` block")
        self._managed = True
        try:
            await self.start()
        except BaseException:
            self._managed = False
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._state is TransactionState.STARTED and self._lost():
                self._finish()
                self._state = TransactionState.FAILED
                if exc is None:
                    raise self._conn._block_lost_error()
                return  # the error in flight says what happened (FailoverFailedError if it gave up)
            if exc is None:
                await self._commit()
            else:
                await self._rollback()
        finally:
            self._managed = False


_COMMIT: list[Statement] = [End(commit=True)]

_ENDED = {
    TransactionState.COMMITTED: "already committed",
    TransactionState.ROLLEDBACK: "already rolled back",
    TransactionState.FAILED: "in error state",
}


class AuroraCursorFactory:
    """What :meth:`AuroraConnection.cursor` returns: ``await`` it for a cursor, or ``async for`` over
    it; the asyncpg cursor is opened on the current physical connection, with failover."""

    def __init__(
        self, conn: AuroraConnection, query: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._conn = conn
        self._query, self._args, self._kwargs = query, args, kwargs

    def _factory(self) -> Any:
        return self._conn.raw.cursor(self._query, *self._args, **self._kwargs)  # raises if closed

    async def _open(self) -> Any:
        return await self._factory()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._conn._guard(self._open).__await__()

    def __aiter__(self) -> _CursorIteration:
        return _CursorIteration(self)


class _CursorIteration:
    def __init__(self, factory: AuroraCursorFactory) -> None:
        self._factory = factory
        self._iterator: Any = None

    def __aiter__(self) -> _CursorIteration:
        return self

    async def _start(self) -> Any:
        return self._factory._factory().__aiter__()

    async def __anext__(self) -> Any:
        conn = self._factory._conn
        if self._iterator is None:
            self._iterator = await conn._guard(self._start)
        return await conn._guard(self._iterator.__anext__)
