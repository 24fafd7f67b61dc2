"""``aurora_async.health(target)``: what the library knows about a cluster right now, for a ``/healthz``.

A snapshot, made without any I/O from what the cluster's background work keeps up to date (the
topology monitor, the host monitors, the writer search): safe to call on every health-check request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._topology import Instance

if TYPE_CHECKING:
    from ._cluster import Cluster


@dataclass(frozen=True, slots=True)
class Health:
    """A cluster as the library sees it now (:func:`aurora_async.health`).

    ``healthy`` is true when no problem is listed: the writer is known, not declared dead by host
    monitoring, no writer search is running, and the topology was verified within three refresh
    intervals. ``problems`` says, in words, what is not so. ``topology_age``: seconds since the writer
    last proved it is the writer (None: never, or the cluster has no topology, like a plain instance).
    """

    cluster: str
    engine: str
    dialect: str | None
    writer: str | None
    instances: tuple[Instance, ...]
    hosts_down: tuple[str, ...]
    topology_age: float | None
    failing_over: bool
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """Plain values, ready for a JSON response body."""
        return {
            "healthy": self.healthy,
            "cluster": self.cluster,
            "engine": self.engine,
            "dialect": self.dialect,
            "writer": self.writer,
            "instances": [
                {"id": i.instance_id, "role": i.role.value, "endpoint": i.endpoint, "region": i.region}
                for i in self.instances
            ],
            "hosts_down": list(self.hosts_down),
            "topology_age": None if self.topology_age is None else round(self.topology_age, 3),
            "failing_over": self.failing_over,
            "problems": list(self.problems),
        }


def unknown(cluster: str, engine: str, why: str) -> Health:
    """The health of a target with no live cluster (nothing connected yet, or closed)."""
    return Health(cluster, engine, None, None, (), (), None, False, (why,))


def snapshot(cluster: Cluster) -> Health:
    """The health of a live ``cluster`` (see :class:`Health`)."""
    label, engine = cluster.events.cluster, cluster.events.engine
    if cluster.closed:
        return unknown(label, engine, "the cluster is closed (no connection holds it)")
    loop = asyncio.get_running_loop()
    topology, dialect = cluster.topology, cluster.dialect
    has_topology = dialect is not None and dialect.has_topology
    writer = topology.writer if topology is not None else None
    failing_over = cluster.search.running
    age: float | None = None
    problems: list[str] = []
    if has_topology and topology is not None:
        age = loop.time() - topology.verified_at
    if dialect is None:
        problems.append("no connection has reached the cluster yet")
    elif writer is None and has_topology:
        problems.append("no writer known")
    if writer is not None and writer.instance_id in cluster.down:
        problems.append(f"the writer {writer.instance_id} does not answer host monitoring's probes")
    if failing_over:
        problems.append("a writer search is running (failover)")
    stale_after = 3 * cluster.options.topology_refresh
    if age is not None and age > stale_after:
        problems.append(f"the topology was last verified {age:.0f} s ago (more than {stale_after:g} s)")
    return Health(
        cluster=label,
        engine=engine,
        dialect=dialect.code if dialect is not None else None,
        writer=writer.instance_id if writer is not None and has_topology else None,
        instances=topology.instances if topology is not None and has_topology else (),
        hosts_down=tuple(sorted(cluster.down)),
        topology_age=age,
        failing_over=failing_over,
        problems=tuple(problems),
    )
