"""The part of a connection facade that survives failover, whatever the driver.

A call goes straight to the driver. Only when the driver raises does the session look at the error: a
connection-level failure (or, in ``strict_writer`` mode, a read-only error) starts a failover, which
swaps in a connection to the right instance and raises ``FailoverSuccessError`` or
``TransactionResolutionUnknownError``; any other error passes through untouched. The asyncpg facade
(:class:`AuroraConnection`) and the aiomysql facade (:class:`AuroraMySQLConnection`) add the driver's
API on top.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

from ._cluster import Cluster
from ._concurrency import Interrupted, unless_set
from ._config import Config
from ._driver import discard, discard_first
from ._exceptions import (
    ConfigurationError,
    FailoverFailedError,
    FailoverSuccessError,
    ReadWriteSplittingError,
    TransactionResolutionUnknownError,
)
from ._failover import connect_in_role, connect_to_reader, connect_to_writer, order_readers
from ._identity import LoginRefused
from ._topology import Instance, Role

monotonic = time.monotonic

failover_log = logging.getLogger("aurora_async.failover")


class FailoverSession:
    """A physical connection to the cluster that is replaced, on failure, by one to the right instance."""

    def __init__(self, cluster: Cluster, config: Config, raw: Any, instance: Instance) -> None:
        self._cluster = cluster
        self._config = config
        self._identity = config.identity  # who this connection is: every physical connection opened for it
        self._driver = cluster.driver
        self._raw = raw
        self._instance = instance
        self._mode = config.options.failover_mode
        self._failover = config.options.has("failover")
        self._tracker_plugin = config.options.has("aurora_connection_tracker")
        self._closed = False
        self._closing = asyncio.Event()  # set with _closed: a failover in flight stops waiting
        self._loop = asyncio.get_running_loop()
        self._failed_from = ""
        self._failover_lock = asyncio.Lock()
        self._busy_since: float | None = None  # when the call in flight started (host monitoring)
        self._aborted_in_transaction: tuple[Any, bool] | None = None
        self._monitored = config.options.has("host_monitoring") and cluster.dialect is not None
        self._read_only = False
        self._spare: tuple[Any, Instance] | None = None  # the other role's connection
        # the open transaction block (asyncpg transaction(), aiomysql begin()) began on this physical
        # connection; lost: the connection failed over inside it, so its work is gone and every call
        # is refused until the block ends (else the block's later statements would commit on their own)
        self._block_raw: Any | None = None
        self._block_lost = False
        self._watching = False
        self._raw_protocol: tuple[Any, Any] = (None, None)
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
        except self._driver.connect_errors:
            self._raw.terminate()
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

    def __del__(self, _warn: Any = warnings.warn) -> None:
        """A connection dropped without close(): say so (as asyncpg does), and let its physical
        connection and its cluster go, on the loop, rather than keep them until the loop ends."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        _warn(f"unclosed connection {self!r}: close it (await conn.close())", ResourceWarning, source=self)
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

    # -- read/write splitting ------------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """Whether the session was moved to a reader with :meth:`set_read_only`."""
        return self._read_only

    async def set_read_only(self, read_only: bool) -> None:
        """Move the session to a reader (``True``) or back to the writer (``False``); needs the
        ``read_write_splitting`` plugin.

        The reader is chosen by ``reader_host_selector_strategy`` (``random``, ``round_robin``,
        ``least_connections``); the other role's physical connection is kept and reused on the next
        switch. With no reader reachable the session stays on the writer. Session state set with
        ``SET`` does not follow (each physical connection has its own).

        :raises ReadWriteSplittingError: inside a transaction (it lives on the current connection).
        """
        if not self._config.options.has("read_write_splitting"):
            raise ConfigurationError("set_read_only() needs the 'read_write_splitting' plugin")
        if self._closed:
            raise self._closed_error()
        read_only = bool(read_only)
        if read_only == self._read_only:
            return
        if self.is_in_transaction():
            raise ReadWriteSplittingError(
                f"cannot switch to {'a reader' if read_only else 'the writer'} inside a transaction: "
                "commit or roll back first"
            )
        async with self._failover_lock:
            wanted = Role.READER if read_only else Role.WRITER
            if self._instance.role is wanted:  # already there (a read-only session left on the writer)
                self._read_only = read_only
                self._mode = "reader_or_writer" if read_only else self._config.options.failover_mode
                return
            target = self._reusable_spare(wanted) or await self._open_in_role(wanted)
            if target is None:  # no reader reachable: stay on the writer, read-only in name
                self._read_only = read_only
                failover_log.info("no reader reachable: the read-only session stays on the writer")
                return
            self._untrack()
            self._drop_spare()
            self._spare = (self._raw, self._instance)  # the other role's, kept for the way back
            self._raw, self._instance = target
            self._read_only = read_only
            self._mode = "reader_or_writer" if read_only else self._config.options.failover_mode
            self._watch()

    def _reusable_spare(self, role: Role) -> tuple[Any, Instance] | None:
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        raw, instance = spare
        topology = self._cluster.topology
        known = topology.get(instance.instance_id) if topology is not None else None
        if (
            raw.is_closed()
            or known is None
            or known.role is not role
            or instance.instance_id in self._cluster.down
        ):
            discard(raw)
            return None
        return raw, known

    async def _open_in_role(self, role: Role) -> tuple[Any, Instance] | None:
        """A physical connection in ``role`` for :meth:`set_read_only` (None: no reader reachable).

        :raises ReadWriteSplittingError: no writer within ``failover_timeout`` (the session stays).
        :raises: the driver's login error when the server refuses this connection's login."""
        loop = asyncio.get_running_loop()
        options = self._config.options
        deadline = loop.time() + options.failover_timeout
        try:
            if role is Role.WRITER:
                return await connect_to_writer(self._cluster, self._identity, 0.0, deadline)
            topology = self._cluster.topology
            readers = [
                r for r in (topology.readers if topology else ()) if r.instance_id not in self._cluster.down
            ]
            for reader in order_readers(readers, self._cluster, options.reader_host_selector_strategy):
                raw = await connect_in_role(
                    self._cluster, self._identity, reader, Role.READER, self._identity.connect_timeout
                )
                if raw is not None:
                    return raw, reader
            return None
        except LoginRefused as refused:
            raise refused.__cause__ or refused from None  # as at connect: the driver's own login error
        except TimeoutError:
            raise ReadWriteSplittingError(
                f"no writer could be reached within failover_timeout={options.failover_timeout:g} s; "
                "the session stays on its reader"
            ) from None

    # -- transaction blocks ------------------------------------------------------------------------

    def _block_lost_error(self) -> TransactionResolutionUnknownError:
        return TransactionResolutionUnknownError(
            "the transaction this block opened was lost: the connection failed over inside it, so none of "
            "its work was committed; leave the block (or roll it back) and re-run the whole transaction"
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

    # -- failover ----------------------------------------------------------------------------------

    async def _guard(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._block_lost:
            raise self._block_lost_error()
        self._busy_since = monotonic()
        try:
            return await method(*args, **kwargs)
        except Exception as exc:
            await self._failed(exc)
            raise
        finally:
            self._busy_since = None

    async def _failed(self, exc: Exception) -> None:
        """Fail over if ``exc`` calls for it (raising the outcome); return to let ``exc`` propagate."""
        raw = self._raw
        if not self._failover or self._closed:
            return
        driver = self._driver
        if not driver.is_connection_error(exc, raw) and not (
            self._mode == "strict_writer" and driver.is_read_only_error(exc)
        ):
            return
        async with self._failover_lock:
            if self._closed:  # closed while this call waited for another call's failover
                raise self._closed_error() from exc
            if self._raw is not raw:  # another call on this connection already failed over
                raise FailoverSuccessError(
                    "the connection has changed instance; re-run the statement",
                    may_have_run=driver.may_have_taken_effect(exc),
                ) from exc
            in_transaction = self._in_transaction(raw)
            if self._block_raw is not None and self._block_raw is raw:
                self._block_lost = True
            elif in_transaction:
                self._transaction_lost()
            await self._fail_over(exc)
        if in_transaction:
            raise TransactionResolutionUnknownError(
                f"the connection to {self._failed_from} failed inside a transaction (or during its COMMIT), "
                f"so its outcome is unknown; it is now on {self._instance.instance_id}: re-run the whole "
                "transaction"
            ) from exc
        raise FailoverSuccessError(
            f"the connection to {self._failed_from} failed and is now on {self._instance.instance_id} "
            f"({self._instance.role.value}); re-apply session state and re-run the statement",
            may_have_run=driver.may_have_taken_effect(exc),
        ) from exc

    async def _fail_over(self, cause: Exception) -> None:
        old = self._instance
        self._failed_from = old.instance_id
        self._untrack()
        discard(self._raw)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        options = self._config.options
        deadline = loop.time() + options.failover_timeout
        try:
            raw, instance = await unless_set(
                self._closing, self._reconnect(old, started, deadline), discard=discard_first
            )
        except Interrupted:
            # close() or terminate() while failing over: the connection stays closed, and the call
            # that started the failover is told so, as asyncpg tells a call whose connection closed
            failover_log.info("failover from %s stopped: the connection was closed", old.instance_id)
            raise self._closed_error() from cause
        except LoginRefused as refused:
            self._give_up()
            failover_log.warning("failover from %s failed: %s", old.instance_id, refused)
            raise FailoverFailedError(
                f"failover from {old.instance_id} reached {self._target_word()}, but the server refused the "
                "login of this connection's user (was its password changed?); the connection is closed"
            ) from refused.__cause__
        except TimeoutError:
            self._give_up()
            failover_log.warning(
                "failover from %s failed: no %s within %.1f s",
                old.instance_id,
                self._target_word(),
                options.failover_timeout,
            )
            raise FailoverFailedError(
                f"no {self._target_word()} could be reached within "
                f"failover_timeout={options.failover_timeout:g} s; the connection is closed"
            ) from cause
        self._raw, self._instance = raw, instance
        self._watch()
        async with asyncio.timeout(self._config.options.auxiliary_query_timeout):
            await self._restore_session(raw)
        failover_log.info(
            "failed over from %s to %s (%s) in %.0f ms",
            old.instance_id,
            instance.instance_id,
            instance.role.value,
            (time.monotonic() - started) * 1000,
        )

    async def _reconnect(self, old: Instance, started: float, deadline: float) -> tuple[Any, Instance]:
        """A physical connection, as this connection's identity, to an instance in its role."""
        if self._mode == "strict_writer":
            return await connect_to_writer(self._cluster, self._identity, started, deadline)
        raw, instance = await connect_to_reader(
            self._cluster,
            self._identity,
            self._mode,
            strategy=self._config.options.reader_host_selector_strategy,
            avoid=old.instance_id,
            deadline=deadline,
        )
        try:
            return raw, await self._cluster.identify(raw, instance.host, instance.port)
        except BaseException:
            discard(raw)
            raise

    def _target_word(self) -> str:
        return "writer" if self._mode == "strict_writer" else "reader"

    def _give_up(self) -> None:
        """A failover failed: the connection is closed, and lets its cluster go (unless a close()
        during the failover already did)."""
        if not self._closed:
            self._mark_closed()
            self._drop_spare()
            self._cluster.release(self._identity)

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
        self._cluster.load[self._instance.instance_id] += 1
        if self._track:
            self._cluster.tracker.add(self._instance.instance_id, self._raw)
        if self._monitored:
            self._cluster.host_monitor(self._instance).add(self)

    # -- what the host monitor asks ------------------------------------------------------------------

    def busy_for(self, now: float) -> float | None:
        """Seconds the call in flight has run (None when idle)."""
        return None if self._busy_since is None else now - self._busy_since

    def abort_physical(self) -> None:
        """The host is dead: drop the physical connection, so a call in flight raises a connection
        error (and the next call finds it closed) and failover takes over."""
        raw = self._raw
        if not raw.is_closed():
            self._aborted_in_transaction = (raw, bool(raw.is_in_transaction()))
            raw.terminate()

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
