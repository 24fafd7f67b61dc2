"""First contact: what a cluster learns from the first connection to it, once for all.

The dialect is detected (or forced with ``wrapper_dialect``), the topology read, and the
``cluster_instance_host_pattern`` checked: the address it gives for the instance the first connection
reached must answer as that instance. Every connection's instance is identified with its real role
(the cluster endpoint's DNS may be stale after a failover).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from ._context import ClusterContext
from ._dialect import Dialect, HostBuilder, host_builder
from ._driver import RawConnection, discard
from ._exceptions import ConfigurationError
from ._identity import Identity
from ._rds_hosts import RdsUrlType, classify_host
from ._topology import Instance, Role, Topology

log = logging.getLogger("aurora_async.topology")


class Discovery:
    """What one cluster learns at first contact (see the module docstring)."""

    def __init__(self, cluster: ClusterContext) -> None:
        self._cluster = cluster
        self._lock = asyncio.Lock()  # one first contact learns; the others wait for it
        self._pattern_checked = False

    @property
    def pattern_checked(self) -> bool:
        """Whether :meth:`check_pattern` found that the instance host pattern leads to the instances."""
        return self._pattern_checked

    def adopt(self, dialect: Dialect, topology: Topology, *, pattern_checked: bool) -> None:
        """Start from what an earlier cluster of the same key learned (the registry kept it): its
        dialect, its topology, and whether it checked the instance host pattern (then a new
        connection does not dial an instance through it again)."""
        cluster = self._cluster
        cluster.dialect = dialect
        cluster.build = self._host_builder(dialect)
        cluster.topology = topology
        self._pattern_checked = pattern_checked

    async def prepare(self, conn: RawConnection) -> None:
        """On the first connection: detect the dialect and read the topology, once for all."""
        cluster = self._cluster
        if cluster.dialect is None or cluster.topology is None:
            async with self._lock:
                if cluster.dialect is None:
                    forced = cluster.options.wrapper_dialect
                    if forced:
                        dialect = cluster.driver.dialects[forced]()
                    else:
                        dialect = await cluster.driver.detect_dialect(
                            conn, cluster.options.auxiliary_query_timeout
                        )
                    cluster.build = self._host_builder(dialect)
                    cluster.dialect = dialect
                    log.debug("cluster %s:%s uses dialect %s", cluster.host, cluster.port, dialect.code)
                if cluster.topology is None:
                    instances = await cluster.read_topology(conn)
                    if instances is None:
                        instances = [Instance("initial", cluster.host, cluster.port, Role.WRITER)]
                    cluster.publish(instances, verified=False)
        cluster.start_monitor()

    def _host_builder(self, dialect: Dialect) -> HostBuilder:
        cluster = self._cluster
        pattern = cluster.options.cluster_instance_host_pattern
        regional = cluster.options.global_cluster_instance_host_patterns
        rds = classify_host(cluster.host)
        unreachable = pattern is None and rds.instance_template is None and not regional
        if dialect.ids_only and unreachable:
            what = (
                "an Aurora Global Database writer endpoint: the instances live in each region's own domain"
                if rds.url_type is RdsUrlType.RDS_GLOBAL_WRITER_CLUSTER
                else "an IP address or custom domain"
            )
            raise ConfigurationError(
                f"cluster_instance_host_pattern is required to reach the instances of an Aurora cluster "
                f"through {cluster.host!r} ({what}); for example "
                "'?.abcdefgh.us-east-1.rds.amazonaws.com' or '10.0.0.?:5432'"
            )
        return host_builder(pattern, cluster.host, cluster.port, regional)

    async def identify(self, conn: RawConnection, host: str, port: int) -> Instance:
        """Which instance ``conn`` (reached at ``host:port``) is, with the role it really has now."""
        cluster = self._cluster
        assert cluster.dialect is not None
        timeout = cluster.options.auxiliary_query_timeout
        instance_id, is_reader = await cluster.dialect.identify(conn, timeout)
        known = cluster.topology.get(instance_id) if cluster.topology is not None else None
        role = Role.READER if is_reader else Role.WRITER
        if known is not None:
            return replace(known, role=role)
        return Instance(instance_id, host, port, role)

    async def check_pattern(self, identity: Identity, reached: Instance, host: str, port: int) -> None:
        """Once per cluster: does ``cluster_instance_host_pattern`` lead to the instances? The first
        connection reached instance ``reached`` through ``host:port``; the address the pattern gives
        for it must answer as that same instance, or failover and host monitoring would dial nowhere.

        :raises ConfigurationError: naming the pattern, the address it gave and what happened there.
        """
        cluster = self._cluster
        pattern = cluster.options.cluster_instance_host_pattern
        build = cluster.build
        if self._pattern_checked or pattern is None or build is None or cluster.dialect is None:
            return
        if not cluster.dialect.has_topology:
            return  # no instance is ever reached through it
        async with self._lock:
            if self._pattern_checked:
                return
            # where failover and host monitoring would dial this instance: its topology entry (built
            # through the pattern), else the pattern itself
            listed = cluster.topology.get(reached.instance_id) if cluster.topology is not None else None
            try:
                address = (listed.host, listed.port) if listed else build(reached.instance_id, None, None)
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
        cluster = self._cluster
        assert cluster.dialect is not None
        try:
            conn = await cluster.opener.open_as(identity, address[0], address[1], identity.connect_timeout)
        except cluster.driver.connect_errors as exc:
            if cluster.driver.is_login_error(exc):
                raise  # the address works, the login does not: the caller's error to see
            return f"connecting failed ({type(exc).__name__}: {exc})"
        try:
            answered = await cluster.dialect.instance_id(conn, cluster.options.auxiliary_query_timeout)
        finally:
            discard(conn)
        return None if answered == instance_id else f"instance {answered!r} answered"
