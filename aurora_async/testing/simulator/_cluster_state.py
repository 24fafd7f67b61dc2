"""The state of a simulated cluster (its instances and roles) and how the control plane keeps the
catalog's topology, the fault proxy's routes and synchronous replication in step with it."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from .._catalog import MASTER_SESSION_ID, EndpointStyle, TopologyRow, dbi_resource_id
from .._cluster_protocol import DatabaseCluster
from .._errors import SimulatorError
from .._process import wait_until
from ..proxy._client import ProxyProcess
from ._custom_endpoints import CustomEndpoints
from ._instances import Instance, InstanceState
from ._timeline import Timeline, TimelineEvent

if TYPE_CHECKING:
    from ._failover import FailoverDelays


class ClusterState:
    """The instances of one cluster, their roles, and what keeps the catalog's topology, the fault
    proxy's routes (the endpoints' "DNS") and synchronous replication in step with them."""

    def __init__(
        self,
        *,
        cluster: DatabaseCluster,
        proxy: ProxyProcess,
        timeline: Timeline,
        instances: dict[str, Instance],
        prefix: str,
        port: int,
        tag: str,
        dns_delay: float,
        delays: FailoverDelays,
        endpoints: EndpointStyle = "names",
        rds_proxy: bool = False,
        region: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.region = region  # the AWS region the catalog reports for its instances
        self.proxy = proxy
        self.timeline = timeline
        self.instances = instances
        self.prefix = prefix
        self.port = port
        self.tag = tag
        self.dns_delay = dns_delay
        self.endpoints: EndpointStyle = endpoints
        self.delays = delays  # the pauses between a failover's steps
        self.rds_proxy = rds_proxy  # a simulated RDS Proxy endpoint runs (named "proxy")
        self.dns_due: float | None = None
        self.dns_event: TimelineEvent | None = None
        self.custom_endpoints = CustomEndpoints()  # they follow the topology with the cluster endpoints
        # the fault proxy's listeners that are this cluster's writer and reader endpoints (the names
        # "DNS" gives them): a blue/green switchover hands them to the other cluster
        self.endpoint_listeners: tuple[str, str] = ("cluster", "reader")
        # a Global Database: the other region's cluster, and whether this one is the secondary (its
        # instances all read-only, its catalog written by the primary's writer, with the primary's rows)
        self.global_peer: ClusterState | None = None
        self.global_secondary = False

    # -- reading the state -----------------------------------------------------------------------

    @property
    def instance_ids(self) -> list[str]:
        return sorted(self.instances, key=int)

    @property
    def writer_id(self) -> str:
        return next(i.instance_id for i in self.instances.values() if i.role == "writer")

    @property
    def reader_ids(self) -> list[str]:
        return [i for i in self.instance_ids if self.instances[i].role == "reader"]

    def get(self, instance_id: str | int) -> Instance:
        try:
            return self.instances[str(instance_id)]
        except KeyError:
            raise SimulatorError(
                f"unknown instance '{instance_id}'; instances are {', '.join(self.instance_ids)}"
            ) from None

    def snapshot(self) -> dict[str, InstanceState]:
        return {
            i: InstanceState(i, s.address, self.port, s.role, s.running, s.network, s.latency)
            for i, s in ((i, self.instances[i]) for i in self.instance_ids)
        }

    def rows(self) -> list[TopologyRow]:
        """The topology as the catalog reports it."""
        rows = []
        for instance_id in self.instance_ids:
            inst = self.instances[instance_id]
            writer = inst.role == "writer" and not self.global_secondary
            session = str(uuid.uuid5(uuid.NAMESPACE_OID, f"{self.tag}/{instance_id}"))
            rows.append(
                TopologyRow(
                    instance_id=instance_id,
                    is_writer=writer,
                    session_id=MASTER_SESSION_ID if writer else session,
                    dbi_resource_id=dbi_resource_id(self.tag, instance_id),
                    endpoint=(
                        inst.address
                        if self.endpoints == "addresses"
                        else f"{instance_id}.{self.tag}.sim.invalid"
                    ),
                    port=self.port,
                    frozen_at=inst.frozen_at,
                    replica_lag_ms=None if writer else 8.0 + int(instance_id) % 7,
                    cpu=2.0 + int(instance_id) % 5,
                    region=self.region,
                )
            )
        return rows

    # -- keeping catalog, replication and proxy in step ------------------------------------------

    async def register(self, inst: Instance) -> None:
        """Give the fault proxy the instance's server and its own endpoint."""
        cluster = self.cluster
        await self.proxy.call(
            "backend",
            name=inst.instance_id,
            host=inst.address,
            port=cluster.backend_port,
            **cluster.proxy_options,
        )
        await self.proxy.call(
            "listen", name=inst.instance_id, host=inst.address, port=self.port, targets=[inst.instance_id]
        )

    async def write_topology(self) -> None:
        """Publish the topology on the writer (it replicates); a stopped writer is updated when it
        comes back. In a Global Database the primary's writer publishes both regions' rows."""
        peer = self.global_peer
        if self.global_secondary and peer is not None:
            await peer.write_topology()
            return
        if self.instances[self.writer_id].running:
            rows = self.rows() + (peer.rows() if peer is not None else [])
            await self.cluster.write_topology(self.writer_id, rows)

    async def sync_replication(self) -> None:
        """Synchronous replication to ANY 1 of the running replicas, or none when none runs."""
        if self.instances[self.writer_id].running:
            running = [i for i in self.reader_ids if self.instances[i].running]
            await self.cluster.set_sync_replicas(self.writer_id, running)

    async def set_mode(self, inst: Instance, mode: str) -> None:
        """Proxy mode for ``inst``, except that a black-holed instance stays black-holed: its clients
        keep hanging whatever happens to the server behind it, until it is restored."""
        if inst.network != "blackhole":
            await self.proxy.call("mode", name=inst.instance_id, mode=mode)

    async def publish_dns(self, at: float | None) -> None:
        """Point the writer endpoint at the writer and the reader endpoint at the readers, at ``at``."""
        readers = self.reader_ids
        writer_endpoint, reader_endpoint = self.endpoint_listeners
        await self.proxy.call("route", name=writer_endpoint, targets=[self.writer_id], at=at)
        await self.proxy.call("route", name=reader_endpoint, targets=readers or [self.writer_id], at=at)
        await self.custom_endpoints.publish(self, at)

    def dns_pending(self) -> bool:
        return self.dns_due is not None and self.dns_due > time.monotonic()

    async def republish_dns(self) -> None:
        """After a membership change: now, or with the update a failover already scheduled."""
        await self.publish_dns(self.dns_due if self.dns_pending() else None)

    async def route_rds_proxy(self) -> None:
        """Point the RDS Proxy endpoint at the writer, at once: the proxy watches the cluster, not DNS."""
        if self.rds_proxy:
            writer = self.instances[self.writer_id]
            await self.proxy.call("rds_proxy_route", name="proxy", host=writer.address, port=self.port)

    async def schedule_dns(self, due: float) -> None:
        await self.route_rds_proxy()
        if self.dns_event is not None and self.dns_pending():
            self.timeline.discard(self.dns_event)  # superseded by this newer failover
        await self.publish_dns(due if self.dns_delay > 0 else None)
        self.dns_due = due
        self.dns_event = self.timeline.record(
            "endpoint DNS updated", f"{self._endpoint_label()} -> {self.writer_id}", at=due
        )

    def _endpoint_label(self) -> str:
        name = self.endpoint_listeners[0]
        return "cluster endpoint" if name == "cluster" else f"{name} endpoint"

    async def wait_dns_settled(self, timeout: float | None) -> None:
        due = self.dns_due or 0.0
        limit = timeout if timeout is not None else max(0.0, due - time.monotonic()) + 10.0
        proxy = self.proxy

        async def settled() -> bool:
            status = await proxy.call("status")
            return all(entry["pending"] is None for entry in status["listeners"].values())

        await wait_until(settled, timeout=limit, what="the endpoint DNS to follow the topology")
