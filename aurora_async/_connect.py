"""``connect()`` and ``connect_raw()``: the first connection, checked to be on the right instance."""

from __future__ import annotations

import asyncio
import ssl
from types import TracebackType
from typing import Any, Literal, overload

import asyncpg

from ._cluster import Cluster
from ._concurrency import AwaitableContext
from ._config import Config, parse
from ._custom_endpoint import Membership, OutsideEndpoint, membership_of, mode_of
from ._driver import discard
from ._exceptions import ConfigurationError, FailoverFailedError
from ._global_failover import GlobalTarget, home_modes, home_region_of
from ._host_monitor import WholeConnection
from ._identity import LoginRefused
from ._options import FailoverMode
from ._plugins import Plugin
from ._rds_hosts import RdsUrlType
from ._registry import registry
from ._routing import NoInstanceFound, connect_to_reader, connect_to_writer, home_region_target
from ._topology import Instance, Role
from .mysql.connection import AuroraMySQLConnection
from .postgresql.connection import AuroraConnection


def endpoint_membership(cluster: Cluster, config: Config) -> Membership | None:
    """The members of the custom endpoint ``config`` came through, as known now (None: not one)."""
    return membership_of(cluster.custom_endpoints, config.custom_endpoint)


def failover_mode(cluster: Cluster, config: Config) -> FailoverMode:
    """``failover_mode``, or, through a custom endpoint, the mode its type asks for by default."""
    return mode_of(
        cluster.custom_endpoints,
        config.custom_endpoint,
        config.options.failover_mode,
        mode_given=config.failover_mode_given,
    )


async def _open(config: Config) -> tuple[Cluster, Any, Instance]:
    cluster = registry.acquire(config)
    if config.options.has(Plugin.BLUE_GREEN):
        cluster.blue_green_wanted = True  # the topology monitor reads the deployment's metadata
    try:
        if config.options.has(Plugin.BLUE_GREEN) and cluster.blue_green.holding:
            await cluster.blue_green.wait()  # a switchover is under way: connect once it is over
        address: dict[str, str | int] = {"server.address": config.host, "server.port": config.port}
        with cluster.events.span("aurora_async.connect", **address) as span:
            raw, instance = await _reach(cluster, config)
            span.set_attribute("aurora_async.instance", instance.instance_id)
        return cluster, raw, instance
    except BaseException as exc:
        await cluster.release_and_wait(config.identity)
        timed_out = cluster.driver.connect_timed_out
        if isinstance(exc, TimeoutError) and timed_out is not None:
            raise timed_out(config.host, config.port) from exc  # what the driver's connect raises
        raise


async def _reach(cluster: Cluster, config: Config) -> tuple[Any, Instance]:
    """A physical connection for ``config`` to an instance in its role, and which instance it is."""
    if config.custom_endpoint is not None:  # its members, before any instance is chosen
        monitor = cluster.custom_endpoint(config.custom_endpoint, registry.aws_session)
        await monitor.ready(config.options.custom_endpoint_info_timeout)
    known = cluster.dialect is not None  # an earlier connection already learned the topology
    if known and _route_around_down_hosts(cluster, config):
        return await _elsewhere(cluster, config, _down_hosts(cluster))
    try:
        raw, instance = await _first_contact(cluster, config)
    except cluster.driver.connect_errors as exc:
        if not (known and config.options.has(Plugin.FAILOVER) and _unreachable(cluster, exc)):
            raise
        # the endpoint's instance is failing (a failover is under way): reach one in the right role
        # through the known topology, as a failover would, rather than failing the connect
        return await _elsewhere(cluster, config, f"{type(exc).__name__} at {config.host}")
    if cluster.dialect is not None and (
        config.options.has(Plugin.INITIAL_CONNECTION) or config.custom_endpoint is not None
    ):
        raw, instance = await _right_instance(cluster, config, raw, instance)
    cluster.confirm(instance)
    return raw, instance


def _route_around_down_hosts(cluster: Cluster, config: Config) -> bool:
    """Host monitoring declared an instance of this cluster dead: the endpoint's DNS may still lead to
    it (DNS lags a failover by seconds), and a connect there would wait out its whole timeout on a
    silent host. A ``strict_writer`` connect then reaches the writer through the known topology, as a
    failover does (the role is checked on arrival)."""
    return (
        bool(cluster.down)
        and config.options.has(Plugin.FAILOVER)
        and config.custom_endpoint is None
        and cluster.dialect is not None
        and cluster.dialect.has_topology
        and failover_mode(cluster, config) == "strict_writer"
    )


def _down_hosts(cluster: Cluster) -> str:
    return f"instance(s) {', '.join(sorted(cluster.down))} not answering host monitoring's probes"


def _unreachable(cluster: Cluster, exc: BaseException) -> bool:
    """Whether a failed connect means "that instance is down" (so another may be tried), rather than
    "this connection's settings are refused" (a certificate that does not verify, a wrong password)."""
    if isinstance(exc, ssl.CertificateError):
        return False
    return isinstance(exc, TimeoutError) or cluster.driver.is_connection_error(exc, None)


async def _first_contact(cluster: Cluster, config: Config) -> tuple[Any, Instance]:
    """Connect to the address given and find out which instance, in which role, answered."""
    identity = config.identity
    raw = await cluster.opener.open_as(
        identity, config.host, config.port, identity.connect_timeout, resume_within=identity.resume_timeout
    )
    try:
        if not config.options.plugins:  # a plain connection: no dialect, no topology, no task
            plain = cluster.driver.plain_dialect()
            is_reader = await plain.is_reader(raw, config.options.auxiliary_query_timeout)
            role = Role.READER if is_reader else Role.WRITER
            return raw, Instance(f"{config.host}:{config.port}", config.host, config.port, role)
        await cluster.discovery.prepare(raw)
        instance = await cluster.discovery.identify(raw, config.host, config.port)
        await cluster.discovery.check_pattern(identity, instance, config.host, config.port)
        return raw, instance
    except BaseException:
        discard(raw)
        raise


async def _right_instance(
    cluster: Cluster, config: Config, raw: Any, instance: Instance
) -> tuple[Any, Instance]:
    """Stale DNS can land a writer-endpoint connection on a replica (and the reader endpoint on the
    writer): move to an instance in the role the caller asked for."""
    mode = failover_mode(cluster, config)
    members = endpoint_membership(cluster, config)
    topology = cluster.topology
    wants_reader = mode == "strict_reader" or (
        mode == "reader_or_writer" and config.url_type is RdsUrlType.RDS_READER_CLUSTER
    )
    if members is not None and not members.allows(instance):  # stale DNS of the custom endpoint
        wrong = f"{instance.instance_id}, outside {members.describe()}"
    elif not config.options.has(Plugin.INITIAL_CONNECTION):
        return raw, instance
    elif mode == "strict_writer" and instance.role is Role.READER:
        wrong = "a replica"
    elif wants_reader and instance.role is Role.WRITER and topology is not None and topology.readers:
        wrong = "the writer"
    else:
        return raw, instance
    discard(raw)
    return await _elsewhere(
        cluster, config, f"{config.host}:{config.port} led to {wrong} ({instance.instance_id})"
    )


async def _elsewhere(cluster: Cluster, config: Config, why: str) -> tuple[Any, Instance]:
    """A connection to an instance in the role ``failover_mode`` asks for (on a Global Database, the
    home-region mode for where the global writer is), found through the topology."""
    mode = failover_mode(cluster, config)
    members = endpoint_membership(cluster, config)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.options.failover_timeout
    identity = config.identity
    # on an Aurora Global Database, the home-region modes of a connection of ``config`` opening now
    topology, options = cluster.topology, config.options
    modes = home_modes(topology, options, home_region_of(options, config.host, topology, None), mode)
    target: GlobalTarget | None = None
    try:
        if modes is not None:
            target = await home_region_target(
                cluster, identity, modes, None, not_before=loop.time(), deadline=deadline
            )
        if (target.reader_mode if target is not None else mode) == "strict_writer":
            writer = cluster.topology.writer if cluster.topology is not None else None
            # a writer known to be down: only a writer verified from now on will do
            down = writer is not None and writer.instance_id in cluster.down
            not_before = loop.time() if down else 0.0
            raw, found = await connect_to_writer(cluster, identity, not_before, deadline, members)
            return raw, found
        strategy = config.options.reader_host_selector_strategy
        raw, found = await connect_to_reader(
            cluster,
            identity,
            target.reader_mode if target is not None else mode,
            strategy=strategy,
            avoid=None,
            deadline=deadline,
            members=members,
            allowed=target.allows if target is not None else None,
        )
        return raw, await cluster.discovery.identify(raw, found.host, found.port)
    except LoginRefused as refused:
        raise refused.__cause__ or refused from None  # the driver's own login error, as at any connect
    except OutsideEndpoint as outside:
        raise FailoverFailedError(f"{why}, and {outside}: failover_mode={mode} cannot be met") from None
    except (NoInstanceFound, TimeoutError):
        if target is not None:
            wanted = f"{target.wanted} ({target.describe()})"
        elif modes is not None:
            wanted = f"global writer (to choose a home-region mode, home region {modes.home})"
        else:
            wanted = f"instance in the role failover_mode={mode} asks for"
        raise FailoverFailedError(
            f"{why}, and no {wanted} was reachable within {config.options.failover_timeout:g} s"
        ) from None


_FACADES: dict[str, type[AuroraConnection] | type[AuroraMySQLConnection]] = {
    "postgresql": AuroraConnection,
    "mysql": AuroraMySQLConnection,
}


async def _connect(config: Config, read_only: bool) -> Any:
    cluster, raw, instance = await _open(config)
    conn = _FACADES[config.engine](cluster, config, raw, instance)
    if read_only:
        try:
            await conn.set_read_only(True)
        except BaseException:
            conn.terminate()
            raise
    return conn


async def _close_connection(
    conn: AuroraConnection | AuroraMySQLConnection, exc: BaseException | None
) -> None:
    await conn._close(None)


@overload
def connect(
    dsn: str | None = None, *, engine: Literal["postgresql"], read_only: bool = False, **options: Any
) -> AwaitableContext[AuroraConnection]: ...


@overload
def connect(
    dsn: str | None = None, *, engine: Literal["mysql"], read_only: bool = False, **options: Any
) -> AwaitableContext[AuroraMySQLConnection]: ...


@overload
def connect(dsn: str | None = None, **options: Any) -> AwaitableContext[Any]: ...


def connect(dsn: str | None = None, *, read_only: bool = False, **options: Any) -> AwaitableContext[Any]:
    """Connect to an Aurora / RDS cluster: an :class:`AuroraConnection` (asyncpg API) for PostgreSQL,
    an :class:`AuroraMySQLConnection` (aiomysql API) for MySQL.

    ``await aurora_async.connect(dsn, ...)`` or ``async with aurora_async.connect(dsn, ...) as conn``.
    The DSN's scheme picks the engine at run time; ``engine="postgresql"`` or ``engine="mysql"`` also
    tells a type checker which connection class comes back.

    :param dsn: a ``postgresql://`` or ``mysql://`` DSN (or ``engine="mysql"`` with ``host=``...);
        aurora_async options may also be given as query parameters.
    :param options: ``plugins`` (default ``("initial_connection", "aurora_connection_tracker",
        "failover", "host_monitoring")``; ``()`` for a plain connection with no background work),
        ``failover_mode`` (``strict_writer``, ``strict_reader``, ``reader_or_writer``), on an Aurora
        Global Database ``failover_home_region``, ``active_home_failover_mode`` and
        ``inactive_home_failover_mode`` (``strict_writer``, ``strict_home_reader``,
        ``strict_out_of_home_reader``, ``strict_any_reader``, ``home_reader_or_writer``,
        ``out_of_home_reader_or_writer``, ``any_reader_or_writer``; by default from ``failover_mode``),
        ``failover_timeout``, ``topology_refresh``, ``topology_high_refresh``,
        ``topology_high_refresh_period``, ``auxiliary_query_timeout`` (seconds),
        ``cluster_instance_host_pattern``, ``cluster_id``, ``wrapper_dialect`` (``aurora-pg``,
        ``multi-az-pg``, ``rds-pg``, ``pg``; ``aurora-mysql``, ``multi-az-mysql``, ``rds-mysql``,
        ``mysql``), ``reader_host_selector_strategy`` (``random``, ``round_robin``,
        ``least_connections``), the custom endpoint options (``custom_endpoint``,
        ``custom_endpoint_members``, ...), the host monitoring and credentials options
        (:class:`Options`); every ``asyncpg.connect()`` (for MySQL: ``aiomysql.connect()``) argument is
        passed on (``timeout`` is the per-connect deadline, default 10 s). ``resume_timeout``
        (default 30 s; 0: off): a connect that times out on a host that accepts TCP but sent no
        greeting (an Aurora Serverless v2 instance resuming from auto-pause) keeps waiting up to this
        long in all; this connection's reconnects at failover wait likewise, within
        ``failover_timeout``. The library's background connections never wait for a resume.
    :param read_only: with the ``read_write_splitting`` plugin, start on a reader
        (:meth:`AuroraConnection.set_read_only`).
    :raises ConfigurationError: a bad DSN, option or value (before any network I/O).
    """
    config = parse(dsn, **options)
    if read_only and not config.options.has(Plugin.READ_WRITE_SPLITTING):
        raise ConfigurationError("read_only=True needs the 'read_write_splitting' plugin")
    return AwaitableContext(lambda: _connect(config, read_only), _close_connection)


async def connect_raw(dsn: str | None = None, **options: Any) -> Any:
    """A genuine ``asyncpg.Connection`` (for a ``mysql://`` DSN: an ``aiomysql.Connection``) to the right
    instance (stale DNS checked), for code that needs the driver's own class: SQLAlchemy's
    ``async_creator``, ``asyncpg.create_pool(connect=...)``.

    It does not fail over by itself (its owner reconnects through ``connect_raw`` again), but the
    cluster keeps monitoring the topology and, with ``aurora_connection_tracker``, terminates it when
    its instance stops being the writer, and, with ``host_monitoring``, when its host stops answering
    the monitor's probes (a black hole: a call in flight raises the driver's connection error within
    the detection window instead of waiting on TCP), so the owner's next use fails fast. For a pool
    or an engine, prefer :func:`raw_connector`, which keeps the cluster's topology while every
    connection is gone.
    """
    cluster, raw = await _connect_raw(parse(dsn, **options))
    return raw


async def _connect_raw(config: Config) -> tuple[Cluster, Any]:
    cluster, raw, instance = await _open(config)
    tracked = (
        config.options.has(Plugin.AURORA_CONNECTION_TRACKER)
        and failover_mode(cluster, config) == "strict_writer"
    )
    if tracked:
        cluster.tracker.add(instance.instance_id, raw)
    # the monitor holds its connections weakly: this listener, held by the connection, keeps it alive
    watched = WholeConnection(raw)
    monitored = config.options.has(Plugin.HOST_MONITORING) and cluster.dialect is not None
    if monitored:
        cluster.host_monitor(instance).add(watched)
    released = False

    def on_close(conn: Any) -> None:
        nonlocal released
        if not released:
            released = True
            if tracked:
                cluster.tracker.remove(instance.instance_id, conn)
            if monitored:
                cluster.host_monitor(instance).remove(watched)
            cluster.release(config.identity)

    raw.add_termination_listener(on_close)
    return cluster, raw


_ASYNCPG_DEFAULTS = {("connection_class", asyncpg.Connection), ("record_class", asyncpg.Record)}


class RawConnector:
    """An async callable that makes :func:`connect_raw` connections and holds their cluster open.

    Give it to SQLAlchemy (``create_async_engine("postgresql+asyncpg://", async_creator=connector)``)
    or to asyncpg (``asyncpg.create_pool(connect=connector)``).
    When the writer dies, every pooled connection closes at once; the connector keeps the cluster, so
    its topology and monitor survive and the next connection goes to the new writer instead of dialling
    the dead endpoint. Close it after the engine: ``await engine.dispose(); await connector.aclose()``
    (or ``async with raw_connector(...) as connector``).
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self._cluster: Cluster | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<RawConnector {self._config.host}:{self._config.port}{' closed' if self._closed else ''}>"

    async def __call__(self, *dsn: Any, **pool_arguments: Any) -> Any:
        """A new connection. ``asyncpg.create_pool(connect=connector)`` passes its (empty) DSN, ``loop``,
        ``connection_class`` and ``record_class``; give non-default classes to :func:`raw_connector`."""
        if any(arg is not None for arg in dsn):
            raise ConfigurationError(
                "a DSN reached the connector from its caller: pass it to raw_connector()"
            )
        for name, value in pool_arguments.items():
            if name == "loop" or (name, value) in _ASYNCPG_DEFAULTS:
                continue
            raise ConfigurationError(
                f"{name}={value!r} reached the connector from its caller: pass it to raw_connector() instead"
            )
        if self._closed:
            raise asyncpg.InterfaceError("the connector is closed")
        cluster, raw = await _connect_raw(self._config)
        if self._cluster is None or self._cluster.closed:
            self._cluster = cluster.acquire(self._config.identity)
        return raw

    async def aclose(self) -> None:
        """Let the cluster go (it stops once its last connection is closed too)."""
        self._closed = True
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            await cluster.release_and_wait(self._config.identity)

    async def __aenter__(self) -> RawConnector:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def raw_connector(dsn: str | None = None, **options: Any) -> RawConnector:
    """A :class:`RawConnector`: options as for :func:`connect_raw`, parsed once, here.

    :raises ConfigurationError: a bad DSN, option or value.
    """
    return RawConnector(parse(dsn, **options))
