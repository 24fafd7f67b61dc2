"""``AuroraSimulator``: a local Aurora-like cluster of real database servers behind fault proxies."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .._catalog import ENDPOINT_STYLES, TOPOLOGY_MODES, EndpointStyle, TopologyMode
from .._errors import SimulatorError
from .._process import run_to_completion
from ..mysql._iam import IamLoginAttempt
from ._blue_green import BlueGreenDeployment, replication_for
from ._control_plane import ControlPlane
from ._custom_endpoints import CustomEndpointMethods, close_custom_endpoints, endpoint_address
from ._deployment import Deployment
from ._failover import FailoverDelays
from ._faults import Faults
from ._global_database import GlobalDatabase
from ._instances import MAX_INSTANCES, InstanceState
from ._network import PROXY_ENDPOINT_OCTET, READER_ENDPOINT_OCTET, WRITER_ENDPOINT_OCTET, check_prefix
from ._tempdirs import choose_base_dir
from ._timeline import FailoverReport, Timeline, TimelineEvent


class AuroraSimulator(Faults, CustomEndpointMethods):
    """A local, Aurora-like cluster: one writer and N-1 replicas of real database servers (PostgreSQL
    with streaming replication, or MariaDB with GTID replication), each behind a fault proxy on its own
    loopback address, plus writer and reader cluster endpoints.

    Use it as an async context manager; everything it started is stopped and deleted on exit, also on
    errors and cancellation::

        async with AuroraSimulator(engine="postgresql", instances=3) as sim:
            conn = await asyncpg.connect(sim.dsn("cluster"))
            report = await sim.failover()
            print(report.format())

    :param engine: ``"postgresql"`` or ``"mysql"`` (MariaDB servers standing in for Aurora MySQL).
    :param instances: number of instances, 1 to 32; the first is the writer.
    :param topology: which catalog the servers expose: ``"aurora"`` (PostgreSQL:
        ``aurora_replica_status()`` and friends; MySQL: ``information_schema.replica_host_status``,
        ``@@aurora_server_id`` and friends, see ``mysql._catalog``), ``"multi-az"`` (RDS Multi-AZ DB
        clusters: ``rds_tools.*``, or ``mysql.rds_topology``) or ``"none"`` (plain).
    :param catalog_endpoints: how the Multi-AZ catalog (``rds_tools.show_topology()``,
        ``mysql.rds_topology``) lists each instance's endpoint: ``"names"`` (DNS names, as RDS lists
        them: ``11.<cluster tag>.sim.invalid``, which do not resolve, so clients reach the instances
        through :attr:`instance_host_pattern`) or ``"addresses"`` (the instance's IP address, such as
        ``127.0.42.11``, reachable as listed, with :attr:`port`).
    :param dns_delay: seconds after a promotion before the writer and reader cluster endpoints follow
        the new topology (stale DNS, as clients of Aurora see it).
    :param delays: pauses between the other failover steps.
    :param address_prefix: three loopback octets; instance ``"11"`` listens on ``<prefix>11``, the writer
        endpoint on ``<prefix>1`` and the reader endpoint on ``<prefix>2``.
    :param port: the client-facing port of every endpoint (default: a free one).
    :param user: database user in :meth:`dsn` (default ``postgres``, or ``admin`` for MySQL); created
        without superuser rights unless ``postgres`` (MySQL: an ordinary user with ``ALL`` on its
        database, so ``read_only`` replicas reject its writes).
    :param password: its password, if any (PostgreSQL trusts everyone else on the simulator's loopback).
    :param database: database in :meth:`dsn` (default ``postgres``, or ``app`` for MySQL; created unless
        ``postgres``).
    :param max_connections: per server.
    :param tls: the servers accept TLS with a certificate for every address of the cluster, signed by
        a throw-away CA whose certificate is :attr:`tls_root_cert`, so clients can verify it fully
        (``ssl=ssl.create_default_context(cafile=sim.tls_root_cert)``, or ``sslmode=verify-full`` with
        ``sslrootcert``); plain connections still work. PostgreSQL: ``drop_after_commit`` only sees
        plain-text connections. MySQL: the fault proxy ends the client's TLS with that certificate and
        speaks TLS to the server (it must read the queries), so everything works over TLS.
    :param pg_bin_dir: directory with ``initdb``, ``postgres``, ``pg_basebackup`` and ``pg_rewind``
        (default: ``$AURORA_SIM_PG_BIN``, then ``/usr/lib/postgresql/*/bin``, then ``PATH``).
    :param server_user: OS user that runs the servers when the simulator runs as root (default
        ``postgres``, or ``mysql`` for MySQL, else ``nobody``). MariaDB's programs are found on ``PATH``
        and in ``/usr/sbin`` (or in ``$AURORA_SIM_MARIADB_BIN``).
    :param base_dir: where the temporary directory is created (default: ``$AURORA_SIM_BASE_DIR``, else
        ``/dev/shm`` when it is a writable memory file system with room to spare, else the system temp
        dir; on a memory file system start-up is several times faster). PostgreSQL keeps an ``initdb``
        result there for later simulators to copy (``aurora-sim-template-*``, 40 MB; delete at will).
    :param region: the AWS region the catalog reports for the cluster (``aurora_global_db_status()``
        and friends); a Global Database's secondary region gets its own
        (:meth:`create_global_database`).
    :param proxy: also run an RDS Proxy endpoint on ``<prefix>3`` (:attr:`proxy_endpoint`,
        ``dsn("proxy")``): it connects each client to the writer (following a promotion at once, not
        DNS), keeps idle client connections through a failover by logging them in to the new writer
        (with the secrets of the DSN user and of :meth:`set_password` users), and closes those with a
        transaction or statement in flight. Plain text only. See ``proxy._rds_proxy``.
    """

    def __init__(
        self,
        engine: str = "postgresql",
        instances: int = 3,
        *,
        topology: TopologyMode = "aurora",
        catalog_endpoints: EndpointStyle = "names",
        dns_delay: float = 3.0,
        delays: FailoverDelays | None = None,
        address_prefix: str = "127.0.42.",
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        max_connections: int = 300,
        tls: bool = False,
        pg_bin_dir: str | os.PathLike[str] | None = None,
        server_user: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        proxy: bool = False,
        region: str = "us-east-1",
    ) -> None:
        if engine not in ("postgresql", "postgres", "mysql"):
            raise ValueError(f"unknown engine {engine!r}: expected 'postgresql' or 'mysql'")
        mysql = engine == "mysql"
        if user is None:
            user = "admin" if mysql else "postgres"
        if database is None:
            database = "app" if mysql else "postgres"
        if type(instances) is not int or not 1 <= instances <= MAX_INSTANCES:  # (a bool is no count)
            raise ValueError(f"instances must be an integer from 1 to {MAX_INSTANCES}, not {instances!r}")
        if topology not in TOPOLOGY_MODES:
            raise ValueError(f"topology must be one of {', '.join(TOPOLOGY_MODES)}, not {topology!r}")
        if catalog_endpoints not in ENDPOINT_STYLES:
            raise ValueError(
                f"catalog_endpoints must be one of {', '.join(ENDPOINT_STYLES)}, not {catalog_endpoints!r}"
            )
        if dns_delay < 0:
            raise ValueError("dns_delay must be >= 0")
        if max_connections < 10:
            raise ValueError("max_connections must be at least 10")
        for name, value in (("user", user), ("database", database)):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", value):
                raise ValueError(f"{name} must be a plain SQL identifier, not {value!r}")
        self.engine: Literal["postgresql", "mysql"] = "mysql" if mysql else "postgresql"
        self.topology: TopologyMode = topology
        self.catalog_endpoints: EndpointStyle = catalog_endpoints
        self._dns_delay = float(dns_delay)
        self.delays = delays or FailoverDelays()
        self._size = instances
        self._prefix = check_prefix(address_prefix)
        self._requested_port = port
        self._user, self._password, self._database = user, password, database
        self._max_connections = max_connections
        self._tls = bool(tls)
        self._pg_bin_dir = pg_bin_dir
        self._server_user = server_user
        self._base_dir = choose_base_dir(base_dir)
        self._rds_proxy = bool(proxy)
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
            raise ValueError(f"region must look like an AWS region ('us-east-1'), not {region!r}")
        self.region = region
        self._lock = asyncio.Lock()
        self._deployment = Deployment()
        self._control: ControlPlane | None = None
        self._timeline = Timeline()
        self._state: Literal["new", "running", "closed"] = "new"
        self._blue_green: BlueGreenDeployment | None = None
        self._global: GlobalDatabase | None = None

    def __repr__(self) -> str:
        if self._control is None or self._state != "running":
            return f"<AuroraSimulator {self.engine} {self._state}>"
        control = self._control
        return (
            f"<AuroraSimulator {self.engine} writer={control.writer_id} readers={control.reader_ids} "
            f"cluster={self.cluster_endpoint}>"
        )

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> AuroraSimulator:
        if self._state != "new":
            raise SimulatorError("an AuroraSimulator can be started only once")
        self._state = "running"
        try:
            await self._start()
        except BaseException:
            await run_to_completion(self._cleanup())
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await run_to_completion(self._cleanup())

    async def _start(self) -> None:
        self._control = await self._deployment.start(
            engine=self.engine,
            size=self._size,
            topology=self.topology,
            catalog_endpoints=self.catalog_endpoints,
            dns_delay=self._dns_delay,
            delays=self.delays,
            prefix=self._prefix,
            requested_port=self._requested_port,
            user=self._user,
            password=self._password,
            database=self._database,
            max_connections=self._max_connections,
            tls=self._tls,
            pg_bin_dir=self._pg_bin_dir,
            server_user_name=self._server_user,
            base_dir=self._base_dir,
            timeline=self._timeline,
            rds_proxy=self._rds_proxy,
            region=self.region,
        )

    async def _cleanup(self) -> None:
        self._state = "closed"
        await close_custom_endpoints(self._control)
        await self._deployment.close()

    def _running(self) -> ControlPlane:
        if self._state != "running" or self._control is None:
            raise SimulatorError("the simulator is not running; use `async with AuroraSimulator(...) as sim`")
        return self._control

    @asynccontextmanager
    async def _operation(self) -> AsyncIterator[ControlPlane]:
        """One operation at a time: each one leaves the cluster consistent for the next."""
        async with self._lock:
            yield self._running()

    # -- what tests read -------------------------------------------------------------------------

    def _address(self, octet: int) -> str:
        return f"{self._prefix}{octet}"

    @property
    def dns_delay(self) -> float:
        """Seconds after a promotion before the cluster endpoints follow it. Settable at any time: the
        new lag applies from the next failover or switchover (one already scheduled keeps its time)."""
        return self._dns_delay

    @dns_delay.setter
    def dns_delay(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
            raise ValueError(f"dns_delay must be a number >= 0, not {seconds!r}")
        self._dns_delay = float(seconds)
        if self._control is not None:
            self._control.dns_delay = self._dns_delay

    @property
    def instance_ids(self) -> list[str]:
        """Instance identifiers, such as ``["11", "12", "13"]`` (they are also the last address octet)."""
        return self._running().instance_ids

    @property
    def writer_id(self) -> str:
        return self._running().writer_id

    @property
    def reader_ids(self) -> list[str]:
        return self._running().reader_ids

    @property
    def port(self) -> int:
        """The port every endpoint listens on."""
        return self._running().port

    @property
    def cluster_endpoint(self) -> str:
        """``host:port`` of the writer cluster endpoint (follows a failover after ``dns_delay``)."""
        return f"{self._address(WRITER_ENDPOINT_OCTET)}:{self.port}"

    @property
    def reader_endpoint(self) -> str:
        """``host:port`` of the reader cluster endpoint (spreads new connections over replicas)."""
        return f"{self._address(READER_ENDPOINT_OCTET)}:{self.port}"

    @property
    def instance_host_pattern(self) -> str:
        """Value for ``cluster_instance_host_pattern``: ``?`` stands for an instance id."""
        return f"{self._prefix}?:{self.port}"

    @property
    def proxy_endpoint(self) -> str:
        """``host:port`` of the RDS Proxy endpoint (``proxy=True``)."""
        if not self._running().rds_proxy:
            raise SimulatorError("this simulator runs no RDS Proxy endpoint: start it with proxy=True")
        return f"{self._address(PROXY_ENDPOINT_OCTET)}:{self.port}"

    def endpoint(self, instance_id: str | int) -> str:
        """``host:port`` of one instance's own endpoint."""
        return f"{self._running().get(instance_id).address}:{self.port}"

    def server_endpoint(self, instance_id: str | int) -> str:
        """``host:port`` of the instance's database server itself, bypassing its fault proxy.

        Faults do not apply there; benchmarks use it to measure what the proxy costs."""
        control = self._running()
        return f"{control.get(instance_id).address}:{control.cluster.backend_port}"

    def dsn(self, target: str | int = "cluster") -> str:
        """A postgresql:// (or mysql://) DSN for "cluster", "reader", "proxy" (the RDS Proxy endpoint),
        an instance or a custom endpoint."""
        control = self._running()
        if target == "proxy":
            host = self.proxy_endpoint.rsplit(":", 1)[0]
        elif target == "cluster":
            host = self._address(WRITER_ENDPOINT_OCTET)
        elif target == "reader":
            host = self._address(READER_ENDPOINT_OCTET)
        else:  # an instance, or a custom endpoint (add_custom_endpoint)
            host = endpoint_address(control, target)
        return control.cluster.dsn(host, control.port)

    @property
    def instances(self) -> dict[str, InstanceState]:
        """A snapshot of every instance: role, whether its server runs, its network fault, latency."""
        return self._running().snapshot()

    @property
    def timeline(self) -> list[TimelineEvent]:
        """Everything the simulator did, oldest first (``at`` is a ``time.monotonic()`` timestamp)."""
        return list(self._timeline.events)

    @property
    def tls_root_cert(self) -> Path | None:
        """With ``tls=True``: the CA certificate that signed the servers' certificate (else None)."""
        cluster = self._running().cluster
        return getattr(cluster, "tls_root_cert", None)

    @property
    def root(self) -> Path:
        """The temporary directory holding data directories and logs (deleted on exit)."""
        self._running()
        assert self._deployment.root is not None
        return self._deployment.root

    @property
    def process_ids(self) -> list[int]:
        """PIDs of the running database servers and of the fault proxy process."""
        return self._deployment.pids()

    async def proxy_status(self) -> dict[str, Any]:
        """Backends (mode, delay, open connections) and listeners of the fault proxy."""
        return await self._running().proxy.call("status")

    async def wait_dns_settled(self, timeout: float | None = None) -> None:
        """Wait until the endpoints follow the current topology (after a failover's ``dns_delay``)."""
        await self._running().wait_dns_settled(timeout)

    # -- operations ------------------------------------------------------------------------------

    async def failover(self, target: str | int | None = None) -> FailoverReport:
        """Aurora's unplanned failover: the writer is lost (its server killed), a replica is promoted,
        the topology is updated, the other replicas are re-pointed (their connections dropped), the old
        writer rejoins as a replica; the cluster endpoints follow ``dns_delay`` after the promotion.

        With no running replica the writer is restarted in place, as Aurora does.

        :param target: the replica to promote (default: the one that received the most WAL, or the
            highest GTID for MySQL; a target that lags first catches up from it, so no acknowledged
            commit is lost).
        :returns: a report with the timeline of the steps.
        """
        async with self._operation() as control:
            self._check_no_replication("failover")
            return await control.fail_over("failover", target)

    async def switchover(self, target: str | int | None = None) -> FailoverReport:
        """A planned failover: the writer is shut down cleanly first (sessions are terminated, with
        SQLSTATE 57P01 on PostgreSQL; all WAL or binary log reaches the replicas), then the same steps
        as :meth:`failover`."""
        async with self._operation() as control:
            self._check_no_replication("switchover")
            return await control.fail_over("switchover", target)

    async def set_password(self, user: str, password: str) -> None:
        """Create (or update) database user ``user``, who must log in with ``password``: password
        authentication (SCRAM) for this user on every instance, where everyone else is trusted (MySQL:
        a user with the DSN user's rights). Use it to rehearse IAM tokens (set the expected token as the
        password) or a rotated secret. With a Global Database, on the global writer (wherever it is
        now), from which it replicates to every region."""
        async with self._operation() as control:
            writer = self._global.primary_plane if self._global is not None else control
            await writer.set_password(user, password)

    async def create_iam_user(self, user: str) -> None:
        """MySQL: (re)create database user ``user`` as an IAM user, with the DSN user's rights. As on
        Aurora (``AWSAuthenticationPlugin``) the server asks the client for ``mysql_clear_password``
        and gets the password in clear text (``REQUIRE SSL`` with ``tls=True``); it accepts only the
        token last given to :meth:`set_password` for that user, which ``RehearsalSession(sim, user)``
        does for every token it generates. Every password that reached the check is listed by
        :meth:`iam_login_attempts`. Uses MariaDB's PAM plugin and a PAM service the simulator writes
        to ``/etc/pam.d/aurora_async_sim_iam`` (as root; see ``aurora_async.testing.mysql._iam``)."""
        async with self._operation() as control:
            await control.create_iam_user(user)

    def iam_login_attempts(self) -> list[IamLoginAttempt]:
        """MySQL: every password that reached an IAM user's check in clear text, oldest first (who,
        where, accepted or not, its length; never the password)."""
        return self._running().iam_login_attempts()

    # -- blue/green deployments ----------------------------------------------------------------------

    def _check_no_replication(self, operation: str) -> None:
        if self._global is not None:
            raise SimulatorError(
                f"{operation} is not simulated in a Global Database's clusters yet; use its switchover() "
                "or failover()"
            )
        if self._blue_green is not None and self._blue_green.replicating:
            raise SimulatorError(
                f"{operation} is not simulated while a blue/green deployment replicates from this cluster "
                "(its replication starts at the writer); switch over first"
            )

    async def create_blue_green(self, instances: int | None = None) -> BlueGreenDeployment:
        """Create a blue/green deployment: a green cluster of ``instances`` instances (default: as many
        as blue has) that replicates from this one, read-only until :meth:`BlueGreenDeployment.switchover`
        (see ``aurora_async.testing.simulator._blue_green`` for the addresses, the metadata it serves and
        the switchover's steps). Only with ``topology="aurora"``; one deployment per simulator.

        What it copies and replicates is what RDS does (see the engine's ``_blue_green`` module):
        create the schema before the deployment; PostgreSQL tables need a primary key for UPDATE and
        DELETE on blue.
        """
        async with self._operation() as control:
            if self.topology != "aurora":
                raise SimulatorError("create_blue_green needs topology='aurora'")
            if self._global is not None:
                raise SimulatorError("a Global Database's primary gets no blue/green deployment here")
            if self._blue_green is not None:
                raise SimulatorError("this simulator has a blue/green deployment already")
            size = len(control.instances) if instances is None else instances
            if type(size) is not int or not 1 <= size <= MAX_INSTANCES:
                raise ValueError(f"instances must be an integer from 1 to {MAX_INSTANCES}, not {size!r}")
            green, endpoints = await self._deployment.start_green(control, size)
            replication = replication_for(control.cluster, green.cluster)
            await replication.replicate(control.writer_id, green.writer_id)
            self._blue_green = deployment = BlueGreenDeployment(
                blue=control,
                green=green,
                replication=replication,
                endpoint_hosts={
                    control.endpoint_listeners: (
                        self._address(WRITER_ENDPOINT_OCTET),
                        self._address(READER_ENDPOINT_OCTET),
                    ),
                    green.endpoint_listeners: endpoints,
                },
                lock=self._lock,
            )
            await deployment.publish()
            self._timeline.record(
                "blue/green deployment created",
                f"green {', '.join(green.instance_ids)} replicates from writer {control.writer_id}",
            )
            return deployment

    async def create_global_database(
        self, region: str = "us-west-2", *, instances: int | None = None, address_prefix: str | None = None
    ) -> GlobalDatabase:
        """Make this cluster the primary region of an Aurora Global Database with a secondary region's
        cluster of ``instances`` instances (default: as many as this one has), on ``address_prefix``
        (default: the next third octet, ``127.0.43.`` for ``127.0.42.``): see
        ``aurora_async.testing.simulator._global_database``. Either engine, ``topology="aurora"``,
        plain text, one per simulator, not with a blue/green deployment."""
        async with self._operation() as control:
            if self.topology != "aurora":
                raise SimulatorError("a Global Database needs topology='aurora'")
            if self._global is not None or self._blue_green is not None:
                raise SimulatorError("this simulator has a second cluster already (global or blue/green)")
            if region == self.region:
                raise ValueError(f"the secondary region must differ from the primary's ({self.region})")
            size = len(control.instances) if instances is None else instances
            if type(size) is not int or not 1 <= size <= MAX_INSTANCES:
                raise ValueError(f"instances must be an integer from 1 to {MAX_INSTANCES}, not {size!r}")
            if address_prefix is None:
                a, b, c, _ = self._prefix.split(".")
                address_prefix = f"{a}.{b}.{(int(c) + 1) % 256}."
            prefix = check_prefix(address_prefix)
            if prefix == self._prefix:
                raise ValueError("the secondary region needs an address prefix of its own")
            secondary, endpoints, global_host = await self._deployment.start_global_secondary(
                control, size, region, prefix
            )
            database = GlobalDatabase(
                primary=control,
                secondary=secondary,
                secondary_endpoints=endpoints,
                global_host=global_host,
                lock=self._lock,
            )
            await database.attach()
            self._global = database
            self._timeline.record(
                "global database created",
                f"{region}: {', '.join(secondary.instance_ids)} replicate from {self.region}",
            )
            return database

    @property
    def global_database(self) -> GlobalDatabase | None:
        """The Global Database made by :meth:`create_global_database`, if any."""
        return self._global

    @property
    def blue_green(self) -> BlueGreenDeployment | None:
        """The blue/green deployment made by :meth:`create_blue_green`, if any."""
        return self._blue_green

    async def add_instance(self) -> str:
        """Add a replica (a hot base backup of the writer, or a dump of it for MySQL); returns its id."""
        async with self._operation() as control:
            return await control.add_instance()

    async def remove_instance(self, instance_id: str | int) -> None:
        """Delete an instance. Deleting the writer first fails over to a replica, as Aurora does."""
        async with self._operation() as control:
            await control.remove_instance(instance_id)
