"""Aurora's failover and switchover on a simulated cluster, step by step, and the pauses between the
steps (``FailoverDelays``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from .._errors import SimulatorError
from ._cluster_state import ClusterState
from ._instances import Instance
from ._timeline import FailoverReport


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


async def fail_over(
    state: ClusterState,
    delays: FailoverDelays,
    kind: Literal["failover", "switchover"],
    target: str | int | None,
) -> FailoverReport:
    """Fail over (the writer is killed) or switch over (it is shut down cleanly) to ``target`` or to
    the most advanced running replica; see ``AuroraSimulator.failover``."""
    cluster = state.cluster
    old = state.instances[state.writer_id]
    candidates = [r for r in state.reader_ids if state.instances[r].running]
    if target is not None:
        chosen = state.get(target).instance_id
        if chosen == old.instance_id:
            raise SimulatorError(f"instance {chosen} is the writer already")
        if chosen not in candidates:
            raise SimulatorError(f"instance {chosen} is not a running replica and cannot be promoted")

    started = time.monotonic()
    if kind == "failover":
        await state.set_mode(old, "down")
        await cluster.stop(old.instance_id, "immediate")
        state.timeline.record("writer lost", f"{old.instance_id} crashed")
    else:
        await cluster.stop(old.instance_id, "fast")  # sessions get 57P01 admin_shutdown
        await state.set_mode(old, "down")
        state.timeline.record("writer stopped", f"{old.instance_id} shut down cleanly")
    if old.running:
        old.frozen_at = time.time()
    old.running = False
    if old.network == "crashed":
        old.network = "ok"  # the failover restarts it, as a replica or in place

    await asyncio.sleep(delays.promotion)
    if not candidates:  # Aurora restarts a lone writer where it is
        await cluster.start(old.instance_id)
        old.running, old.frozen_at = True, None
        await state.set_mode(old, "up")
        await state.write_topology()
        state.timeline.record("writer restarted in place", f"{old.instance_id} (no replica to promote)")
        return _report(state, kind, old.instance_id, old.instance_id, started)

    best, lsns = await cluster.most_advanced(candidates)
    chosen = state.get(target).instance_id if target is not None else best
    if lsns[chosen] < lsns[best]:
        await cluster.catch_up(chosen, best, lsns[best])
        state.timeline.record("replica caught up", f"{chosen} streamed the WAL it lacked from {best}")
    await cluster.promote(chosen)
    state.instances[chosen].role, old.role = "writer", "reader"
    state.timeline.record("replica promoted", f"{chosen} is the writer")
    await state.schedule_dns(time.monotonic() + state.dns_delay)

    await asyncio.sleep(delays.topology)
    await state.write_topology()
    state.timeline.record("topology updated", f"writer {chosen}")

    others = [r for r in candidates if r != chosen]
    if others:
        await asyncio.gather(*(_restart_replica(state, delays, state.instances[r], chosen) for r in others))
        state.timeline.record("replicas re-pointed", f"{', '.join(others)} follow {chosen}")
    await state.sync_replication()

    await asyncio.sleep(delays.rejoin)
    how = await cluster.rejoin(old.instance_id, chosen)
    old.running, old.frozen_at = True, None
    await state.sync_replication()
    await state.write_topology()
    await state.set_mode(old, "up")
    state.timeline.record("old writer rejoined", f"{old.instance_id} is a replica of {chosen} ({how})")
    return _report(state, kind, old.instance_id, chosen, started)


async def _restart_replica(
    state: ClusterState, delays: FailoverDelays, replica: Instance, writer_id: str
) -> None:
    await state.set_mode(replica, "down")
    await state.cluster.repoint(replica.instance_id, writer_id)
    await asyncio.sleep(delays.replica_restart)
    await state.set_mode(replica, "up")


def _report(state: ClusterState, kind: str, old: str, new: str, started: float) -> FailoverReport:
    return FailoverReport(kind, old, new, started, state.timeline.since(started))
