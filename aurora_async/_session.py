"""A connection facade's session, whatever the driver: its physical connection and its lifetime.

A :class:`Session` holds the current physical connection and what this connection is (its identity,
instance and mode); it registers the physical connection with the cluster (load, connection tracker,
host monitor), guards calls (``_guard``), tracks the transaction block open on it, and closes,
terminates or, dropped unclosed, warns and lets its cluster go. What a failure of a call leads to is
``_failover``'s (:class:`aurora_async._failover.FailoverSession`); moving between writer and reader
is ``_read_write``'s. The asyncpg facade (``postgresql.connection``) and the aiomysql facade
(``mysql.connection``) add the driver's API on top.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._cluster import Cluster
from ._config import Config
from ._custom_endpoint import Membership, membership_of, mode_of
from ._driver import RawConnection, discard
from ._exceptions import TransactionResolutionUnknownError
from ._global_failover import GlobalTarget, home_region_of
from ._plugins import Plugin
from ._rds_proxy import behind_proxy
from ._settle import ServerSession
from ._topology import Instance, Role

T = TypeVar("T")


class Session:
    """A facade's physical connection to the cluster and its lifetime (see the module docstring)."""

    def __init__(self, cluster: Cluster, config: Config, raw: Any, instance: Instance) -> None:
        self._config = config
        self._identity = config.identity  # who this connection is: every physical connection opened for it
        # failover_mode, or the one a custom endpoint's type asks for (its members: custom_endpoint)
        self._default_mode = mode_of(
            cluster.custom_endpoints,
            config.custom_endpoint,
            config.options.failover_mode,
            mode_given=config.failover_mode_given,
        )
        # an Aurora Global Database's home region (``_global_failover``): given, the host name's, or
        # the global writer's now, when the connection opens (None: no region is known)
        self._home_region = home_region_of(config.options, config.host, cluster.topology, instance)
        if config.options.failover_home_region is not None:
            cluster.check_home_region(config.options.failover_home_region)
        self._failover = config.options.has(Plugin.FAILOVER)
        self._tracker_plugin = config.options.has(Plugin.AURORA_CONNECTION_TRACKER)
        self._loop = asyncio.get_running_loop()
        self._clock = self._loop.time  # the one clock (host monitors compare busy_since with it)
        self._failover_lock = asyncio.Lock()
        self._busy_since: float | None = None  # when the call in flight started (host monitoring)
        self._spare: tuple[Any, Instance] | None = None  # the other role's connection
        self._watching = False
        self._raw_protocol: tuple[Any, Any] = (None, None)
        # the current physical connection's server session, kept to settle an unknown outcome
        # (``_settle``); not through an RDS Proxy, whose session ids name its own pooled connections
        self._direct = not behind_proxy(config.options, config.host)
        self._server_session: ServerSession | None = None
        self._attach(cluster, raw, instance)

    def _attach(self, cluster: Cluster, raw: Any, instance: Instance) -> None:
        """Begin this connection's life on ``raw`` (reaching ``instance``) in ``cluster``: open, in its
        default mode, with no transaction block, and registered (:meth:`_watch`)."""
        self._cluster = cluster
        self._driver = cluster.driver
        self._raw = raw
        self._instance = instance
        self._mode = self._default_mode
        self._read_only = False
        self._closed = False
        self._closing = asyncio.Event()  # set with _closed: a failover in flight stops waiting
        self._failed_from = ""
        self._target: GlobalTarget | None = None  # the home-region mode the last failover ran in
        # the physical connection whose failure lost a transaction: a call that failed on it too, and
        # waited for that failover, is told its transaction's outcome is unknown as well
        self._lost_transaction_on: RawConnection | None = None
        self._aborted_in_transaction: tuple[Any, bool] | None = None
        self._monitored = self._config.options.has(Plugin.HOST_MONITORING) and cluster.dialect is not None
        # the open transaction block (asyncpg transaction(), aiomysql begin()) began on this physical
        # connection; lost: the connection failed over inside it, so its work is gone and every call
        # is refused until the block ends (else the block's later statements would commit on their own)
        self._block_raw: Any | None = None
        self._block_lost = False
        self._watch()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"on {self._instance.instance_id} ({self._instance.role.value})"
        return f"<{type(self).__name__} {state} {self._instance.endpoint}>"

    def __getattr__(self, name: str) -> Any:
        """Anything the facade does not define is read from the current driver connection."""
        if name.startswith("__") or name in ("_raw", "_cluster"):
            raise AttributeError(name)
        return getattr(self._raw, name)

    @property
    def instance(self) -> Instance:
        """The instance this connection is on now."""
        return self._instance

    @property
    def custom_endpoint(self) -> Membership | None:
        """The custom endpoint this connection came through, with its members as known now (None: it
        came through another endpoint): every instance it is placed on is allowed by it."""
        return membership_of(self._cluster.custom_endpoints, self._config.custom_endpoint)

    @property
    def role(self) -> Role:
        return self._instance.role

    def is_closed(self) -> bool:
        return self._closed or (self._raw.is_closed() and not self._failover)

    def is_in_transaction(self) -> bool:
        return not self._raw.is_closed() and bool(self._raw.is_in_transaction())

    def _closed_error(self) -> Exception:
        """The driver's exception for a call on a closed connection."""
        raise NotImplementedError

    async def _restore_session(self, raw: Any) -> None:
        """Re-apply, on a new physical connection, the session state the facade tracks."""

    async def _close_raw(self, timeout: float | None) -> None:
        """Close the physical connection politely (the driver's way)."""
        raise NotImplementedError

    async def _close(self, timeout: float | None) -> None:
        """Close the connection; the cluster's background work stops with its last connection."""
        if self._closed:
            return
        self._mark_closed()
        self._untrack()
        self._drop_spare()
        try:
            await self._close_raw(timeout)
        except self._driver.connect_errors as exc:
            self._raw.terminate()  # a server that is gone, or slow to say goodbye: closed all the same
            if timeout is not None and isinstance(exc, TimeoutError):
                raise  # ... but a close(timeout=) that ran out says so, as the driver does
        finally:
            await self._cluster.release_and_wait(self._identity)

    def terminate(self) -> None:
        """Close at once, without a goodbye to the server."""
        if not self._closed:
            self._mark_closed()
            self._untrack()
            self._drop_spare()
            self._raw.terminate()
            self._cluster.release(self._identity)

    def _mark_closed(self) -> None:
        self._closed = True
        self._closing.set()

    def _start_over(self, cluster: Cluster, raw: Any, instance: Instance) -> None:
        """Carry on, open, on ``raw`` (reaching ``instance``), a physical connection opened by the
        application's connect path, which holds a reference to ``cluster`` for this connection: the
        connection's previous physical connection (if it was not closed) and the cluster reference it
        held are let go; its session state is the caller's to restore. (aiomysql's
        ``ping(reconnect=True)``.)"""
        if not self._closed:
            self._untrack()
            self._drop_spare()
            discard(self._raw)
            self._cluster.release(self._identity)
        self._attach(cluster, raw, instance)

    def __del__(self, _warn: Any = warnings.warn) -> None:
        """A connection dropped without close(): say so (as asyncpg does; not when it reports itself
        closed, its server gone and no failover to replace it), and let its physical connection and
        its cluster go, on the loop, rather than keep them until the loop ends."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        if not (self._raw.is_closed() and not self._failover):  # (one whose server hung up is closed)
            _warn(
                f"unclosed connection {self!r}: close it (await conn.close())", ResourceWarning, source=self
            )
        loop, cluster, identity = self._loop, self._cluster, self._identity
        raws = [self._raw] + ([self._spare[0]] if self._spare is not None else [])
        counted = self._instance.instance_id if self._watching else None

        def let_go() -> None:
            for raw in raws:
                discard(raw)
            if counted is not None:
                cluster.load[counted] -= 1
            cluster.release(identity)

        if not loop.is_closed():
            loop.call_soon(let_go)

    # -- transaction blocks ------------------------------------------------------------------------

    #: how the application ends a lost transaction, in the engine facade's own API
    _END_LOST_BLOCK = "leave the block (or roll it back)"

    def _block_lost_error(self) -> TransactionResolutionUnknownError:
        return self._driver.failover_error(
            TransactionResolutionUnknownError,
            "the transaction this block opened was lost: the connection failed over inside it, so none of "
            f"its work was committed; {self._END_LOST_BLOCK} and re-run the whole transaction",
        )

    def _transaction_lost(self) -> None:
        """A failover cut off a transaction that no block of the facade tracks (raw SQL, or MySQL's
        implicit transactions with autocommit off): the engine facade may guard what follows."""

    def _begin_block(self, raw: Any) -> None:
        """An outermost transaction block began on ``raw``."""
        self._block_raw, self._block_lost = raw, False

    def _end_block(self) -> bool:
        """The outermost block ended; returns whether it had been lost."""
        lost = self._block_lost
        self._block_raw, self._block_lost = None, False
        return lost

    # -- calls ----------------------------------------------------------------------------------

    async def _guard(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)`` with failover. A method of the physical connection may be made
        again on the new one (:meth:`_failed`); any other call (a transaction's, a cursor's) is not."""
        if self._block_lost:
            raise self._block_lost_error()
        if self._cluster.blue_green.holding:
            await self._hold()
        raw = self._raw
        self._busy_since = self._clock()
        try:
            while True:
                try:
                    return await method(*args, **kwargs)
                except Exception as exc:
                    if not await self._failed(exc, again=getattr(method, "__self__", None) is raw):
                        raise
                    raw = self._raw
                    method = getattr(raw, method.__name__)
        finally:
            self._busy_since = None

    async def _guard_call(self, call: Callable[[], Awaitable[T]], *, again: bool = True) -> T:
        """``await call()`` with failover; ``call`` makes the call on the current physical connection,
        so that it can be made again on the next one (``again``: see :meth:`_failed`)."""
        if self._block_lost:
            raise self._block_lost_error()
        if self._cluster.blue_green.holding:
            await self._hold()
        self._busy_since = self._clock()
        try:
            while True:
                try:
                    return await call()
                except Exception as exc:
                    if not await self._failed(exc, again=again):
                        raise
        finally:
            self._busy_since = None

    async def _hold(self) -> None:
        """A blue/green switchover is under way: a call outside a transaction, on a connection running
        the ``bg`` plugin, waits until it is over (``_blue_green``)."""
        if not self._config.options.has(Plugin.BLUE_GREEN) or self._closed:
            return
        if self._block_raw is not None or self.is_in_transaction():
            return  # it goes on: its transaction should end before the switchover drops connections
        await self._cluster.blue_green.wait()

    async def _failed(self, exc: Exception, *, again: bool = False) -> bool:
        """A call raised ``exc``: fail over if it calls for that (raising the outcome), else return
        False and let ``exc`` propagate. True: the call surely did not run and a blue/green switchover
        moved the connection; make it again (only when ``again``: the caller can make it on the new
        physical connection). Without failover (this base), always False."""
        return False

    @property
    def _track(self) -> bool:
        """Whether the tracker holds this connection: only while it is meant to be on the writer."""
        return self._tracker_plugin and self._mode == "strict_writer"

    def _untrack(self) -> None:
        """Undo :meth:`_watch` (idempotent: a close during a failover must not count twice)."""
        if not self._watching:
            return
        self._watching = False
        if self._track:
            self._cluster.tracker.remove(self._instance.instance_id, self._raw)
        if self._monitored:
            self._cluster.host_monitor(self._instance).remove(self)
        self._cluster.load[self._instance.instance_id] -= 1

    def _drop_spare(self) -> None:
        if self._spare is not None:
            discard(self._spare[0])
            self._spare = None

    def _watch(self) -> None:
        """Register the current physical connection (load, tracker, host monitor); once per connection."""
        if self._watching:
            return
        self._watching = True
        # asyncpg drops its protocol at terminate(), and with it the transaction status: keep it
        self._raw_protocol = (self._raw, getattr(self._raw, "_protocol", None))
        if self._direct:
            self._server_session = ServerSession(self._driver.session_id(self._raw), self._clock())
        self._cluster.load[self._instance.instance_id] += 1
        if self._track:
            self._cluster.tracker.add(self._instance.instance_id, self._raw)
        if self._monitored:
            self._cluster.host_monitor(self._instance).add(self)

    # -- what the host monitor asks ------------------------------------------------------------------

    def busy_for(self, now: float) -> float | None:
        """Seconds the call in flight has run (None when idle)."""
        return None if self._busy_since is None else now - self._busy_since

    def abort_physical(self) -> bool:
        """The host is dead: drop the physical connection, so a call in flight raises a connection
        error (and the next call finds it closed) and failover takes over. Whether it was open."""
        raw = self._raw
        if raw.is_closed():
            return False
        self._aborted_in_transaction = (raw, bool(raw.is_in_transaction()))
        raw.terminate()
        return True

    def _in_transaction(self, raw: Any) -> bool:
        """Whether ``raw`` was inside a transaction when it failed, as of the server's last status
        (asyncpg forgets once it is terminated: then what we saw when aborting it, or its protocol's
        last status, or "yes" when unknown, the cautious answer)."""
        aborted = self._aborted_in_transaction
        if aborted is not None and aborted[0] is raw:
            return aborted[1]
        try:
            return bool(raw.is_in_transaction())
        except AttributeError:
            kept, protocol = self._raw_protocol
            if kept is raw and protocol is not None:
                return bool(protocol.is_in_transaction())
            return True
