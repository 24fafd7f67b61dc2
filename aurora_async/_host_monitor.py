"""The ``host_monitoring`` plugin: one probe task per host cuts through black-holed connections.

A query on an instance whose network silently died (no RST, no FIN) would hang until TCP gives up,
minutes later. Each monitored host gets one :class:`HostMonitor`, shared by every connection of the
cluster to that host: a task that probes the host on its own connection every
``failure_detection_interval`` seconds, each ``SELECT 1`` bounded by that interval (opening the probe
connection takes several round trips, so it may use the rest of the detection window,
``failure_detection_interval * failure_detection_count``). After ``failure_detection_count`` failed
probes in a row, or a streak of failures as long as the window, the host is declared dead: the
cluster marks it down, and every connection on it is aborted (calls that have run for at least
``failure_detection_time``, and idle ones), so the stuck call raises a connection error and failover
takes over.

Probes that time out only because the event loop itself was blocked (the timeout fired far later than
asked) are not counted. The task ends ``monitor_disposal_time`` seconds after the host's last
monitored connection went away.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from typing import Protocol

from ._context import ClusterContext
from ._driver import RawConnection, discard
from ._events import HostDown, HostUp
from ._topology import Instance

log = logging.getLogger("aurora_async.host_monitoring")

_LATE = 2.0  # a probe whose timeout fired this many times later than asked: the loop was blocked
# a probe timed out at the end of the window ends it, float rounding of the timer's deadline aside
_SLACK = 0.001


class Monitored(Protocol):
    """What a monitor needs of a connection: how long its current call has run, and a way to abort."""

    def busy_for(self, now: float) -> float | None: ...

    def abort_physical(self) -> bool:
        """Drop the physical connection; whether there was an open one to drop."""
        ...


class WholeConnection:
    """A physical connection handed out as it is (``connect_raw``, ``raw_connector``): its owner's
    calls cannot be seen, so when its host is declared dead it is aborted whatever it is doing."""

    def __init__(self, raw: RawConnection) -> None:
        self.raw = raw

    def busy_for(self, now: float) -> float | None:
        return None

    def abort_physical(self) -> bool:
        if self.raw.is_closed():
            return False
        self.raw.terminate()
        return True


class HostMonitor:
    """Probes one host while connections to it are monitored; aborts them when it stops answering."""

    def __init__(self, cluster: ClusterContext, instance: Instance) -> None:
        self.cluster = cluster
        self.instance = instance
        self.options = cluster.options
        self.connections: weakref.WeakSet[Monitored] = weakref.WeakSet()
        self.dead = False
        self.stats: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._stopped = False
        self._probe_conn: RawConnection | None = None

    def __repr__(self) -> str:
        state = "dead" if self.dead else "alive"
        return f"<HostMonitor {self.instance.instance_id} {state} watching {len(self.connections)}>"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def add(self, conn: Monitored) -> None:
        self.connections.add(conn)
        if not self.running and not self.cluster.closed:
            self._task = self.cluster.spawn(
                self._run(), name=f"aurora_async host monitor {self.instance.endpoint}"
            )
        self._wakeup.set()

    def remove(self, conn: Monitored) -> None:
        self.connections.discard(conn)
        self._wakeup.set()

    def stop(self) -> None:
        """The cluster stops (its task owner cancels the task): close the probe connection now."""
        self._stopped = True  # the task also ends on its own if a cancellation is lost on the way
        self._wakeup.set()
        discard(self._probe_conn)
        self._probe_conn = None

    def drop_weak_probe(self) -> None:
        """The probe connection is weaker than a connection the cluster now serves: close it (the
        next probe opens a new one, with the strongest identity; a probe it cuts short counts for
        nothing)."""
        if self._probe_conn is not None and self.cluster.opener.too_weak(self._probe_conn):
            discard(self._probe_conn)
            self._probe_conn = None
            self._wakeup.set()

    # -- the task ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.options.failure_detection_interval
        window = interval * self.options.failure_detection_count
        failing_since: float | None = None  # start of the first failed probe of the current streak
        failures = 0
        unwatched_since: float | None = None  # dead, with no connection left to watch, since
        try:
            # the first probe after one interval: a connection closed sooner (connect, query, close)
            # does not pay for a probe connection; a host that dies meanwhile is declared dead at
            # about the same time, as the probe connection's attempt may use the whole window
            await asyncio.sleep(interval)
            while not self._stopped:
                if not self.connections and not self.dead and not await self._wait_for_connections():
                    return
                started = loop.time()
                if self.dead and not self.connections:
                    # a host declared dead is probed until it answers, so that what the cluster
                    # believes (new connections go around it) does not outlive the outage; with no
                    # connection to it for monitor_disposal_time, the belief is dropped unconfirmed
                    unwatched_since = started if unwatched_since is None else unwatched_since
                    if started - unwatched_since >= self.options.monitor_disposal_time:
                        self._forget_verdict()
                        return
                else:
                    unwatched_since = None
                # a query probe gets one interval; opening the probe connection takes several round
                # trips, so it may use what is left of the window
                deadline = (failing_since if failing_since is not None else started) + window
                outcome = await self._probe(interval, max(interval, deadline - started))
                if outcome is True:
                    if self.dead:
                        self._revive()
                    failing_since, failures = None, 0
                elif outcome is False:
                    failures += 1
                    if failing_since is None:
                        failing_since = started
                    if (
                        failures >= self.options.failure_detection_count
                        or loop.time() - failing_since >= window - _SLACK
                    ):
                        self._declare_dead(failures)
                pause = started + interval - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
        finally:
            discard(self._probe_conn)
            self._probe_conn = None

    async def _wait_for_connections(self) -> bool:
        """Idle: wait up to the disposal time for a connection to watch (False: time to stop)."""
        self._wakeup.clear()
        try:
            async with asyncio.timeout(self.options.monitor_disposal_time):
                while not self.connections and not self._stopped:
                    await self._wakeup.wait()
                    self._wakeup.clear()
        except TimeoutError:
            log.debug("monitor of %s stops: no connection to watch", self.instance.instance_id)
            return False
        return not self._stopped

    async def _probe(self, query_timeout: float, connect_timeout: float) -> bool | None:
        """True: the host answered; False: it did not in time; None: no verdict (blocked loop)."""
        loop = asyncio.get_running_loop()
        self.stats["probes"] += 1
        started = loop.time()
        shared, outcome = await self._probe_on_monitor(query_timeout, started)
        if shared:
            return outcome
        probed = self._probe_conn
        connecting = probed is None or probed.is_closed()
        timeout = connect_timeout if connecting else query_timeout
        try:
            async with asyncio.timeout(timeout):
                if connecting:
                    discard(probed)  # one its peer closed: the driver's object still holds it
                    self._probe_conn = None
                    self._probe_conn = await self.cluster.opener.open_background(
                        self.instance.host, self.instance.port, timeout
                    )
                else:
                    assert self._probe_conn is not None
                    await self.cluster.driver.ping(self._probe_conn)
            return True
        except self.cluster.driver.connect_errors as exc:
            if self.cluster.driver.is_login_error(exc):
                # the server answered, and refused every login we could borrow (passwords rotated
                # under open connections): the host is alive, which is all a probe asks
                log.debug("probe of %s: login refused, the host answers", self.instance.instance_id)
                return True
            if not connecting and self._probe_conn is not probed:
                return None  # its connection was dropped under it (drop_weak_probe): no verdict
            discard(self._probe_conn)  # a timed-out probe leaves its connection mid-protocol
            self._probe_conn = None
            late = isinstance(exc, TimeoutError) and loop.time() - started > timeout * _LATE
            log.debug(
                "%s probe of %s failed after %.0f ms (%s)%s",
                "connect" if connecting else "query",
                self.instance.instance_id,
                (loop.time() - started) * 1000,
                type(exc).__name__,
                "; the event loop was blocked, not counted" if late else "",
            )
            if late:
                return None
            self.stats["failed_probes"] += 1
            return False

    async def _probe_on_monitor(self, timeout: float, started: float) -> tuple[bool, bool | None]:
        """The writer's probe on the topology monitor's connection, when that connection is open on this
        host (one background session per host, not two): (True, the probe's outcome, as
        :meth:`_probe`'s); (False, None) when there is none, to probe on a connection of our own."""
        cluster = self.cluster
        try:
            async with asyncio.timeout(timeout):
                answered = await cluster.ping_writer_on_monitor(self.instance.instance_id)
        except cluster.driver.connect_errors as exc:
            late = (
                isinstance(exc, TimeoutError)
                and asyncio.get_running_loop().time() - started > timeout * _LATE
            )
            log.debug(
                "probe of %s on the monitoring connection failed (%s)%s",
                self.instance.instance_id,
                type(exc).__name__,
                "; the event loop was blocked, not counted" if late else "",
            )
            if late:
                return True, None
            self.stats["failed_probes"] += 1
            return True, False
        if answered is None:
            return False, None
        self.stats["shared_probes"] += 1
        discard(self._probe_conn)  # not needed while the monitoring connection serves
        self._probe_conn = None
        return True, True

    def _declare_dead(self, failures: int) -> None:
        now = asyncio.get_running_loop().time()
        grace = self.options.failure_detection_time
        aborted = 0
        for conn in list(self.connections):
            busy = conn.busy_for(now)
            if (busy is None or busy >= grace) and conn.abort_physical():
                aborted += 1  # (an idle connection already closed, not yet failed over, is left alone)
        self.stats["aborted"] += aborted
        if not self.dead:
            self.dead = True
            self.cluster.mark_down(self.instance.instance_id)
            self.cluster.events.emit(HostDown, instance=self.instance.instance_id, aborted=aborted)
            log.warning(
                "host %s failed %d probes in a row (window %.1f s): declared dead, %d connection(s) aborted",
                self.instance.instance_id,
                failures,
                self.options.failure_detection_interval * self.options.failure_detection_count,
                aborted,
            )
        elif aborted:
            log.info("host %s still dead: %d more connection(s) aborted", self.instance.instance_id, aborted)

    def _clear_verdict(self) -> None:
        self.dead = False
        self.cluster.mark_up(self.instance.instance_id)

    def _forget_verdict(self) -> None:
        self._clear_verdict()
        log.info(
            "host %s: no connection to it for %g s and still no answer; no longer counted as dead",
            self.instance.instance_id,
            self.options.monitor_disposal_time,
        )

    def _revive(self) -> None:
        self._clear_verdict()
        self.cluster.events.emit(HostUp, instance=self.instance.instance_id)
        log.info("host %s answers again", self.instance.instance_id)
