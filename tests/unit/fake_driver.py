"""A fake database driver and a scripted cluster: failover logic tested in milliseconds, with no
sockets and no servers.

- :class:`FakeCluster` is the "cluster": its instances, which of them answer as the writer at each
  moment (``claims``), which refuse connections or never answer, and, per instance, how many fake
  connections were opened and closed and which queries they were asked.
- :class:`FakeRawConnection` implements the core's ``RawConnection`` protocol (and the few asyncpg
  methods the facade calls); :class:`FakeDialect` asks it who is who.
- :func:`fake_driver` is the real PostgreSQL ``Driver`` with ``dataclasses.replace`` for how a
  connection is opened and how errors are classified; :func:`make_cluster` builds a real ``Cluster``
  on it (``Cluster`` takes its driver as an argument: no library seam needed).
- :class:`VirtualClock` makes the running loop's clock virtual: it stands still while callbacks
  run and jumps straight to the next timer when the loop would wait. The code under test keeps its
  real timeouts, polls and back-offs (``POLL``, ``failure_detection_interval``, ``failover_timeout``),
  yet a test takes milliseconds, and the order of events is the same on every run.

Tests wait with :meth:`FakeCluster.until` (a condition, woken by every fake event, with a deadline
on the loop's clock), never with a sleep meant to let other tasks make progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

from aurora_async._auth import Authenticator, ClusterCredentials
from aurora_async._cluster import Cluster
from aurora_async._config import Config, parse
from aurora_async._dialect import Dialect, HostBuilder, host_builder
from aurora_async._driver import Driver
from aurora_async._events import EventHub
from aurora_async._identity import Identity
from aurora_async._topology import Instance, Role
from aurora_async.postgresql.driver import POSTGRESQL

DOMAIN = "fake.invalid"
CLUSTER_HOST = f"cluster.{DOMAIN}"  # the cluster endpoint: its "DNS" names one instance (FakeCluster.dns)
PORT = 5432


# -- what the fake driver raises -------------------------------------------------------------------


class FakeDriverError(Exception):
    """Base of the fake driver's own errors (all of them are among its ``connect_errors``)."""


class FakeConnectionLost(FakeDriverError):
    """The physical connection is gone (a connection error: it calls for a failover).
    ``may_have_run`` is False when the statement was never sent (the connection was closed already)."""

    def __init__(self, message: str, *, may_have_run: bool = True) -> None:
        super().__init__(message)
        self.may_have_run = may_have_run


class FakeLoginError(FakeDriverError):
    """The instance refused the login."""


class FakeSQLError(Exception):
    """An ordinary SQL error (a syntax error, a constraint): the connection still works."""


class FakeReadOnlyError(FakeSQLError):
    """A write refused because the instance is read-only (a reader, or a demoted writer)."""


def is_connection_error(exc: BaseException, conn: Any) -> bool:
    """The fake driver's classifier: a lost connection or a socket error (not a timeout)."""
    if isinstance(exc, FakeConnectionLost):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, TimeoutError)


def is_read_only_error(exc: BaseException) -> bool:
    return isinstance(exc, FakeReadOnlyError)


def is_login_error(exc: BaseException) -> bool:
    return isinstance(exc, FakeLoginError)


def may_have_taken_effect(exc: BaseException) -> bool:
    if isinstance(exc, FakeReadOnlyError):
        return False
    return getattr(exc, "may_have_run", True) is not False


async def _ping(conn: Any) -> None:
    await conn.round_trip("ping", None)


async def _detect_dialect(conn: Any, timeout: float) -> Dialect:
    return FakeDialect()


async def _no_tcp(host: str, port: int, timeout: float) -> bool:
    return False  # no sockets: a fake instance that does not answer is unreachable, not resuming


def fake_driver(cluster: FakeCluster) -> Driver:
    """The PostgreSQL driver with the fake's connect, probe and error classifiers."""
    return dataclasses.replace(
        POSTGRESQL,
        connect_name="fake.connect()",
        connect_errors=(OSError, TimeoutError, FakeDriverError),
        dialects={FakeDialect.code: FakeDialect},
        open=cluster.open,
        is_connection_error=is_connection_error,
        is_read_only_error=is_read_only_error,
        may_have_taken_effect=may_have_taken_effect,
        is_login_error=is_login_error,
        ping=_ping,
        session_id=_session_id,
        end_session=_end_session,
        session_alive=_session_alive,
        detect_dialect=_detect_dialect,
        accepts_tcp=_no_tcp,
    )


def _session_id(conn: FakeRawConnection) -> int:
    return conn.seq


async def _end_session(conn: FakeRawConnection, session: int, age: float) -> bool:
    """The fake's server sessions end with their connection: there is never one left to end."""
    await conn.round_trip("end_session", None)
    return False


async def _session_alive(conn: FakeRawConnection, session: int) -> bool:
    await conn.round_trip("session_alive", None)
    return False


# -- the scripted cluster --------------------------------------------------------------------------


@dataclass(eq=False)
class FakeInstance:
    """One instance of the fake cluster, with what happened to it."""

    instance_id: str
    state: str = "up"  # "up"; "refusing" (connection refused); "silent" (connects and queries hang)
    connect_delay: float = 0.0  # seconds a connect takes (the loop's clock)
    query_delay: float = 0.0  # seconds a round trip takes
    refuse_login: bool = False
    # scripted answers of the next contacts (connect or ping), oldest first: True answers, False fails;
    # when empty, ``state`` decides
    script: deque[bool] = field(default_factory=deque)
    opened: int = 0
    closed: int = 0
    connect_attempts: int = 0
    queries: Counter[str] = field(default_factory=Counter)
    connections: list[FakeRawConnection] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"{self.instance_id}.{DOMAIN}"

    def open_connections(self) -> list[FakeRawConnection]:
        return [c for c in self.connections if not c.is_closed()]


class FakeCluster:
    """A scripted cluster (see the module docstring). ``claims`` are the instances that answer "I am
    the writer" now (two during a failover's overlap, none while one is being promoted)."""

    def __init__(self, ids: Iterable[str] = ("a", "b", "c"), *, writer: str = "a") -> None:
        self.instances = {i: FakeInstance(i) for i in ids}
        self.claims: set[str] = {writer}
        self.dns = writer  # the instance the cluster endpoint resolves to
        self.catalog_writer: str | None = None  # the writer the catalog rows name (None: per claims)
        self.regions: dict[str, str] = {}  # instance id -> its region (an Aurora Global Database's)
        self.clusters: list[Cluster] = []  # made by make_cluster: fake_world closes them at the end
        self.events = 0
        self._changed = asyncio.Event()
        self._seq = itertools.count(1)

    def __getitem__(self, instance_id: str) -> FakeInstance:
        return self.instances[instance_id]

    # -- what the test scripts --

    def promote(self, instance_id: str) -> None:
        """``instance_id`` alone answers as the writer from now on. The cluster endpoint's DNS lags:
        it still names the old writer until the test sets ``dns``."""
        self.claims = {instance_id}
        self.note()

    def kill(self, instance_id: str) -> None:
        """The instance goes down: its connections are cut, new ones are refused."""
        instance = self.instances[instance_id]
        instance.state = "refusing"
        for conn in instance.open_connections():
            conn.cut()
        self.note()

    def restart(self, instance_id: str) -> None:
        self.instances[instance_id].state = "up"
        self.note()

    def silence(self, instance_id: str) -> None:
        """The instance's network black-holes: connects and round trips never answer."""
        self.instances[instance_id].state = "silent"
        self.note()

    # -- what the test observes --

    def open_connections(self) -> list[FakeRawConnection]:
        return [c for i in self.instances.values() for c in i.open_connections()]

    def opened(self) -> int:
        return sum(i.opened for i in self.instances.values())

    def queries(self, kind: str) -> int:
        return sum(i.queries[kind] for i in self.instances.values())

    def note(self) -> None:
        """Something happened: wake every :meth:`until`."""
        self.events += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``condition()`` holds, checked after every fake event; ``TimeoutError`` after
        ``timeout`` seconds of the loop's clock."""
        async with asyncio.timeout(timeout):
            while not condition():
                await self._changed.wait()

    def catalog(self) -> list[Instance]:
        """The instances as the catalog lists them (every instance; one writer row; each with its
        region, when ``regions`` names one)."""
        writer = self.catalog_writer or next(iter(sorted(self.claims)), None)
        return [
            Instance(
                i.instance_id,
                i.host,
                PORT,
                Role.WRITER if i.instance_id == writer else Role.READER,
                region=self.regions.get(i.instance_id),
            )
            for i in self.instances.values()
        ]

    # -- the driver side --

    def resolve(self, host: str, port: int) -> FakeInstance:
        if port == PORT and host == CLUSTER_HOST:
            return self.instances[self.dns]
        if port == PORT and host.endswith("." + DOMAIN):
            instance = self.instances.get(host.removesuffix("." + DOMAIN))
            if instance is not None:
                return instance
        raise OSError(f"fake: unknown host {host}:{port}")

    def _contact(self, instance: FakeInstance) -> bool | None:
        """The next scripted answer of ``instance`` (None: none scripted)."""
        return instance.script.popleft() if instance.script else None

    async def open(
        self,
        identity: Identity,
        host: str,
        port: int,
        timeout: float,
        auth: Authenticator | ClusterCredentials,
    ) -> FakeRawConnection:
        """The fake driver's ``open``: a connection to the instance at ``host:port`` within ``timeout``."""
        instance = self.resolve(host, port)
        instance.connect_attempts += 1
        self.note()
        scripted = self._contact(instance)
        async with asyncio.timeout(timeout):
            if instance.state == "silent" and scripted is None:
                await asyncio.Event().wait()  # a black hole: only the timeout ends it
            if instance.connect_delay:
                await asyncio.sleep(instance.connect_delay)  # the fake's latency, on the loop's clock
        if scripted is False or (scripted is None and instance.state == "refusing"):
            raise ConnectionRefusedError(f"fake: {instance.instance_id} refused the connection")
        if instance.refuse_login:
            raise FakeLoginError(f"fake: {instance.instance_id} refused the login")
        conn = FakeRawConnection(self, instance, identity, next(self._seq))
        instance.opened += 1
        instance.connections.append(conn)
        self.note()
        return conn


# -- a physical connection -------------------------------------------------------------------------


class FakeRawConnection:
    """A fake physical connection to one :class:`FakeInstance` (the ``RawConnection`` protocol, and
    ``execute``/``close`` as the asyncpg facade calls them)."""

    def __init__(self, cluster: FakeCluster, instance: FakeInstance, identity: Identity, seq: int) -> None:
        self.cluster = cluster
        self.instance = instance
        self.identity = identity
        self.seq = seq
        self.in_transaction = False
        self.failures: deque[BaseException] = deque()  # raised by the next execute() calls, in order
        self.executed: list[str] = []
        self._closed = False
        self._cut = asyncio.Event()
        self._listeners: list[Callable[[Any], None]] = []

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<FakeRawConnection #{self.seq} to {self.instance.instance_id} {state}>"

    # RawConnection

    def is_closed(self) -> bool:
        return self._closed

    def terminate(self) -> None:
        self._close()

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def add_termination_listener(self, callback: Any) -> None:
        self._listeners.append(callback)

    # what the facade calls

    async def close(self, *, timeout: float | None = None) -> None:
        self._close()

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        await self.round_trip("execute", timeout)
        self.executed.append(query)
        if self.failures:
            raise self.failures.popleft()
        verb = query.split(maxsplit=1)[0].upper() if query.strip() else ""
        if verb in ("INSERT", "UPDATE", "DELETE") and self.instance.instance_id not in self.cluster.claims:
            raise FakeReadOnlyError("cannot execute INSERT in a read-only transaction")
        if verb == "BEGIN":
            self.in_transaction = True
        elif verb in ("COMMIT", "ROLLBACK"):
            self.in_transaction = False
        return verb

    # the fake's mechanics

    def cut(self) -> None:
        """The server side went away: calls in flight and later raise ``FakeConnectionLost``."""
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.instance.closed += 1
        self._cut.set()
        for callback in self._listeners:
            callback(self)
        self.cluster.note()

    async def round_trip(self, kind: str, timeout: float | None) -> None:
        """One request and its answer, as the instance's state and latency allow."""
        instance = self.instance
        instance.queries[kind] += 1
        self.cluster.note()
        if self._closed:
            raise FakeConnectionLost("connection is closed", may_have_run=False)
        if kind == "ping" and self.cluster._contact(instance) is False:
            raise FakeConnectionLost(f"fake: {instance.instance_id} did not answer the probe")
        async with asyncio.timeout(timeout):
            if instance.state == "silent":
                await self._cut.wait()
            elif instance.query_delay:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(instance.query_delay):
                        await self._cut.wait()
        if self._closed:
            raise FakeConnectionLost("fake: the connection was cut")


class FakeDialect(Dialect):
    """Asks a :class:`FakeRawConnection` who is who; the answer is the cluster's state when the
    round trip ends."""

    code: ClassVar[str] = "fake"
    has_topology: ClassVar[bool] = True

    async def detect(self, conn: Any, timeout: float) -> bool:
        return True

    async def is_reader(self, conn: Any, timeout: float) -> bool:
        await conn.round_trip("is_reader", timeout)
        return conn.instance.instance_id not in conn.cluster.claims

    async def is_writer(self, conn: Any, timeout: float) -> bool:
        await conn.round_trip("is_writer", timeout)
        return conn.instance.instance_id in conn.cluster.claims

    async def instance_id(self, conn: Any, timeout: float) -> str:
        await conn.round_trip("instance_id", timeout)
        return conn.instance.instance_id  # type: ignore[no-any-return]

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        await conn.round_trip("topology", timeout)
        return conn.cluster.catalog()  # type: ignore[no-any-return]


# -- the cluster under test ------------------------------------------------------------------------


def make_cluster(world: FakeCluster, **options: Any) -> tuple[Cluster, Config]:
    """A real :class:`Cluster` on the fake driver, with the fake dialect and the catalog's topology
    (verified now), held by one reference of the returned config's identity. ``options`` are
    aurora_async options, read (and checked) as ``connect()`` reads them."""
    options.setdefault("cluster_instance_host_pattern", f"?.{DOMAIN}")
    config = parse(f"postgresql://app:secret@{CLUSTER_HOST}:{PORT}/db", **options)
    cluster = Cluster(
        ("fake", id(world)),
        config,
        fake_driver(world),
        Authenticator(default_session=lambda: None),
        forget=lambda cluster: None,
        events=EventHub(f"{CLUSTER_HOST}:{PORT}", "postgresql"),
    )
    cluster.acquire(config.identity)
    world.clusters.append(cluster)
    cluster.dialect = FakeDialect()
    cluster.build = host_builder(config.options.cluster_instance_host_pattern, config.host, config.port)
    cluster.publish(world.catalog(), verified=True)
    return cluster, config


# -- virtual time ----------------------------------------------------------------------------------


class VirtualClock:
    """Within ``with VirtualClock():`` (inside a coroutine) the running loop's clock is virtual: it
    only moves when every task waits, and then jumps to the next timer instead of waiting for it.
    ``loop.time()``, ``asyncio.sleep``, ``asyncio.timeout`` and ``call_later`` all follow it
    (``time.monotonic()`` does not). Only for selector event loops (asyncio's default on Unix)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._selector: Any = None
        self._start = 0.0
        self.advanced = 0.0  # virtual seconds jumped over

    def now(self) -> float:
        return self._start + self.advanced

    def __enter__(self) -> VirtualClock:
        loop = asyncio.get_running_loop()
        selector = getattr(loop, "_selector", None)
        if selector is None:
            raise RuntimeError("VirtualClock needs a selector event loop")
        real_select = selector.select
        self._loop, self._selector, self._start = loop, selector, loop.time()

        def select(timeout: float | None = None) -> Any:
            events = real_select(0)
            if events or timeout == 0:
                return events
            if timeout is None:  # nothing scheduled: only real I/O (another thread) can wake the loop
                return real_select(None)
            self.advanced += timeout
            return events

        selector.select = select
        loop.time = self.now  # type: ignore[method-assign]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._loop is not None
        del self._loop.time
        del self._selector.select


@contextlib.asynccontextmanager
async def fake_world(
    ids: Iterable[str] = ("a", "b", "c"), *, writer: str = "a"
) -> AsyncIterator[FakeCluster]:
    """A :class:`FakeCluster` under a :class:`VirtualClock` (for a fixture); at the end, every cluster
    :func:`make_cluster` made on it is closed (also when the test failed half-way)."""
    with VirtualClock():
        world = FakeCluster(ids, writer=writer)
        try:
            yield world
        finally:
            for cluster in world.clusters:
                await cluster.aclose()


async def elapse(seconds: float) -> None:
    """Let ``seconds`` of the loop's clock pass (under a :class:`VirtualClock`, at once). To move the
    clock past a moment, not to let other tasks make progress: wait for that with
    :meth:`FakeCluster.until`."""
    await asyncio.sleep(seconds)


def ids(instances: Iterator[Instance] | Iterable[Instance]) -> list[str]:
    return [i.instance_id for i in instances]
