"""Failover: what a failed call leads to, and the reconnect, for one connection.

A call goes straight to the driver. Only when the driver raises does :meth:`FailoverSession._failed`
look at the error: a connection-level failure (or, in ``strict_writer`` mode, a read-only error)
starts a failover, any other error passes through untouched. The failover asks ``_routing`` for a
physical connection, as this connection's own identity, to an instance in its role (the writer through
the cluster's single-flight writer search, or a reader; on an Aurora Global Database, what the
home-region mode for the global writer's region asks for: ``_global_failover``), swaps it in, restores
the session state the facade tracks, and raises the outcome (:func:`outcome`):

- ``FailoverSuccessError``: not inside a transaction; re-run the statement (``may_have_run`` says
  whether it may have reached the old instance);
- ``TransactionResolutionUnknownError``: inside a transaction or its COMMIT; re-run the whole
  transaction;
- ``FailoverFailedError``: no instance in the role (or the home-region mode) before
  ``failover_timeout``, or the server refused this connection's login; the connection is closed.

A ``close()`` during the failover ends it at once: the call raises the driver's "closed" error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ._concurrency import Interrupted, unless_set
from ._custom_endpoint import OutsideEndpoint
from ._driver import Driver, RawConnection, discard, discard_first
from ._events import FailoverFailed, FailoverStarted, FailoverSucceeded
from ._exceptions import (
    FailoverError,
    FailoverFailedError,
    FailoverSuccessError,
    TransactionResolutionUnknownError,
)
from ._global_failover import GlobalTarget, HomeModes, home_modes
from ._identity import LoginRefused
from ._plugins import Plugin
from ._routing import NoInstanceFound, connect_to_reader, connect_to_writer, home_region_target
from ._session import Session
from ._settle import ServerSession, settle
from ._topology import Instance

log = logging.getLogger("aurora_async.failover")


def calls_for_failover(
    driver: Driver, exc: BaseException, raw: RawConnection, mode: Callable[[], str]
) -> bool:
    """Whether ``exc``, raised by a call on ``raw``, calls for a failover: the physical connection is
    unusable, or (``mode()`` is ``strict_writer``) the instance refused a write as read-only. A
    failover error (also the driver's lost-connection class) is an outcome, never a cause. ``mode``
    is asked only for a read-only error: any other error of the application costs nothing more."""
    if isinstance(exc, FailoverError):
        return False
    return driver.is_connection_error(exc, raw) or (
        driver.is_read_only_error(exc) and mode() == "strict_writer"
    )


def outcome(
    driver: Driver,
    *,
    in_transaction: bool,
    may_have_run: bool,
    failed_from: str,
    now_on: Instance,
    cause: BaseException | None = None,
    target: GlobalTarget | None = None,
) -> FailoverError:
    """The error a failover that found ``now_on`` raises to the call that failed (as ``driver``'s
    connections raise it: also the driver's connection-lost error; its message quotes the driver's).
    ``target``: the home-region mode the failover ran in (an Aurora Global Database), which the
    message names with the instance's region."""
    failed = f"the connection to {failed_from} failed{_quoted(cause)}"
    where = _where(now_on, target)
    if in_transaction:
        return driver.failover_error(
            TransactionResolutionUnknownError,
            f"{failed} inside a transaction (or during its COMMIT), so its outcome is unknown; it is now "
            f"on {now_on.instance_id}{f' ({where})' if target is not None else ''}: re-run the whole "
            "transaction",
        )
    return driver.failover_error(
        FailoverSuccessError,
        f"{failed} and is now on {now_on.instance_id} ({where}); re-apply session state and re-run the "
        "statement",
        may_have_run=may_have_run,
    )


def _where(instance: Instance, target: GlobalTarget | None) -> str:
    """``instance``'s role, and with a home-region mode its region and the mode that chose it."""
    if target is None:
        return instance.role.value
    return f"{instance.role.value} in {instance.region or 'an unknown region'}, by {target.describe()}"


def _quoted(cause: BaseException | None) -> str:
    """What the driver said, for a failover error's message (code written for the driver may match it)."""
    said = str(cause).strip() if cause is not None else ""
    return f" ({said})" if said else ""


class FailoverSession(Session):
    """A session whose physical connection is replaced, on failure, by one to the right instance."""

    async def _failed(self, exc: Exception, *, again: bool = False) -> bool:
        """Fail over if ``exc`` calls for it (raising the outcome, or True to make the call again:
        :meth:`_run_again`); False to let ``exc`` propagate."""
        raw = self._raw
        if not self._failover or self._closed:
            return False
        driver = self._driver
        if not calls_for_failover(driver, exc, raw, self._mode_now):
            return False
        may_have_run = driver.may_have_taken_effect(exc)
        left = self._instance
        async with self._failover_lock:
            if self._closed:  # closed while this call waited for another call's failover
                raise self._closed_error() from exc
            if self._raw is not raw:  # another call on this connection already failed over
                if self._lost_transaction_on is not raw:
                    raise driver.failover_error(
                        FailoverSuccessError,
                        f"the connection has changed instance{_quoted(exc)}; re-run the statement",
                        may_have_run=may_have_run,
                    ) from exc
                # ... and lost the transaction this call was in
                in_transaction = True
            else:
                in_transaction = self._in_transaction(raw)
                in_block = self._block_raw is not None and self._block_raw is raw
                if in_block:
                    self._block_lost = True
                elif in_transaction:
                    self._transaction_lost()
                self._lost_transaction_on = raw if in_transaction or in_block else None
                cut_off = self._server_session
                await self._fail_over(exc, in_transaction=in_transaction or in_block)
                if (in_transaction or in_block or may_have_run) and cut_off is not None:
                    await self._settle(cut_off)
                if again and not (in_transaction or in_block or may_have_run) and self._run_again(left):
                    return True
        raise outcome(
            driver,
            in_transaction=in_transaction,
            may_have_run=may_have_run,
            failed_from=self._failed_from,
            now_on=self._instance,
            cause=exc,
            target=self._target,
        ) from exc

    # -- an Aurora Global Database's home-region modes ---------------------------------------------

    def _home_modes(self) -> HomeModes | None:
        """This connection's home-region modes, when its cluster is a Global Database (its topology
        has regions); None elsewhere. A session that read/write splitting moved to a reader (its mode
        is not its own failover mode then) takes both from that mode, not from the options."""
        given = self._mode == self._default_mode
        options = self._config.options
        return home_modes(self._cluster.topology, options, self._home_region, self._mode, given=given)

    def _mode_now(self) -> str:
        """The mode a failover would start in now: ``failover_mode``'s, or on a Global Database the
        home-region mode for the global writer the topology names (whether a read-only error calls
        for a failover: only when that is ``strict_writer``)."""
        modes = self._home_modes()
        if modes is None:
            return self._mode
        topology = self._cluster.topology
        return modes.target(topology.writer if topology is not None else None).mode

    def _run_again(self, left: Instance) -> bool:
        """Whether a call that surely did not run, outside a transaction, is made again rather than
        failing: when this connection runs the ``bg`` plugin and its failover crossed from a blue/green
        deployment's source to its target (a switchover, which the application should see as a pause;
        the incumbent wrapper holds such calls instead). Any other failover raises as documented."""
        if not self._config.options.has(Plugin.BLUE_GREEN):
            return False
        if not self._cluster.blue_green.crossed_over(left, self._instance):
            return False
        log.info(
            "blue/green switchover moved the connection from %s to %s: running the call again there",
            left.instance_id,
            self._instance.instance_id,
        )
        return True

    async def _fail_over(self, cause: Exception, *, in_transaction: bool) -> None:
        """Fail over (:meth:`_replace_connection`), in a span when telemetry is on, and tell the
        cluster's event listeners how it went."""
        old = self._instance
        events = self._cluster.events
        mode = self._mode_now()
        self._target = None
        events.emit(FailoverStarted, from_instance=old.instance_id, mode=mode, in_transaction=in_transaction)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with events.span(
            "aurora_async.failover",
            **{"aurora_async.from_instance": old.instance_id, "aurora_async.failover.mode": mode},
        ) as span:
            try:
                await self._replace_connection(cause, old, started)
            except FailoverFailedError as failed:
                events.emit(
                    FailoverFailed,
                    from_instance=old.instance_id,
                    mode=self._target.mode if self._target is not None else mode,
                    reason=str(failed),
                    duration=loop.time() - started,
                )
                raise
            instance = self._instance
            span.set_attribute("aurora_async.to_instance", instance.instance_id)
        events.emit(
            FailoverSucceeded,
            from_instance=old.instance_id,
            to_instance=instance.instance_id,
            role=instance.role.value,
            mode=self._target.mode if self._target is not None else mode,
            in_transaction=in_transaction,
            duration=loop.time() - started,
        )

    async def _settle(self, cut_off: ServerSession) -> None:
        """The failover came back to the instance it left: end the cut-off session there before the
        outcome is reported (``_settle``), so that a read-back of it is final."""
        if self._instance.instance_id != self._failed_from or self._server_session is cut_off:
            return
        await settle(self._driver, self._raw, cut_off, self._config.options.auxiliary_query_timeout)

    async def _replace_connection(self, cause: Exception, old: Instance, started: float) -> None:
        """Reconnect to an instance in the connection's role, swap it in and restore the session."""
        self._failed_from = old.instance_id
        self._untrack()
        discard(self._raw)
        loop = asyncio.get_running_loop()
        options = self._config.options
        deadline = started + options.failover_timeout
        try:
            raw, instance = await unless_set(
                self._closing, self._reconnect(old, started, deadline), discard=discard_first
            )
        except Interrupted:
            # close() or terminate() while failing over: the connection stays closed, and the call
            # that started the failover is told so, as asyncpg tells a call whose connection closed
            log.info("failover from %s stopped: the connection was closed", old.instance_id)
            raise self._closed_error() from cause
        except LoginRefused as refused:
            self._give_up()
            log.warning("failover from %s failed: %s", old.instance_id, refused)
            raise self._driver.failover_error(
                FailoverFailedError,
                f"failover from {old.instance_id} reached {self._target_word()}, but the server refused the "
                "login of this connection's user (was its password changed?); the connection is closed",
            ) from refused.__cause__
        except OutsideEndpoint as outside:  # strict_writer through a custom endpoint: the incumbent's rule
            self._give_up()
            log.warning("failover from %s failed: %s", old.instance_id, outside)
            raise self._driver.failover_error(
                FailoverFailedError,
                f"failover from {old.instance_id} found a new writer, but {outside}; the connection is "
                "closed (failover_mode=reader_or_writer keeps it on the endpoint's other members)",
            ) from cause
        except (NoInstanceFound, TimeoutError):  # (a role check that timed out on the last one)
            self._give_up()
            log.warning(
                "failover from %s failed: no %s within %.1f s",
                old.instance_id,
                self._target_word(),
                options.failover_timeout,
            )
            raise self._driver.failover_error(
                FailoverFailedError,
                f"no {self._target_word()} could be reached within "
                f"failover_timeout={options.failover_timeout:g} s{self._target_why()}; the connection "
                "is closed",
            ) from cause
        self._raw, self._instance = raw, instance
        self._watch()
        async with asyncio.timeout(self._config.options.auxiliary_query_timeout):
            await self._restore_session(raw)
        log.info(
            "failed over from %s to %s (%s) in %.0f ms",
            old.instance_id,
            instance.instance_id,
            instance.role.value,
            (loop.time() - started) * 1000,
        )

    async def _reconnect(self, old: Instance, started: float, deadline: float) -> tuple[Any, Instance]:
        """A physical connection, as this connection's identity, to an instance in its role (on a
        Global Database: in the home-region mode for where the global writer is now)."""
        members = self.custom_endpoint
        modes = self._home_modes()
        target = None
        if modes is not None:
            target = await home_region_target(
                self._cluster, self._identity, modes, old, not_before=started, deadline=deadline
            )
            self._target = target
        mode = target.reader_mode if target is not None else self._mode
        if mode == "strict_writer":
            return await connect_to_writer(self._cluster, self._identity, started, deadline, members)
        raw, instance = await connect_to_reader(
            self._cluster,
            self._identity,
            mode,
            strategy=self._config.options.reader_host_selector_strategy,
            avoid=old.instance_id,
            deadline=deadline,
            members=members,
            allowed=target.allows if target is not None else None,
        )
        try:
            return raw, await self._cluster.discovery.identify(raw, instance.host, instance.port)
        except BaseException:
            discard(raw)
            raise

    def _target_word(self) -> str:
        """What the failover looks for, in words (its home-region mode's, once chosen)."""
        if self._target is not None:
            return self._target.wanted
        if self._home_modes() is not None:
            return "global writer"  # (the search for it, to choose the home-region mode, failed)
        return "writer" if self._mode == "strict_writer" else "reader"

    def _target_why(self) -> str:
        """For a failure message: the home-region mode the failover ran in and why (or that the
        global writer, which chooses it, was not found); empty outside a Global Database."""
        if self._target is not None:
            return f" ({self._target.describe()})"
        modes = self._home_modes()
        if modes is None:
            return ""
        return (
            f" (to choose between active_home_failover_mode={modes.active} and "
            f"inactive_home_failover_mode={modes.inactive}, home region {modes.home})"
        )

    def _give_up(self) -> None:
        """A failover failed: the connection is closed, and lets its cluster go (unless a close()
        during the failover already did)."""
        if not self._closed:
            self._mark_closed()
            self._drop_spare()
            self._cluster.release(self._identity)
