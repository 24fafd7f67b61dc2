"""The simulator's control plane: the operations that change a running cluster (faults, failover,
membership).

It plays Aurora's part: it decides roles, keeps the catalog's topology, the fault proxy's routes and
synchronous replication in step with what happens to the servers (``_cluster_state``), and records
every step on the timeline. The caller (``AuroraSimulator``) runs one operation at a time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from .._errors import SimulatorError
from ..mysql._cluster import MariaDbCluster
from ..mysql._iam import IamLoginAttempt
from ._cluster_state import ClusterState
from ._failover import fail_over
from ._instances import MAX_INSTANCES, Instance
from ._network import LAST_INSTANCE_OCTET, ensure_free
from ._timeline import FailoverReport


class ControlPlane(ClusterState):
    """Every operation on a running cluster: faults, failover, membership."""

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

    async def pause(self, instance_id: str | int, resume_seconds: float) -> None:
        if isinstance(resume_seconds, bool) or not 0 <= resume_seconds < 86400:
            raise ValueError(f"resume_seconds must be a number from 0 to a day, not {resume_seconds!r}")
        inst = self.get(instance_id)
        if not inst.running or inst.network != "ok":
            state = inst.network if inst.network != "ok" else "not running"
            raise SimulatorError(f"instance {inst.instance_id} is {state}; restore it first")
        await self.proxy.call("mode", name=inst.instance_id, mode="paused", resume_seconds=resume_seconds)
        self.timeline.record(
            "instance paused",
            f"{inst.instance_id} (resumes {resume_seconds:g} s after the first connection attempt)",
        )

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
        return await fail_over(self, self.delays, kind, target)

    async def set_password(self, user: str, password: str) -> None:
        await self.cluster.set_password(self.writer_id, user, password)
        if self.rds_proxy:  # RDS Proxy logs in with the user's secret
            await self.proxy.call("rds_proxy_secret", name="proxy", user=user, password=password)

    async def create_iam_user(self, user: str) -> None:
        if not isinstance(self.cluster, MariaDbCluster):
            raise SimulatorError(
                "create_iam_user is for engine='mysql'; on PostgreSQL make the token the user's "
                "password (set_password, or RehearsalSession(sim, user))"
            )
        await self.cluster.create_iam_user(self.writer_id, user)

    def iam_login_attempts(self) -> list[IamLoginAttempt]:
        if not isinstance(self.cluster, MariaDbCluster):
            return []
        return self.cluster.iam_login_attempts()

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
