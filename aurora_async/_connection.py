"""``AuroraConnection``: the asyncpg Connection API over a physical connection that survives failover.

A call goes straight to asyncpg. Only when asyncpg raises does the facade look at the error: a
connection-level failure (or, in ``strict_writer`` mode, a read-only error) starts a failover, which
swaps in a connection to the right instance and raises ``FailoverSuccessError`` or
``TransactionResolutionUnknownError``; any other error passes through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import asyncpg

from ._cluster import Cluster
from ._config import Config
from ._session import FailoverSession, monotonic
from ._topology import Instance

Listener = Callable[..., Any]


class AuroraConnection(FailoverSession):
    """A connection to an Aurora / RDS cluster with the asyncpg ``Connection`` API.

    Methods not listed here are forwarded to the current asyncpg connection (``conn.raw``) as they are.
    After a failover, objects obtained from the previous physical connection (prepared statements,
    cursors, ``conn.raw`` itself) belong to a closed connection: get new ones. ``server_settings`` and
    the other connect arguments apply to every new physical connection; state changed with a raw
    ``SET`` is the application's to restore after ``FailoverSuccessError``. ``LISTEN`` channels added
    with :meth:`add_listener` are listened to again on the new connection.
    """

    _raw: asyncpg.Connection

    def __init__(self, cluster: Cluster, config: Config, raw: asyncpg.Connection, instance: Instance) -> None:
        self._listeners: list[tuple[str, Listener]] = []
        super().__init__(cluster, config, raw, instance)

    # -- what the application may ask --------------------------------------------------------------

    @property
    def raw(self) -> asyncpg.Connection:
        """The current asyncpg connection (it changes at failover)."""
        return self._raw

    # -- the asyncpg API, with failover -------------------------------------------------------------

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        self._busy_since = monotonic()
        try:
            return await self._raw.execute(query, *args, timeout=timeout)
        except Exception as exc:
            await self._failed(exc)
            raise
        finally:
            self._busy_since = None

    async def executemany(self, command: str, args: Iterable[Any], *, timeout: float | None = None) -> None:
        self._busy_since = monotonic()
        try:
            return await self._raw.executemany(command, args, timeout=timeout)
        except Exception as exc:
            await self._failed(exc)
            raise
        finally:
            self._busy_since = None

    async def fetch(
        self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None
    ) -> list[Any]:
        self._busy_since = monotonic()
        try:
            rows: list[Any] = await self._raw.fetch(query, *args, timeout=timeout, record_class=record_class)
            return rows
        except Exception as exc:
            await self._failed(exc)
            raise
        finally:
            self._busy_since = None

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None
    ) -> Any:
        self._busy_since = monotonic()
        try:
            return await self._raw.fetchrow(query, *args, timeout=timeout, record_class=record_class)
        except Exception as exc:
            await self._failed(exc)
            raise
        finally:
            self._busy_since = None

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        self._busy_since = monotonic()
        try:
            return await self._raw.fetchval(query, *args, column=column, timeout=timeout)
        except Exception as exc:
            await self._failed(exc)
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

    def cursor(self, query: str, *args: Any, **kwargs: Any) -> Any:
        """asyncpg's cursor factory on the current connection (inside a transaction, as in asyncpg)."""
        return self._raw.cursor(query, *args, **kwargs)

    def transaction(
        self, *, isolation: str | None = None, readonly: bool = False, deferrable: bool = False
    ) -> AuroraTransaction:
        return AuroraTransaction(self, isolation=isolation, readonly=readonly, deferrable=deferrable)

    async def reset(self, *, timeout: float | None = None) -> None:
        """asyncpg's ``reset()``: roll back an open transaction, drop session settings, listeners and
        advisory locks (what a pool does on release). Listeners added here are forgotten too."""
        self._listeners.clear()
        await self._guard(self._raw.reset, timeout=timeout)

    async def add_listener(self, channel: str, callback: Listener) -> None:
        await self._guard(self._raw.add_listener, channel, callback)
        self._listeners.append((channel, callback))

    async def remove_listener(self, channel: str, callback: Listener) -> None:
        if (channel, callback) in self._listeners:
            self._listeners.remove((channel, callback))
        await self._guard(self._raw.remove_listener, channel, callback)

    def _closed_error(self) -> Exception:
        return asyncpg.InterfaceError("connection is closed")

    async def _restore_session(self, raw: asyncpg.Connection) -> None:
        for channel, callback in self._listeners:
            await raw.add_listener(channel, callback)

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

    A failure inside the block, or at COMMIT, raises ``TransactionResolutionUnknownError``; the block
    then exits without touching the (new) connection, since the transaction lived on the old one.
    """

    def __init__(self, conn: AuroraConnection, **options: Any) -> None:
        self._conn = conn
        self._options = options
        self._raw: asyncpg.Connection | None = None
        self._tx: Any = None

    async def start(self) -> None:
        self._raw = self._conn.raw
        self._tx = self._raw.transaction(**self._options)
        await self._conn._guard(self._tx.start)

    def _still_on_its_connection(self) -> bool:
        return self._raw is not None and self._raw is self._conn.raw

    async def commit(self) -> None:
        if not self._still_on_its_connection():
            raise asyncpg.InterfaceError("cannot commit: the transaction's connection failed over")
        await self._conn._guard(self._tx.commit)

    async def rollback(self) -> None:
        if self._still_on_its_connection():
            await self._conn._guard(self._tx.rollback)

    async def __aenter__(self) -> AuroraTransaction:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._still_on_its_connection():
            return  # the transaction died with its connection; the error in flight says so
        if exc is None:
            await self.commit()
        else:
            await self.rollback()
