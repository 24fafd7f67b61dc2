"""One ``Cluster`` per cluster and event loop: what the cluster is, shared by all its connections.

A process holds one ``Cluster`` per cluster it talks to, however many connections (and identities) it
has. The cluster keeps what it learned (dialect, topology, hosts declared dead), publishes topology
changes (the connection tracker acts on a writer change), counts the connections that hold it, and is
the one owner of its background tasks: the topology monitor, the writer search and one host monitor
per host in use. They are its parts (``_topology_monitor``, ``_routing``, ``_host_monitor``,
``_discovery``) and see it through :class:`aurora_async._context.ClusterContext`. When the last
connection lets go, every task is cancelled; :meth:`Cluster.aclose` waits for their end.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Hashable, Iterator
from typing import Any, TypeVar

from ._auth import Authenticator
from ._blue_green import BlueGreen
from ._concurrency import TaskOwner
from ._config import Config
from ._custom_endpoint import EndpointSource, MembershipMonitor
from ._dialect import Dialect, HostBuilder
from ._discovery import Discovery
from ._driver import Driver, RawConnection
from ._events import EventHub, TopologyRefreshed, WriterChanged
from ._host_monitor import HostMonitor
from ._identity import Identities, Identity
from ._opener import Opener
from ._options import ClusterSettings
from ._rds_hosts import RdsUrlType, classify_host
from ._routing import WriterSearch
from ._topology import Instance, Role, Topology
from ._topology_monitor import TopologyMonitor
from ._tracker import Tracker

log = logging.getLogger("aurora_async.topology")

T = TypeVar("T")


class Cluster:
    """Shared knowledge about one cluster, and the owner of its background work (module docstring)."""

    def __init__(
        self,
        key: Hashable,
        config: Config,
        driver: Driver,
        auth: Authenticator,
        forget: Callable[[Cluster], None],
        *,
        events: EventHub,
    ) -> None:
        self.key = key
        self.host, self.port = config.host, config.port  # the address the first connection was given
        self.options = ClusterSettings.of(config.options)
        self.driver = driver
        self.events = events  # what happens to the cluster, for the application's streams and telemetry
        self.identities = Identities()  # who this cluster's connections are (background work borrows)
        self.opener = Opener(driver, auth, self.identities, events, region_of=self.region_of)
        auth.attach()  # its AWS clients stay open while this cluster is (detached in _stop)
        self.dialect: Dialect | None = None
        self.build: HostBuilder | None = None
        self.topology: Topology | None = None
        # the topology's writer was confirmed (it answered as the writer): worth remembering at close
        self.confirmed = False
        self.tracker = Tracker()
        self.stats: Counter[str] = Counter()
        self.refs = 0
        self.reader_turns: Iterator[int] = itertools.count()  # round_robin reader selection
        self.load: Counter[str] = Counter()  # connections of this process per instance id
        self.down: set[str] = set()  # instance ids a host monitor declared dead (until they answer)
        self.writer_proved: tuple[Instance, float] | None = None  # who last answered as the writer, when
        self.home_regions_checked: set[str] = set()  # failover_home_region values warned about (or fine)
        # its blue/green deployment, read with the topology once a connection runs the bg plugin
        self.blue_green = BlueGreen(self.options.blue_green_hold_timeout)
        self.blue_green_wanted = False
        self.host_monitors: dict[str, HostMonitor] = {}
        # the custom endpoints its connections came through: each its own members (per endpoint)
        self.custom_endpoints: dict[EndpointSource, MembershipMonitor] = {}
        self.discovery = Discovery(self)
        self.search = WriterSearch(self)
        self.monitor = TopologyMonitor(self)
        self._tasks = TaskOwner()
        self._monitoring = False
        self._forget = forget

    def __repr__(self) -> str:
        dialect = self.dialect.code if self.dialect else "?"
        return f"<Cluster {self.host}:{self.port} {dialect} refs={self.refs} {self.topology!r}>"

    @property
    def auth(self) -> Authenticator:
        return self.opener.auth

    @property
    def closed(self) -> bool:
        return self._tasks.closed

    # -- what the parts ask (ClusterContext) ---------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        return self._tasks.spawn(work, name=name)

    def start_monitor(self) -> None:
        if (
            not self._monitoring
            and not self.closed
            and self.dialect is not None
            and self.dialect.has_topology
        ):
            self._monitoring = True
            self.spawn(self.monitor.run(), name=f"aurora_async topology monitor {self.host}")

    async def find_writer(self, not_before: float, deadline: float) -> Topology:
        return await self.search.find_writer(not_before, deadline)

    def monitor_on(self, conn: RawConnection | None, writer_id: str | None) -> None:
        self.monitor.use(conn, writer_id)

    async def ping_writer_on_monitor(self, instance_id: str) -> bool | None:
        return await self.monitor.ping_on(instance_id)

    def region_of(self, host: str, port: int, named: str | None = None) -> str | None:
        """The AWS region an IAM token for a connection to ``host:port`` is signed for, where the
        topology tells (an Aurora Global Database's instances are in several regions): an instance's
        own region; for the global writer endpoint (``host``, or ``named``: the name the token is
        for, ``iam_host``), the region of the global writer it leads to. None elsewhere (the token is
        signed for ``iam_region``, else the region in the host name)."""
        topology = self.topology
        if topology is None:
            return None
        for instance in topology.instances:
            if instance.region is not None and instance.host == host and instance.port == port:
                return instance.region
        writer = topology.writer
        if (
            writer is not None
            and classify_host(named or host).url_type is RdsUrlType.RDS_GLOBAL_WRITER_CLUSTER
        ):
            return writer.region
        return None

    def check_home_region(self, home: str) -> None:
        """Warn, once per region, when a connection's ``failover_home_region`` names a region none of
        this Global Database's instances is in (a typo, or a region not attached yet): a home-region
        mode would find no home reader and the writer never at home. Nothing before the topology is
        known, nor on a cluster whose topology has no regions."""
        topology = self.topology
        if home in self.home_regions_checked or topology is None or not topology.regions:
            return
        self.home_regions_checked.add(home)
        if home not in topology.regions:
            log.warning(
                "failover_home_region=%s names no region of this Global Database's instances (%s): its "
                "home-region modes will find no home reader and never the writer at home",
                home,
                ", ".join(sorted(topology.regions)),
            )

    def request_refresh(self) -> None:
        self.monitor.wake()

    async def read_topology(self, conn: RawConnection) -> list[Instance] | None:
        assert self.dialect is not None and self.build is not None
        if not self.dialect.has_topology:
            return None
        return await self.dialect.topology(conn, self.options.auxiliary_query_timeout, self.build)

    def publish(self, instances: list[Instance], *, verified: bool) -> Topology:
        """Make ``instances`` the topology; a new writer closes the tracked connections on the old."""
        old = self.topology
        now = asyncio.get_running_loop().time()
        version = (old.version if old is not None else 0) + 1
        new = Topology(version, tuple(sorted(instances, key=lambda i: i.instance_id)), now)
        if old is not None and new.same_layout(old):
            new = Topology(old.version, new.instances, now if verified else old.verified_at)
        elif not verified and old is not None:
            new = Topology(version, new.instances, old.verified_at)
        self.topology = new
        self.confirmed = self.confirmed or verified
        self.stats["topology_reads"] += 1
        old_writer = old.writer if old is not None else None
        changed = new.version != (old.version if old else 0)
        if self.events.wanted:
            self.events.emit(
                TopologyRefreshed,
                writer=new.writer.instance_id if new.writer is not None else None,
                readers=tuple(i.instance_id for i in new.instances if i.role is Role.READER),
                changed=changed,
            )
        if (
            new.writer is not None
            and old_writer is not None
            and new.writer.instance_id != old_writer.instance_id
        ):
            log.info("writer changed: %s -> %s", old_writer.instance_id, new.writer.instance_id)
            self.events.emit(WriterChanged, previous=old_writer.instance_id, writer=new.writer.instance_id)
            self.tracker.close_all_on(old_writer.instance_id)  # connections with the tracker plugin
        elif changed:
            log.debug("topology %r", new)
        return new

    def confirm(self, instance: Instance) -> None:
        """A connection found ``instance`` to be the writer: if the topology agrees, it is confirmed."""
        writer = self.topology.writer if self.topology is not None else None
        if instance.role is Role.WRITER and writer is not None and writer.instance_id == instance.instance_id:
            self.confirmed = True

    # -- host monitoring ---------------------------------------------------------------------------

    def host_monitor(self, instance: Instance) -> HostMonitor:
        """The one monitor of ``instance``'s host in this cluster (created on first use)."""
        monitor = self.host_monitors.get(instance.endpoint)
        if monitor is None:
            monitor = self.host_monitors[instance.endpoint] = HostMonitor(self, instance)
        return monitor

    def mark_down(self, instance_id: str) -> None:
        self.down.add(instance_id)
        self.request_refresh()

    def mark_up(self, instance_id: str) -> None:
        self.down.discard(instance_id)

    # -- custom endpoints ----------------------------------------------------------------------------

    def custom_endpoint(
        self, source: EndpointSource, default_session: Callable[[], Any]
    ) -> MembershipMonitor:
        """The one membership monitor of a custom endpoint in this cluster (created on first use; its
        fetch and refresh are tasks of the cluster)."""
        monitor = self.custom_endpoints.get(source)
        if monitor is None:
            monitor = self.custom_endpoints[source] = MembershipMonitor(source, self.spawn, default_session)
        return monitor

    # -- lifetime ----------------------------------------------------------------------------------

    def acquire(self, identity: Identity) -> Cluster:
        """One more user of the cluster (a connection, a pool, a connector), who is ``identity``.
        When it brings stronger TLS than the cluster served so far, background connections opened
        weaker are dropped (the monitor and the probes open new ones with the strongest identity)."""
        self.refs += 1
        stronger = identity.tls > self.identities.strongest()
        self.identities.add(identity)
        if stronger and self.refs > 1:
            self.monitor.drop_weak()
            for monitor in self.host_monitors.values():
                monitor.drop_weak_probe()
        return self

    def release(self, identity: Identity) -> None:
        """One user less; with the last one the background work stops. Each :meth:`acquire` is
        released exactly once (the caller's duty)."""
        self.refs -= 1
        self.identities.remove(identity)
        if self.refs <= 0:
            self._stop()

    async def release_and_wait(self, identity: Identity) -> None:
        """:meth:`release`; when that was the last reference, wait until the background work ended."""
        self.release(identity)
        if self.closed:
            await self.aclose()

    def _stop(self) -> None:
        """Stop the background work (synchronous, so that it also works from ``terminate()``)."""
        if self.closed:
            return
        self._tasks.cancel()
        self.blue_green.release()  # nothing waits for a switchover no one watches any more
        self.auth.detach()
        self._forget(self)
        for monitor in self.host_monitors.values():
            monitor.stop()
        self.monitor.stop()

    async def aclose(self) -> None:
        """Stop every background task and wait for their end (also with connections still open)."""
        self._stop()
        await self._tasks.aclose()
        await self.auth.idle()
