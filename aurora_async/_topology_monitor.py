"""The topology monitor: the one background refresh of a cluster's topology.

It reads the topology on its own connection to the writer every ``topology_refresh`` seconds, every
``topology_high_refresh`` for ``topology_high_refresh_period`` after a writer change or a failure
someone reported, and at once when its connection dies (the writer shut down, crashed, was
demoted). When the refresh fails it asks the cluster's writer search. The monitoring connection is
opened with a borrowed identity, and the writer search hands over the connection that won it.

With a connection running the ``bg`` plugin it also reads the blue/green deployment's metadata
(``_blue_green``), often while a switchover is under way.

It is also the writer's host-monitoring probe (:meth:`TopologyMonitor.ping_on`): the writer's host
monitor pings on it rather than open a connection of its own, so a process keeps one background
session on the writer, not two. One query at a time runs on it (the refresh's, or a probe's).
"""

from __future__ import annotations

import asyncio
import logging

from ._context import ClusterContext
from ._driver import RawConnection, discard
from ._identity import LoginRefused
from ._routing import NoInstanceFound
from ._topology import with_writer

log = logging.getLogger("aurora_async.topology")

# a new cluster's first refresh, and with it its monitoring connection, waits this long: a connection
# closed sooner (connect, query, close) does not pay for a second connection it would never use
FIRST_REFRESH = 0.25
SEARCH_DEADLINE = 60.0  # how long the monitor's own writer search may take before it starts another
BACKGROUND_CONNECT = 10.0  # the deadline of its (re)connect, whatever identity it borrows


class TopologyMonitor:
    """One cluster's topology refresh (see the module docstring); :meth:`run` is the task."""

    def __init__(self, cluster: ClusterContext) -> None:
        self._cluster = cluster
        self._conn: RawConnection | None = None
        self._writer_id: str | None = None  # the instance the monitoring connection is on
        self._wakeup = asyncio.Event()
        self._fast_until = 0.0
        self._weak_dropped = False  # the connection was dropped for weaker TLS, not lost
        self._querying = asyncio.Lock()  # one query at a time on the connection: a refresh's or a probe's

    @property
    def connection(self) -> RawConnection | None:
        return self._conn

    def wake(self) -> None:
        """Refresh now, and every ``topology_high_refresh`` for a while."""
        self._go_fast()
        self._wakeup.set()

    def use(self, conn: RawConnection | None, writer_id: str | None) -> None:
        """Monitor on ``conn``, a connection to writer ``writer_id`` (the writer search's winner), and
        refresh often for a while; with None, open a connection of its own at the next refresh."""
        self._replace(conn)
        self._writer_id = writer_id if conn is not None else None
        self._go_fast()

    def _go_fast(self) -> None:
        period = self._cluster.options.topology_high_refresh_period
        self._fast_until = max(self._fast_until, asyncio.get_running_loop().time() + period)

    def drop_weak(self) -> None:
        """The connection is weaker in TLS than a connection the cluster now serves: open anew."""
        if self._conn is not None and self._cluster.opener.too_weak(self._conn):
            self._weak_dropped = True
            self._replace(None)
            self._wakeup.set()

    def stop(self) -> None:
        self._replace(None)

    async def ping_on(self, instance_id: str) -> bool | None:
        """A host monitor's probe of ``instance_id`` on the monitoring connection, when it is open on
        that instance (the writer): True when it answered, None when there is no such connection. A
        failure (or the caller's timeout) drops the connection, mid-protocol as it may be, and raises;
        its loss makes the next refresh come at once."""
        conn = self._conn
        if conn is None or conn.is_closed() or self._writer_id != instance_id:
            return None
        try:
            async with self._querying:
                if conn is not self._conn:
                    return None  # replaced while the probe waited: the new one is the refresh's to check
                await self._cluster.driver.ping(conn)
        except BaseException:
            if conn is self._conn:
                self._replace(None)
            raise
        return True

    async def run(self) -> None:
        cluster = self._cluster
        loop = asyncio.get_running_loop()
        first = True
        refreshed = loop.time()
        while not cluster.closed:  # (also if a cancellation was lost on the way)
            fast = loop.time() < self._fast_until or cluster.blue_green.switching
            interval = cluster.options.topology_high_refresh if fast else cluster.options.topology_refresh
            if first:  # soon, not at once (see FIRST_REFRESH): the monitoring connection's loss is news
                interval, first = min(interval, FIRST_REFRESH), False
            # a blue/green deployment's metadata is read more often than the topology (its own query)
            poll = cluster.blue_green.poll_interval() if cluster.blue_green_wanted else None
            wake_at = refreshed + interval if poll is None else min(refreshed + interval, loop.time() + poll)
            woken = False
            try:
                async with asyncio.timeout(max(0.0, wake_at - loop.time())):
                    woken = await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            try:
                if woken or loop.time() >= refreshed + interval:
                    refreshed = loop.time()
                    await self._refresh()
                else:
                    await self._poll_blue_green()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken monitor must not die: log and find the writer again
                if self._conn is None and self._weak_dropped:
                    self._weak_dropped = False  # its connection was too weak, not lost: open anew
                    continue
                lost = cluster.driver.is_connection_error(exc, self._conn)
                if not lost and not isinstance(exc, NoInstanceFound):
                    log.warning("topology refresh failed: %r", exc)
                self._replace(None)
                await self._search()

    async def _search(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._cluster.find_writer(loop.time(), loop.time() + SEARCH_DEADLINE)
        except NoInstanceFound:
            log.warning("no writer found within %g s; will keep trying", SEARCH_DEADLINE)
        except LoginRefused:
            log.warning("every login was refused; will try again at the next refresh")
            self._fast_until = 0.0  # not every topology_high_refresh

    async def _poll_blue_green(self) -> None:
        """Read the blue/green metadata on the monitoring connection (between two refreshes)."""
        cluster = self._cluster
        conn = self._conn
        if conn is None or conn.is_closed() or cluster.dialect is None:
            return  # the next refresh opens a connection (and reads the metadata too)
        async with self._querying:
            hosts = await cluster.dialect.blue_green(conn, cluster.options.auxiliary_query_timeout)
        if hosts is not None and conn is self._conn:
            cluster.blue_green.update(hosts)

    async def _refresh(self) -> None:
        cluster = self._cluster
        writer = cluster.topology.writer if cluster.topology is not None else None
        if writer is None:
            raise NoInstanceFound("no known writer")
        conn = self._conn
        if conn is None or conn.is_closed():
            conn = await cluster.opener.open_background(writer.host, writer.port, BACKGROUND_CONNECT)
            self._replace(conn)
            self._weak_dropped = False
        assert cluster.dialect is not None
        aux = cluster.options.auxiliary_query_timeout
        async with self._querying:
            if not await cluster.dialect.is_writer(conn, aux):
                raise NoInstanceFound("the monitoring connection is no longer on the writer")
            writer_id = self._writer_id
            if writer_id is None:
                writer_id = await cluster.dialect.instance_id(conn, aux)
            rows = await cluster.read_topology(conn) or []
            if cluster.blue_green_wanted:
                hosts = await cluster.dialect.blue_green(conn, aux)
                if hosts is not None:
                    cluster.blue_green.update(hosts)
        if conn is not self._conn:
            return  # dropped by a failed probe meanwhile: what it read is not worth publishing
        self._writer_id = writer_id
        topology = cluster.publish(with_writer(rows, writer_id, writer.host, writer.port), verified=True)
        if topology.writer is not None:
            cluster.writer_proved = (topology.writer, asyncio.get_running_loop().time())

    def _replace(self, conn: RawConnection | None) -> None:
        old, self._conn = self._conn, conn
        if conn is not old:
            self._writer_id = None  # whoever sets a connection knows, or the next refresh asks
        if conn is not None and conn is not old:
            conn.add_termination_listener(self._lost)
        if old is not None and old is not conn:
            discard(old)

    def _lost(self, conn: RawConnection) -> None:
        """The monitoring connection died (its instance shut down, crashed, was demoted): refresh now
        rather than at the next tick, so a writer change is seen, and the tracker acts, at once."""
        if conn is self._conn and not self._cluster.closed:
            log.debug("monitoring connection lost: refreshing the topology now")
            self._cluster.request_refresh()
