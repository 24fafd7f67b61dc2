"""The registry of clusters: the library's only module-level state.

One :class:`Cluster` per cluster and event loop (tasks and connections belong to one loop), found by
its key (:func:`cluster_key`: where the cluster is and the settings of what its connections share;
not who connects). A cluster leaves the registry when its last connection closes; the registry then
remembers what it learned (its dialect and confirmed topology) for ``topology_refresh`` seconds, so
that connect-close-connect does not detect the dialect and read the topology every time (roles are
still checked at every connect, and the new cluster's monitor refreshes within a quarter second).
It also holds, per loop, the credentials cache every cluster shares and the event hub of each cluster
key (while a cluster or an application's event stream uses it), and, per process, the aioboto3 session
and the OpenTelemetry recorder.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ._auth import Authenticator
from ._cluster import Cluster
from ._config import Config
from ._dialect import Dialect
from ._events import EventHub
from ._options import ClusterSettings
from ._rds_hosts import classify_host
from ._topology import Topology

if TYPE_CHECKING:
    from ._otel import Recorder


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


def cluster_label(config: Config) -> str:
    """How events, telemetry and health name a cluster: the address its first connection was given."""
    return f"{config.host}:{config.port}"


class ClusterRegistry:
    """The clusters of this process, per event loop (see the module docstring)."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Cluster]] = (
            weakref.WeakKeyDictionary()
        )
        # what closed clusters learned: (dialect, topology, when, pattern checked), per loop and key
        self._learned: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, tuple[Dialect, Topology, float, bool]]
        ] = weakref.WeakKeyDictionary()
        # the credentials cache of each loop, shared by its clusters (it outlives them: connect-close-
        # connect reuses a token or a secret until it expires)
        self._auth: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Authenticator] = (
            weakref.WeakKeyDictionary()
        )
        self._aws_session: Any = None  # the process's aioboto3 session, made on first use
        # the event hub of each cluster key, per loop: alive while a cluster or an application's stream
        # holds it, so a stream outlives connect-close-connect
        self._hubs: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, weakref.WeakValueDictionary[Hashable, EventHub]
        ] = weakref.WeakKeyDictionary()
        self._recorder: Recorder | None = None  # the process's OpenTelemetry recorder, made on first use

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

    def hub(self, config: Config, key: Hashable | None = None) -> EventHub:
        """The event hub of ``config``'s cluster on the running loop (made on first use); ``key``: its
        :func:`cluster_key`, when the caller has it."""
        hubs = self._hubs.setdefault(asyncio.get_running_loop(), weakref.WeakValueDictionary())
        key = cluster_key(config) if key is None else key
        hub = hubs.get(key)
        if hub is None:
            telemetry = self.recorder() if config.options.enable_telemetry else None
            hub = hubs[key] = EventHub(cluster_label(config), config.engine, telemetry)
        return hub

    def recorder(self) -> Recorder:
        """The process's OpenTelemetry recorder: its instruments are made once (``enable_telemetry``)."""
        if self._recorder is None:
            from ._otel import Recorder  # noqa: PLC0415 - the optional 'otel' extra, checked when parsed

            self._recorder = Recorder()
        return self._recorder

    def acquire(self, config: Config) -> Cluster:
        """The cluster ``config`` belongs to, with one more reference, held by ``config.identity``."""
        loop = asyncio.get_running_loop()
        clusters = self._by_loop.setdefault(loop, {})
        key = cluster_key(config)
        cluster = clusters.get(key)
        if cluster is None or cluster.closed:
            cluster = Cluster(
                key, config, config.driver, self.authenticator(), self._forget, events=self.hub(config, key)
            )
            learned = self._learned.get(loop, {}).pop(key, None)
            if (
                learned is not None
                and config.options.plugins
                and loop.time() - learned[2] < config.options.topology_refresh
            ):
                cluster.discovery.adopt(learned[0], learned[1], pattern_checked=learned[3])
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
                    learned[cluster.key] = (
                        dialect,
                        topology,
                        loop.time(),
                        cluster.discovery.pattern_checked,
                    )

    def clusters(self) -> list[Cluster]:
        """Clusters alive on the running loop (for tests and diagnostics)."""
        return list(self._by_loop.get(asyncio.get_running_loop(), {}).values())


registry = ClusterRegistry()
