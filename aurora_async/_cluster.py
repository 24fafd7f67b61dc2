"""One ``Cluster`` per cluster identity and event loop: topology, writer search, monitor, tracker.

A process holds one ``Cluster`` per cluster it talks to, however many connections it has: the
connections share its topology, its single background monitor task and its single-flight writer
search. The registry of clusters is the only module-level state of aurora_async; a cluster is removed
from it, and its task stopped, when the last connection using it closes. The registry remembers what a
closed cluster learned (its dialect and last topology) for ``topology_refresh`` seconds, so that a
connect-close-connect pattern does not detect the dialect and read the topology every time; roles are
still verified on every connect, and the new cluster's monitor refreshes the topology within
``_FIRST_REFRESH`` (0.25 s).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import time
import weakref
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from ._auth import Authenticator
from ._concurrency import race_first, retrieve_exception
from ._config import Config, Options
from ._dialect import Dialect, HostBuilder, host_builder
from ._driver import Driver, discard, discard_first
from ._exceptions import ConfigurationError
from ._host_monitor import HostMonitor
from ._identity import Identities, Identity, LoginRefused
from ._rds_hosts import HostPattern, classify_host
from ._tls import Tls
from ._topology import Instance, Role, Topology, with_writer
from ._tracker import Tracker
from .mysql.driver import MYSQL
from .postgresql.driver import POSTGRESQL

topology_log = logging.getLogger("aurora_async.topology")

DRIVERS: dict[str, Driver] = {"postgresql": POSTGRESQL, "mysql": MYSQL}  # by Config.engine

_POLL = 0.02  # how often the writer search asks an instance again (and its first reconnect back-off)
# a new cluster's first refresh, and with it its monitoring connection, waits this long: a connection
# closed sooner (connect, query, close) does not pay for a second connection it would never use
_FIRST_REFRESH = 0.25
# how long the topology monitor's own writer search may take before it logs and starts another
_MONITOR_SEARCH = 60.0
# the deadline of the monitor's own (re)connect, whatever identity it borrows (each has its own)
_BACKGROUND_CONNECT = 10.0


@dataclass(frozen=True)
class ClusterSettings:
    """The options that govern what connections to a cluster share (its dialect, topology monitor and
    host monitors). Connections whose settings differ get a cluster each; everything else (plugins,
    failover mode and timeout, reader selection, credentials, TLS, driver arguments) is per connection."""

    wrapper_dialect: str | None
    cluster_instance_host_pattern: HostPattern | None
    topology_refresh: float
    topology_high_refresh: float
    topology_high_refresh_period: float
    auxiliary_query_timeout: float
    failure_detection_time: float
    failure_detection_interval: float
    failure_detection_count: int
    monitor_disposal_time: float

    @classmethod
    def of(cls, options: Options) -> ClusterSettings:
        return cls(**{f.name: getattr(options, f.name) for f in dataclasses.fields(cls)})


def cluster_key(config: Config) -> Hashable:
    """What identifies a cluster: ``cluster_id``, else the instance pattern, else the RDS cluster name
    and domain, else the host itself; plus the settings of what its connections share. Not who
    connects: connections of every identity share the cluster."""
    options = config.options
    rds = classify_host(config.host)
    address: Hashable
    if options.cluster_id is not None:
        address = ("id", options.cluster_id)
    elif options.cluster_instance_host_pattern is not None:
        address = ("pattern", options.cluster_instance_host_pattern)
    elif rds.url_type.is_rds_cluster:
        address = ("rds", (rds.name or "").lower(), (rds.domain or "").lower(), config.port)
    else:
        address = ("host", config.host.lower(), config.port)
    return (config.engine, address, ClusterSettings.of(options))


class Cluster:
    """Shared knowledge about one cluster (see the module docstring)."""

    def __init__(self, key: Hashable, config: Config, forget: Any, auth: Authenticator) -> None:
        self.key = key
        self.host, self.port = config.host, config.port  # the address the first connection was given
        self.options = ClusterSettings.of(config.options)
        self.driver: Driver = DRIVERS[config.engine]
        self.identities = Identities()  # who this cluster's connections are (background work borrows)
        # the TLS each background connection was opened with
        self._background_tls: weakref.WeakKeyDictionary[Any, Tls] = weakref.WeakKeyDictionary()
        self.auth = auth  # the event loop's credentials cache
        self.dialect: Dialect | None = None
        # the topology's writer was confirmed (it answered as the writer): worth remembering at close
        self.confirmed = False
        self.topology: Topology | None = None
        self.tracker = Tracker()
        self.stats: Counter[str] = Counter()
        self.refs = 0
        self.reader_turns = itertools.count()  # round_robin reader selection, per cluster
        self.load: Counter[str] = Counter()  # connections of this process per instance id
        self.down: set[str] = set()  # instance ids a host monitor declared dead (until they answer)
        self.host_monitors: dict[str, HostMonitor] = {}
        self._forget = forget
        self._prepared = asyncio.Lock()
        self._build: HostBuilder | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._monitor_conn: Any | None = None
        self._monitor_id: str | None = None  # the instance the monitoring connection is on
        self._search: asyncio.Task[Topology] | None = None
        self._wakeup = asyncio.Event()
        self._fast_until = 0.0
        self._closed = False
        self._pattern_checked = False
        self._weak_dropped = False  # the monitor's connection was dropped for weaker TLS, not lost

    def __repr__(self) -> str:
        dialect = self.dialect.code if self.dialect else "?"
        return f"<Cluster {self.host}:{self.port} {dialect} refs={self.refs} {self.topology!r}>"

    # -- opening physical connections --------------------------------------------------------------

    async def open_as(self, identity: Identity, host: str, port: int, timeout: float) -> Any:
        """A physical connection to ``host:port`` opened as ``identity``, within ``timeout``."""
        try:
            conn = await self.driver.open(identity, host, port, timeout, self.auth)
        except Exception as exc:
            if self.driver.is_login_error(exc):
                self.identities.refused(identity)
            raise
        self.identities.logged_in(identity)
        return conn

    async def open_background(self, host: str, port: int, timeout: float) -> Any:
        """A physical connection for the cluster's own work (monitor, writer search, probes), opened
        with a borrowed identity (:meth:`Identities.for_background`): when the server refuses one
        login, the next is tried within the same ``timeout``. A connection that came out weaker than
        the strongest TLS served (a stronger identity joined meanwhile) is not kept."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        refused: BaseException | None = None
        candidates = self.identities.for_background()
        while candidates:
            identity = candidates.pop(0)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                conn = await self.open_as(identity, host, port, min(remaining, identity.connect_timeout))
            except self.driver.connect_errors as exc:
                if not self.driver.is_login_error(exc):
                    raise
                refused = exc
                continue
            if identity.tls < self.identities.strongest():
                discard(conn)
                candidates = self.identities.for_background()
                continue
            self._background_tls[conn] = identity.tls
            return conn
        if refused is not None:
            raise refused
        raise OSError(f"no connection identity left to open a connection to {host}:{port}")

    def too_weak(self, conn: Any) -> bool:
        """Whether background connection ``conn`` has weaker TLS than a connection it now serves."""
        return self._background_tls.get(conn, Tls.NONE) < self.identities.strongest()

    def _strengthen_background(self) -> None:
        """A connection with stronger TLS joined: background connections opened weaker are dropped
        (the monitor and the probes open new ones, with the strongest identity, at once)."""
        if self._monitor_conn is not None and self.too_weak(self._monitor_conn):
            self._weak_dropped = True
            self._replace_monitor_conn(None)
            self._wakeup.set()
        for monitor in self.host_monitors.values():
            monitor.drop_weak_probe()

    # -- first contact -----------------------------------------------------------------------------

    def adopt(self, dialect: Dialect, topology: Topology) -> None:
        """Start from what an earlier cluster of the same identity learned (see the module docstring)."""
        self.dialect = dialect
        self._build = self._host_builder()
        self.topology = topology

    async def prepare(self, conn: Any) -> None:
        """On the first connection: detect the dialect and read the topology, once for all."""
        if self.dialect is not None and self.topology is not None:
            self._start_monitor()  # (a cluster that adopted both has not started it yet)
            return
        async with self._prepared:
            if self.dialect is None:
                forced = self.options.wrapper_dialect
                timeout = self.options.auxiliary_query_timeout
                if forced:
                    self.dialect = self.driver.dialects[forced]()
                else:
                    self.dialect = await self.driver.detect_dialect(conn, timeout)
                self._build = self._host_builder()
                topology_log.debug("cluster %s:%s uses dialect %s", self.host, self.port, self.dialect.code)
            if self.topology is None:
                instances = await self._read(conn)
                if instances is None:
                    instances = [Instance("initial", self.host, self.port, Role.WRITER)]
                self._publish(instances, verified=False)
        self._start_monitor()

    async def check_pattern(self, identity: Identity, reached: Instance, host: str, port: int) -> None:
        """Once per cluster: does ``cluster_instance_host_pattern`` lead to the instances? The first
        connection reached instance ``reached`` through ``host:port``; the address the pattern gives
        for it must answer as that same instance, or failover and host monitoring would dial nowhere.

        :raises ConfigurationError: naming the pattern, the address it gave and what happened there.
        """
        pattern = self.options.cluster_instance_host_pattern
        if self._pattern_checked or pattern is None or self._build is None or self.dialect is None:
            return
        if not self.dialect.has_topology:
            return  # no instance is ever reached through it
        async with self._prepared:
            if self._pattern_checked:
                return
            # where failover and host monitoring would dial this instance: its topology entry (built
            # through the pattern), else the pattern itself
            listed = self.topology.get(reached.instance_id) if self.topology is not None else None
            try:
                address = (
                    (listed.host, listed.port) if listed else self._build(reached.instance_id, None, None)
                )
            except LookupError:
                return
            if address != (host, port):
                problem = await self._answers_as(identity, address, reached.instance_id)
                if problem is not None:
                    port_text = "" if pattern.port is None else f":{pattern.port}"
                    raise ConfigurationError(
                        f"cluster_instance_host_pattern {pattern.template + port_text!r} leads nowhere: "
                        f"for instance {reached.instance_id!r}, reached through {host}:{port}, it gives "
                        f"{address[0]}:{address[1]}, where {problem}; failover and host monitoring "
                        "reach the instances through it"
                    )
            self._pattern_checked = True

    async def _answers_as(self, identity: Identity, address: tuple[str, int], instance_id: str) -> str | None:
        """None when ``address`` answers as ``instance_id``; else what happened there."""
        assert self.dialect is not None
        try:
            conn = await self.open_as(identity, address[0], address[1], identity.connect_timeout)
        except self.driver.connect_errors as exc:
            if self.driver.is_login_error(exc):
                raise  # the address works, the login does not: the caller's error to see
            return f"connecting failed ({type(exc).__name__}: {exc})"
        try:
            answered = await self.dialect.instance_id(conn, self.options.auxiliary_query_timeout)
        finally:
            discard(conn)
        return None if answered == instance_id else f"instance {answered!r} answered"

    def _host_builder(self) -> HostBuilder:
        assert self.dialect is not None
        pattern = self.options.cluster_instance_host_pattern
        unreachable = pattern is None and classify_host(self.host).instance_template is None
        if self.dialect.ids_only and unreachable:
            raise ConfigurationError(
                f"cluster_instance_host_pattern is required to reach the instances of an Aurora cluster "
                f"through {self.host!r} (an IP address or custom domain); for example "
                "'?.abcdefgh.us-east-1.rds.amazonaws.com' or '10.0.0.?:5432'"
            )
        return host_builder(pattern, self.host, self.port)

    async def _read(self, conn: Any) -> list[Instance] | None:
        assert self.dialect is not None and self._build is not None
        if not self.dialect.has_topology:
            return None
        return await self.dialect.topology(conn, self.options.auxiliary_query_timeout, self._build)

    def _publish(self, instances: list[Instance], *, verified: bool) -> Topology:
        old = self.topology
        now = time.monotonic()
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
        if (
            new.writer is not None
            and old_writer is not None
            and new.writer.instance_id != old_writer.instance_id
        ):
            topology_log.info("writer changed: %s -> %s", old_writer.instance_id, new.writer.instance_id)
            self.tracker.close_all_on(old_writer.instance_id)  # connections with the tracker plugin
        elif new.version != (old.version if old else 0):
            topology_log.debug("topology %r", new)
        return new

    def confirm(self, instance: Instance) -> None:
        """A connection found ``instance`` to be the writer: if the topology agrees, it is confirmed."""
        writer = self.topology.writer if self.topology is not None else None
        if instance.role is Role.WRITER and writer is not None and writer.instance_id == instance.instance_id:
            self.confirmed = True

    async def identify(self, conn: Any, host: str, port: int) -> Instance:
        """Which instance ``conn`` reached, with the role it really has now."""
        assert self.dialect is not None
        timeout = self.options.auxiliary_query_timeout
        is_reader = await self.dialect.is_reader(conn, timeout)
        instance_id = await self.dialect.instance_id(conn, timeout)
        known = self.topology.get(instance_id) if self.topology is not None else None
        role = Role.READER if is_reader else Role.WRITER
        if known is not None:
            return Instance(known.instance_id, known.host, known.port, role, known.last_update)
        return Instance(instance_id, host, port, role)

    # -- the writer search (single flight) ---------------------------------------------------------

    async def find_writer(self, not_before: float, deadline: float) -> Topology:
        """A topology whose writer was verified at or after ``not_before``; every caller shares one
        search. Raises ``TimeoutError`` at ``deadline``."""
        loop = asyncio.get_running_loop()
        while True:
            topology = self.topology
            if topology is not None and topology.writer is not None and topology.verified_at >= not_before:
                return topology
            if self._search is None or self._search.done():
                self._search = asyncio.ensure_future(self._search_writer(deadline))
                self._search.add_done_callback(retrieve_exception)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no writer found before the failover deadline")
            try:
                return await asyncio.wait_for(asyncio.shield(self._search), remaining)
            except TimeoutError:
                if loop.time() >= deadline:
                    raise
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if self._closed and current is not None and not current.cancelling():
                    raise TimeoutError("the cluster was closed") from None  # the search was, not us
                raise

    async def _search_writer(self, deadline: float) -> Topology:
        """Watch every known instance at once until one proves it is the writer.

        Each instance has its own watcher, so an unreachable or black-holed instance never delays the
        others: a reachable one is asked again every ``_POLL`` seconds on the connection already open,
        an unreachable one is reconnected to with a short back-off (up to ``topology_high_refresh``).
        """
        self.stats["writer_searches"] += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        candidates = self._candidates()
        refused: dict[str, BaseException] = {}  # endpoint -> its last refusal, while it refuses
        won = await race_first(
            [functools.partial(self._watch, i, deadline, refused, len(candidates)) for i in candidates],
            discard=discard_first,
        )
        if won is None:
            if len(refused) == len(candidates):  # every instance refused every login it could borrow
                raise LoginRefused("every login was refused") from next(iter(refused.values()))
            raise TimeoutError("no writer found before the failover deadline")
        conn, instances = won
        if self.too_weak(conn):  # a stronger identity joined during the search: the monitor opens anew
            discard(conn)
            conn = None
        self._replace_monitor_conn(conn)
        self._monitor_id = next(i.instance_id for i in instances if i.role is Role.WRITER)
        topology = self._publish(instances, verified=True)
        self._fast_until = loop.time() + self.options.topology_high_refresh_period
        topology_log.info(
            "writer %s verified after %.0f ms (%d instances watched)",
            topology.writer.instance_id if topology.writer else "?",
            (loop.time() - started) * 1000,
            len(candidates),
        )
        return topology

    def _candidates(self) -> list[Instance]:
        known = list(self.topology.instances) if self.topology is not None else []
        initial = Instance("initial", self.host, self.port, Role.WRITER)
        if all(i.endpoint != initial.endpoint for i in known):
            known.append(initial)
        return known

    async def _watch(
        self, instance: Instance, deadline: float, refused: dict[str, BaseException], watched: int
    ) -> tuple[Any, list[Instance]] | None:
        """Ask ``instance`` "are you the writer?" until it says yes (its connection and the topology
        it reports) or ``deadline`` passes (None). While the instance refuses every login the cluster
        can borrow, it is in ``refused`` (and asked again, with the identities live then); once all
        ``watched`` instances refuse, every watcher gives up: users are the cluster's, so the writer
        refuses them too."""
        assert self.dialect is not None
        loop = asyncio.get_running_loop()
        aux = self.options.auxiliary_query_timeout
        conn: Any | None = None
        backoff = _POLL
        try:
            while (remaining := deadline - loop.time()) > 0 and len(refused) < watched:
                if conn is None:
                    try:
                        conn = await self.open_background(instance.host, instance.port, remaining)
                    except self.driver.connect_errors as exc:
                        if self.driver.is_login_error(exc):
                            topology_log.info("probe %s: every login refused", instance.endpoint)
                            refused[instance.endpoint] = exc
                        else:
                            refused.pop(instance.endpoint, None)
                            topology_log.debug(
                                "probe %s: unreachable (%s)", instance.endpoint, type(exc).__name__
                            )
                        await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
                        backoff = min(backoff * 2, max(_POLL, self.options.topology_high_refresh))
                        continue
                    refused.pop(instance.endpoint, None)
                    backoff = _POLL
                try:
                    if await self.dialect.is_writer(conn, min(aux, remaining)):
                        # this instance is the writer, whichever rows of the catalog claim so
                        instance_id = await self.dialect.instance_id(conn, aux)
                        instances = with_writer(
                            await self._read(conn) or [], instance_id, instance.host, instance.port
                        )
                        topology_log.debug("probe %s: the writer (%s)", instance.endpoint, instance_id)
                        found, conn = conn, None
                        return found, instances
                except self.driver.connect_errors as exc:
                    topology_log.debug("probe %s: failed (%s)", instance.endpoint, type(exc).__name__)
                    discard(conn)
                    conn = None
                await asyncio.sleep(min(_POLL, max(0.0, deadline - loop.time())))
            return None
        finally:
            discard(conn)

    # -- the monitor task --------------------------------------------------------------------------

    def _start_monitor(self) -> None:
        if (
            self._monitor is None
            and not self._closed
            and self.dialect is not None
            and self.dialect.has_topology
        ):
            self._monitor = asyncio.ensure_future(self._run_monitor())

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

    def request_refresh(self) -> None:
        self._fast_until = max(self._fast_until, time.monotonic() + self.options.topology_high_refresh_period)
        self._wakeup.set()

    async def _run_monitor(self) -> None:
        loop = asyncio.get_running_loop()
        first = True
        while not self._closed:  # (also if a cancellation was lost: asyncio.wait_for on 3.11 can drop one)
            fast = loop.time() < self._fast_until
            interval = self.options.topology_high_refresh if fast else self.options.topology_refresh
            if first:  # soon, not at once (see _FIRST_REFRESH): the monitoring connection's loss is news
                interval, first = min(interval, _FIRST_REFRESH), False
            try:
                async with asyncio.timeout(interval):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            try:
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken monitor must not die: log and find the writer again
                if self._monitor_conn is None and self._weak_dropped:
                    self._weak_dropped = False  # its connection was too weak, not lost: open anew
                    continue
                lost = self.driver.is_connection_error(exc, self._monitor_conn)
                if not lost and not isinstance(exc, TimeoutError):
                    topology_log.warning("topology refresh failed: %r", exc)
                self._replace_monitor_conn(None)
                try:
                    await self.find_writer(time.monotonic(), loop.time() + _MONITOR_SEARCH)
                except TimeoutError:
                    topology_log.warning("no writer found within %g s; will keep trying", _MONITOR_SEARCH)
                except LoginRefused:
                    topology_log.warning("every login was refused; will try again at the next refresh")
                    self._fast_until = 0.0  # not every topology_high_refresh

    async def _refresh(self) -> None:
        writer = self.topology.writer if self.topology is not None else None
        if writer is None:
            raise TimeoutError("no known writer")
        conn = self._monitor_conn
        if conn is None or conn.is_closed():
            conn = await self.open_background(writer.host, writer.port, _BACKGROUND_CONNECT)
            self._replace_monitor_conn(conn)
            self._weak_dropped = False
        assert self.dialect is not None
        aux = self.options.auxiliary_query_timeout
        if not await self.dialect.is_writer(conn, aux):
            raise TimeoutError("the monitoring connection is no longer on the writer")
        if self._monitor_id is None:
            self._monitor_id = await self.dialect.instance_id(conn, aux)
        instances = with_writer(await self._read(conn) or [], self._monitor_id, writer.host, writer.port)
        self._publish(instances, verified=True)

    def _replace_monitor_conn(self, conn: Any | None) -> None:
        old, self._monitor_conn = self._monitor_conn, conn
        if conn is not old:
            self._monitor_id = None  # whoever sets a connection knows, or the next refresh asks
        if conn is not None and conn is not old:
            conn.add_termination_listener(self._monitor_conn_lost)
        if old is not None and old is not conn:
            discard(old)

    def _monitor_conn_lost(self, conn: Any) -> None:
        """The monitoring connection died (its instance shut down, crashed, was demoted): refresh now
        rather than at the next tick, so a writer change is seen, and the tracker acts, at once."""
        if conn is self._monitor_conn and not self._closed:
            topology_log.debug("monitoring connection lost: refreshing the topology now")
            self.request_refresh()

    # -- lifetime ----------------------------------------------------------------------------------

    def acquire(self, identity: Identity) -> Cluster:
        """One more user of the cluster (a connection, a pool, a connector), who is ``identity``."""
        self.refs += 1
        stronger = identity.tls > self.identities.strongest()
        self.identities.add(identity)
        if stronger and self.refs > 1:
            self._strengthen_background()
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
        if self._closed:
            await self.wait_closed()

    def _stop(self) -> None:
        """Stop the background work (synchronous, so that it also works from ``terminate()``)."""
        if self._closed:
            return
        self._closed = True
        self._forget(self)
        for task in (self._monitor, self._search):
            if task is not None:
                task.cancel()
        for monitor in self.host_monitors.values():
            monitor.stop()
        self._replace_monitor_conn(None)

    async def wait_closed(self) -> None:
        tasks = [t for t in (self._monitor, self._search) if t is not None]
        if tasks:
            await asyncio.wait(tasks)
        for monitor in self.host_monitors.values():
            await monitor.wait_stopped()

    @property
    def closed(self) -> bool:
        return self._closed


class ClusterRegistry:
    """The clusters of this process, per event loop (tasks and connections belong to one loop)."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Cluster]] = (
            weakref.WeakKeyDictionary()
        )
        # what closed clusters learned: (dialect, topology, when), per loop and cluster identity
        self._learned: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, tuple[Dialect, Topology, float]]
        ] = weakref.WeakKeyDictionary()
        # the credentials cache of each loop, shared by its clusters (it outlives them: connect-close-
        # connect reuses a token or a secret until it expires)
        self._auth: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Authenticator] = (
            weakref.WeakKeyDictionary()
        )
        self._aws_session: Any = None  # the process's aioboto3 session, made on first use

    def authenticator(self) -> Authenticator:
        """The running loop's credentials cache."""
        loop = asyncio.get_running_loop()
        auth = self._auth.get(loop)
        if auth is None:
            auth = self._auth[loop] = Authenticator(default_session=self.aws_session)
        return auth

    def aws_session(self) -> Any:
        """The aioboto3 session of every connection that brings none (``aws_session=``): one per
        process, so botocore loads its service models once."""
        if self._aws_session is None:
            import aioboto3  # noqa: PLC0415 - the optional 'aws' extra, checked when the config was parsed

            self._aws_session = aioboto3.Session()
        return self._aws_session

    def acquire(self, config: Config) -> Cluster:
        """The cluster ``config`` belongs to, with one more reference, held by ``config.identity``."""
        loop = asyncio.get_running_loop()
        clusters = self._by_loop.setdefault(loop, {})
        key = cluster_key(config)
        cluster = clusters.get(key)
        if cluster is None or cluster.closed:
            cluster = Cluster(key, config, self._forget, self.authenticator())
            learned = self._learned.get(loop, {}).pop(key, None)
            if (
                learned is not None
                and config.options.plugins
                and time.monotonic() - learned[2] < config.options.topology_refresh
            ):
                cluster.adopt(learned[0], learned[1])
            clusters[key] = cluster
        return cluster.acquire(config.identity)

    def _forget(self, cluster: Cluster) -> None:
        for loop, clusters in self._by_loop.items():
            if clusters.get(cluster.key) is cluster:
                del clusters[cluster.key]
                dialect, topology = cluster.dialect, cluster.topology
                if (
                    dialect is not None
                    and topology is not None
                    and (cluster.confirmed or not dialect.has_topology)
                ):
                    learned = self._learned.setdefault(loop, {})
                    learned[cluster.key] = (dialect, topology, time.monotonic())

    def clusters(self) -> list[Cluster]:
        """Clusters alive on the running loop (for tests and diagnostics)."""
        return list(self._by_loop.get(asyncio.get_running_loop(), {}).values())


registry = ClusterRegistry()
