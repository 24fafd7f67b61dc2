"""The simulator's control plane: the state of every instance and the operations that change it.

It plays Aurora's part: it decides roles, keeps the catalog's topology, the fault proxy's routes and
synchronous replication in step with what happens to the servers, and records every step on the
timeline. The caller (``AuroraSimulator``) runs one operation at a time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from .._catalog import MASTER_SESSION_ID, EndpointStyle, TopologyRow, dbi_resource_id
from .._cluster_protocol import DatabaseCluster
from .._errors import SimulatorError
from .._process import wait_until
from ..proxy._client import ProxyProcess
from ._network import LAST_INSTANCE_OCTET, ensure_free
from ._timeline import FailoverReport, Timeline, TimelineEvent

Role = Literal["writer", "reader"]
Network = Literal["ok", "crashed", "blackhole"]
MAX_INSTANCES = 32


@dataclass(frozen=True)
class FailoverDelays:
    """Pauses between the steps of a failover, in seconds.

    Real Aurora takes seconds to tens of seconds for the whole sequence; the defaults keep the order and
    shape of the steps but scale the waits down so tests stay fast. Raise them to rehearse slow failovers.

    :param promotion: from the loss of the writer until a replica is promoted (failure detection).
    :param topology: from the promotion until the topology shows the new writer.
    :param replica_restart: how long each other replica refuses connections while it is re-pointed at the
        new writer (Aurora restarts them).
    :param rejoin: from the re-pointed replicas until the old writer starts rejoining as a replica.
    """

    promotion: float = 0.1
    topology: float = 0.05
    replica_restart: float = 0.1
    rejoin: float = 0.2

    def __post_init__(self) -> None:
        for name in ("promotion", "topology", "replica_restart", "rejoin"):
            if getattr(self, name) < 0:
                raise ValueError(f"FailoverDelays.{name} must be >= 0")


@dataclass(frozen=True)
class InstanceState:
    """A snapshot of one simulated instance."""

    instance_id: str
    address: str
    port: int
    role: Role
    running: bool
    network: Network
    latency: float

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass
class Instance:
    instance_id: str
    address: str
    role: Role
    running: bool = True
    network: Network = "ok"
    latency: float = 0.0
    frozen_at: float | None = None  # wall-clock time it went down, reported as its last status update
    writer_when_stopped: str | None = None


class ControlPlane:
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
    ) -> None:
        self.cluster = cluster
        self.proxy = proxy
        self.timeline = timeline
        self.instances = instances
        self.prefix = prefix
        self.port = port
        self.tag = tag
        self.dns_delay = dns_delay
        self.delays = delays
        self.endpoints: EndpointStyle = endpoints
        self.dns_due: float | None = None
        self.dns_event: TimelineEvent | None = None

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
            writer = inst.role == "writer"
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
        comes back."""
        if self.instances[self.writer_id].running:
            await self.cluster.write_topology(self.writer_id, self.rows())

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
        await self.proxy.call("route", name="cluster", targets=[self.writer_id], at=at)
        await self.proxy.call("route", name="reader", targets=readers or [self.writer_id], at=at)

    def dns_pending(self) -> bool:
        return self.dns_due is not None and self.dns_due > time.monotonic()

    async def republish_dns(self) -> None:
        """After a membership change: now, or with the update a failover already scheduled."""
        await self.publish_dns(self.dns_due if self.dns_pending() else None)

    async def schedule_dns(self, due: float) -> None:
        if self.dns_event is not None and self.dns_pending():
            self.timeline.discard(self.dns_event)  # superseded by this newer failover
        await self.publish_dns(due if self.dns_delay > 0 else None)
        self.dns_due = due
        self.dns_event = self.timeline.record(
            "endpoint DNS updated", f"cluster endpoint -> {self.writer_id}", at=due
        )

    async def wait_dns_settled(self, timeout: float | None) -> None:
        due = self.dns_due or 0.0
        limit = timeout if timeout is not None else max(0.0, due - time.monotonic()) + 10.0
        proxy = self.proxy

        async def settled() -> bool:
            status = await proxy.call("status")
            return all(entry["pending"] is None for entry in status["listeners"].values())

        await wait_until(settled, timeout=limit, what="the endpoint DNS to follow the topology")

    # -- faults ----------------------------------------------------------------------------------

    async def crash(self, instance_id: str | int) -> None:
        inst = self.get(instance_id)
        if not inst.running:
            raise SimulatorError(f"instance {inst.instance_id} is not running")
        await self.proxy.call("mode", name=inst.instance_id, mode="down")
        inst.network, inst.running = "crashed", False
        inst.frozen_at = time.time()
        inst.writer_when_stopped = self.writer_id
        if inst.role == "reader":
            await self.sync_replication()  # before the kill, so that no commit waits on it
        await self.cluster.stop(inst.instance_id, "immediate")
        if inst.role == "reader":
            await self.write_topology()
        self.timeline.record("instance crashed", inst.instance_id)

    async def blackhole(self, instance_id: str | int) -> None:
        inst = self.get(instance_id)
        if inst.network == "crashed":
            raise SimulatorError(f"instance {inst.instance_id} is crashed; restore it first")
        await self.proxy.call("mode", name=inst.instance_id, mode="blackhole")
        inst.network = "blackhole"
        self.timeline.record("instance black-holed", inst.instance_id)

    async def latency(self, instance_id: str | int, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        inst = self.get(instance_id)
        await self.proxy.call("delay", name=inst.instance_id, seconds=seconds / 2)
        inst.latency = float(seconds)
        self.timeline.record("latency set", f"{inst.instance_id}: +{seconds * 1000:.0f} ms per round trip")

    async def reset_connections(self, instance_id: str | int) -> None:
        inst = self.get(instance_id)
        await self.proxy.call("reset", name=inst.instance_id)
        self.timeline.record("connections reset", inst.instance_id)

    async def drop_after_commit(self, instance_id: str | int) -> None:
        inst = self.get(instance_id)
        await self.proxy.call("arm", name=inst.instance_id, fault="drop_after_commit")
        self.timeline.record("commit drop armed", inst.instance_id)

    async def restore(self, instance_id: str | int) -> None:
        inst = self.get(instance_id)
        if not inst.running:
            writer_up = self.instances[self.writer_id].running
            if inst.role == "reader" and writer_up and inst.writer_when_stopped != self.writer_id:
                await self.cluster.rejoin(inst.instance_id, self.writer_id)
            else:
                await self.cluster.start(inst.instance_id)
                if inst.role == "reader" and writer_up:
                    await self.cluster.wait_streaming(self.writer_id, inst.instance_id)
            inst.running, inst.frozen_at = True, None
            await self.sync_replication()  # a restarted writer may remember replicas that are gone
            await self.write_topology()
        inst.network, inst.latency = "ok", 0.0
        await self.proxy.call("delay", name=inst.instance_id, seconds=0)
        await self.proxy.call("mode", name=inst.instance_id, mode="up")
        self.timeline.record("instance restored", inst.instance_id)

    async def reboot(self, instance_id: str | int) -> None:
        inst = self.get(instance_id)
        if not inst.running:
            raise SimulatorError(f"instance {inst.instance_id} is not running; use restore()")
        await self.set_mode(inst, "down")
        if inst.role == "reader":
            inst.running = False
            await self.sync_replication()
        await self.cluster.stop(inst.instance_id, "fast")
        self.timeline.record("instance stopped for reboot", inst.instance_id)
        await self.cluster.start(inst.instance_id)
        inst.running = True
        followers = (
            [inst.instance_id]
            if inst.role == "reader"
            else [r for r in self.reader_ids if self.instances[r].running]
        )
        await asyncio.gather(*(self.cluster.wait_streaming(self.writer_id, r) for r in followers))
        await self.sync_replication()
        await self.set_mode(inst, "up")
        self.timeline.record("instance rebooted", inst.instance_id)

    # -- failover --------------------------------------------------------------------------------

    async def fail_over(
        self, kind: Literal["failover", "switchover"], target: str | int | None
    ) -> FailoverReport:
        cluster, delays = self.cluster, self.delays
        old = self.instances[self.writer_id]
        candidates = [r for r in self.reader_ids if self.instances[r].running]
        if target is not None:
            chosen = self.get(target).instance_id
            if chosen == old.instance_id:
                raise SimulatorError(f"instance {chosen} is the writer already")
            if chosen not in candidates:
                raise SimulatorError(f"instance {chosen} is not a running replica and cannot be promoted")

        started = time.monotonic()
        if kind == "failover":
            await self.set_mode(old, "down")
            await cluster.stop(old.instance_id, "immediate")
            self.timeline.record("writer lost", f"{old.instance_id} crashed")
        else:
            await cluster.stop(old.instance_id, "fast")  # sessions get 57P01 admin_shutdown
            await self.set_mode(old, "down")
            self.timeline.record("writer stopped", f"{old.instance_id} shut down cleanly")
        if old.running:
            old.frozen_at = time.time()
        old.running = False
        if old.network == "crashed":
            old.network = "ok"  # the failover restarts it, as a replica or in place

        await asyncio.sleep(delays.promotion)
        if not candidates:  # Aurora restarts a lone writer where it is
            await cluster.start(old.instance_id)
            old.running, old.frozen_at = True, None
            await self.set_mode(old, "up")
            await self.write_topology()
            self.timeline.record("writer restarted in place", f"{old.instance_id} (no replica to promote)")
            return self._report(kind, old.instance_id, old.instance_id, started)

        best, lsns = await cluster.most_advanced(candidates)
        chosen = self.get(target).instance_id if target is not None else best
        if lsns[chosen] < lsns[best]:
            await cluster.catch_up(chosen, best, lsns[best])
            self.timeline.record("replica caught up", f"{chosen} streamed the WAL it lacked from {best}")
        await cluster.promote(chosen)
        self.instances[chosen].role, old.role = "writer", "reader"
        self.timeline.record("replica promoted", f"{chosen} is the writer")
        await self.schedule_dns(time.monotonic() + self.dns_delay)

        await asyncio.sleep(delays.topology)
        await self.write_topology()
        self.timeline.record("topology updated", f"writer {chosen}")

        others = [r for r in candidates if r != chosen]
        if others:
            await asyncio.gather(*(self._restart_replica(self.instances[r], chosen) for r in others))
            self.timeline.record("replicas re-pointed", f"{', '.join(others)} follow {chosen}")
        await self.sync_replication()

        await asyncio.sleep(delays.rejoin)
        how = await cluster.rejoin(old.instance_id, chosen)
        old.running, old.frozen_at = True, None
        await self.sync_replication()
        await self.write_topology()
        await self.set_mode(old, "up")
        self.timeline.record("old writer rejoined", f"{old.instance_id} is a replica of {chosen} ({how})")
        return self._report(kind, old.instance_id, chosen, started)

    async def _restart_replica(self, replica: Instance, writer_id: str) -> None:
        await self.set_mode(replica, "down")
        await self.cluster.repoint(replica.instance_id, writer_id)
        await asyncio.sleep(self.delays.replica_restart)
        await self.set_mode(replica, "up")

    def _report(self, kind: str, old: str, new: str, started: float) -> FailoverReport:
        return FailoverReport(kind, old, new, started, self.timeline.since(started))

    # -- membership ------------------------------------------------------------------------------

    async def add_instance(self) -> str:
        octet = max(int(i) for i in self.instances) + 1
        if octet > LAST_INSTANCE_OCTET or len(self.instances) >= MAX_INSTANCES:
            raise SimulatorError(f"cannot add more than {MAX_INSTANCES} instances")
        instance_id = str(octet)
        address = self.prefix + instance_id
        ensure_free([address], self.port)
        ensure_free([address], self.cluster.backend_port)
        await self.cluster.add_replica(instance_id, address, self.writer_id)
        self.instances[instance_id] = inst = Instance(instance_id, address, "reader")
        await self.register(inst)
        await self.sync_replication()
        await self.write_topology()
        await self.republish_dns()
        self.timeline.record("instance added", f"{instance_id} replicates from {self.writer_id}")
        return instance_id

    async def remove_instance(self, instance_id: str | int) -> None:
        inst = self.get(instance_id)
        if len(self.instances) == 1:
            raise SimulatorError("cannot remove the last instance of the cluster")
        if inst.role == "writer":
            if not any(self.instances[r].running for r in self.reader_ids):
                raise SimulatorError("cannot remove the writer: no running replica to fail over to")
            await self.fail_over("failover", None)
        await self.proxy.call("remove_listener", name=inst.instance_id)
        await self.proxy.call("remove_backend", name=inst.instance_id)
        del self.instances[inst.instance_id]
        await self.cluster.remove(inst.instance_id)
        await self.sync_replication()
        await self.write_topology()
        await self.republish_dns()
        self.timeline.record("instance removed", inst.instance_id)
