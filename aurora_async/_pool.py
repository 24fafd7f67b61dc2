"""``create_pool()``: a pool of failover-aware connections with asyncpg's pool API, on both engines.

Every pooled connection is a facade (:class:`AuroraConnection` for PostgreSQL,
:class:`AuroraMySQLConnection` for MySQL) of the same cluster, so one topology monitor
and one writer search serve the whole pool. A connection that raised ``FailoverSuccessError`` is on the
new instance and goes back to the pool usable. When the cluster sees a new writer, idle connections
still on the demoted instance (or closed under the pool by the connection tracker) are retired at
their next checkout and replaced by connections to the new writer; ``stats()`` counts them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, overload

from ._cluster import Cluster
from ._concurrency import AwaitableContext
from ._config import Config, parse
from ._connect import _FACADES, _open
from ._events import PoolConnectionRetired
from ._exceptions import ConfigurationError
from ._plugins import Plugin
from .mysql.connection import AuroraMySQLConnection
from .postgresql.connection import AuroraConnection

log = logging.getLogger("aurora_async.pool")

C = TypeVar("C", AuroraConnection, AuroraMySQLConnection)


class AuroraPool(Generic[C]):
    """A pool of :class:`AuroraConnection` or :class:`AuroraMySQLConnection` (create it with
    :func:`create_pool`).

    ``async with pool.acquire() as conn:`` (or ``conn = await pool.acquire()`` and
    ``await pool.release(conn)``); ``await pool.close()`` waits for acquired connections to come back,
    ``pool.terminate()`` closes everything at once.
    """

    def __init__(
        self, config: Config, *, min_size: int, max_size: int, acquire_timeout: float | None
    ) -> None:
        self._config = config
        self._min_size = min_size
        self._max_size = max_size
        self._acquire_timeout = acquire_timeout
        self._slots = asyncio.Semaphore(max_size)
        self._idle: collections.deque[C] = collections.deque()
        self._in_use: set[C] = set()
        self._returned = asyncio.Event()
        self._retired = 0
        self._opened = 0
        self._closing = False
        self._closed = False
        self._cluster: Cluster | None = None  # held for the pool's life: the topology outlives retirements
        self._facade: type[C] = _FACADES[config.engine]  # type: ignore[assignment]

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<AuroraPool {self._config.host}:{self._config.port} size={stats['size']} idle={stats['idle']} "
            f"in_use={stats['in_use']}{' closed' if self._closed else ''}>"
        )

    async def _start(self) -> AuroraPool[C]:
        try:
            first = await self._open()  # one first: the cluster's dialect and topology, once
            self._cluster = first._cluster.acquire(self._config.identity)
            self._cluster.events.watch_pool(self)
            rest: list[C] = await asyncio.gather(*(self._open() for _ in range(self._min_size - 1)))
        except BaseException:
            self.terminate()
            raise
        self._idle.append(first)
        self._idle.extend(rest)  # min_size connections, or the first one when min_size is 0
        return self

    async def _open(self) -> C:
        cluster, raw, instance = await _open(self._config)
        self._opened += 1
        return self._facade(cluster, self._config, raw, instance)

    # -- checkout ----------------------------------------------------------------------------------

    def acquire(self, *, timeout: float | None = None, read_only: bool = False) -> AwaitableContext[C]:
        """A connection: ``await pool.acquire()`` or ``async with pool.acquire() as conn``.

        :param timeout: seconds to wait for a free slot (default: the pool's ``acquire_timeout``;
            None waits as long as it takes); raises ``TimeoutError``.
        :param read_only: with the ``read_write_splitting`` plugin, a connection moved to a reader
            (it moves back to the writer when released).
        """
        if read_only and not self._config.options.has(Plugin.READ_WRITE_SPLITTING):
            raise ConfigurationError("acquire(read_only=True) needs the 'read_write_splitting' plugin")
        timeout = self._acquire_timeout if timeout is None else timeout
        return AwaitableContext(lambda: self._acquire(timeout, read_only), self._release_after_block)

    async def _acquire(self, timeout: float | None, read_only: bool = False) -> C:
        conn = await self._checkout(timeout)
        if read_only:
            try:
                await conn.set_read_only(True)
            except BaseException:
                await self.release(conn)
                raise
        return conn

    async def _checkout(self, timeout: float | None) -> C:
        if self._closing:
            raise RuntimeError("the pool is closing")
        async with asyncio.timeout(timeout):
            await self._slots.acquire()
        try:
            conn = self._take_idle() or await self._open()
        except BaseException:
            self._slots.release()
            raise
        self._in_use.add(conn)
        return conn

    def _take_idle(self) -> C | None:
        while self._idle:
            conn = self._idle.popleft()
            closed = conn.is_closed() or conn.raw.is_closed()
            if closed or self._stale(conn):
                self._retired += 1
                log.debug("retired %r (its instance is no longer the one it should be on)", conn)
                conn._cluster.events.emit(
                    PoolConnectionRetired,
                    instance=conn.instance.instance_id,
                    reason="closed" if closed else "wrong_role",
                )
                conn.terminate()
                continue
            return conn
        return None

    def _stale(self, conn: C) -> bool:
        """Is an idle connection on an instance that no longer has its role (a demoted writer)?"""
        cluster: Cluster = conn._cluster
        topology = cluster.topology
        if topology is None or topology.writer is None:
            return False
        if cluster.dialect is None or not cluster.dialect.has_topology:
            return False  # one instance, listed under a placeholder id: nowhere else to be
        on_writer = conn.instance.instance_id == topology.writer.instance_id
        members, now = conn.custom_endpoint, topology.get(conn.instance.instance_id)
        if members is not None and now is not None and not members.allows(now):
            return True  # left its custom endpoint's instances (a READER endpoint's replica promoted)
        modes = conn._home_modes()  # an Aurora Global Database: where its home-region mode allows
        if modes is not None and now is not None:
            return not modes.target(topology.writer).allows(now)
        mode = conn._default_mode  # failover_mode, or the one its custom endpoint's type asks for
        return (mode == "strict_writer" and not on_writer) or (mode == "strict_reader" and on_writer)

    async def release(self, conn: C) -> None:
        """Give ``conn`` back: its session is reset (PostgreSQL: asyncpg's ``reset()``, so an open
        transaction rolled back, settings, listeners and advisory locks dropped; MySQL:
        :meth:`AuroraMySQLConnection.reset`, so an open transaction rolled back, user variables,
        temporary tables, prepared statements, locks and session settings dropped, the connect-time
        settings applied again); a broken connection is dropped."""
        if conn not in self._in_use:
            raise ValueError(f"{conn!r} was not acquired from this pool")
        self._in_use.discard(conn)
        try:
            if self._closed or conn.is_closed() or conn.raw.is_closed():
                conn.terminate()
            else:
                try:
                    if conn.read_only:
                        await conn.set_read_only(False)
                    await conn.reset()
                except Exception:  # a connection that cannot be reset is not worth keeping
                    conn.terminate()
                else:
                    self._idle.append(conn)
        finally:
            self._slots.release()
            self._returned.set()

    # -- lifetime ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Connection counts: ``size`` (idle + in use), ``idle``, ``in_use``, ``retired_by_failover``,
        ``opened`` (in all), ``min_size``, ``max_size``."""
        return {
            "size": len(self._idle) + len(self._in_use),
            "idle": len(self._idle),
            "in_use": len(self._in_use),
            "retired_by_failover": self._retired,
            "opened": self._opened,
            "min_size": self._min_size,
            "max_size": self._max_size,
        }

    async def _release_after_block(self, conn: C, exc: BaseException | None) -> None:
        await self.release(conn)

    async def close(self) -> None:
        """Wait for every acquired connection to be released, then close them all."""
        self._closing = True
        while self._in_use:
            self._returned.clear()
            await self._returned.wait()
        self._closed = True
        idle, self._idle = list(self._idle), collections.deque()
        await asyncio.gather(*(conn._close(None) for conn in idle))
        await self._release_cluster()

    def terminate(self) -> None:
        """Close every connection at once, acquired ones included."""
        self._closing = self._closed = True
        for conn in [*self._idle, *self._in_use]:
            conn.terminate()
        self._idle.clear()
        self._in_use.clear()
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            cluster.release(self._config.identity)

    async def _release_cluster(self) -> None:
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            await cluster.release_and_wait(self._config.identity)

    async def __aenter__(self) -> AuroraPool[C]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


@overload
def create_pool(
    dsn: str | None = None,
    *,
    engine: Literal["postgresql"],
    min_size: int = 1,
    max_size: int = 10,
    acquire_timeout: float | None = None,
    **options: Any,
) -> AwaitableContext[AuroraPool[AuroraConnection]]: ...


@overload
def create_pool(
    dsn: str | None = None,
    *,
    engine: Literal["mysql"],
    min_size: int = 1,
    max_size: int = 10,
    acquire_timeout: float | None = None,
    **options: Any,
) -> AwaitableContext[AuroraPool[AuroraMySQLConnection]]: ...


@overload
def create_pool(
    dsn: str | None = None,
    *,
    min_size: int = 1,
    max_size: int = 10,
    acquire_timeout: float | None = None,
    **options: Any,
) -> AwaitableContext[AuroraPool[Any]]: ...


def create_pool(
    dsn: str | None = None,
    *,
    min_size: int = 1,
    max_size: int = 10,
    acquire_timeout: float | None = None,
    **options: Any,
) -> AwaitableContext[AuroraPool[Any]]:
    """A pool of failover-aware connections: ``pool = await create_pool(dsn, ...)`` or
    ``async with create_pool(dsn, ...) as pool``. A ``postgresql://`` DSN gives a pool of
    :class:`AuroraConnection` (asyncpg API), a ``mysql://`` DSN one of :class:`AuroraMySQLConnection`
    (aiomysql API); ``engine="postgresql"`` / ``engine="mysql"`` also tells a type checker which.

    :param min_size: connections opened at start.
    :param max_size: at most this many connections at once; ``acquire()`` waits for a free one.
    :param acquire_timeout: default seconds ``acquire()`` waits (None: no limit).
    :param options: as for :func:`aurora_async.connect` (DSN options, plugins, asyncpg arguments).
    :raises ConfigurationError: bad options or sizes, before any network I/O.
    """
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise ConfigurationError(f"min_size must be a whole number >= 0, not {min_size!r}")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < max(1, min_size):
        raise ConfigurationError(f"max_size must be a whole number >= max(1, min_size), not {max_size!r}")
    if acquire_timeout is not None and not acquire_timeout > 0:
        raise ConfigurationError(
            f"acquire_timeout must be a positive number of seconds, not {acquire_timeout!r}"
        )
    config = parse(dsn, **options)
    pool: AuroraPool[Any] = AuroraPool(
        config, min_size=min_size, max_size=max_size, acquire_timeout=acquire_timeout
    )
    return AwaitableContext(pool._start, _close_pool)


async def _close_pool(pool: AuroraPool[Any], exc: BaseException | None) -> None:
    await pool.close()
