"""A simulated Aurora Global Database: the simulator's cluster as the primary region, a second cluster
in another "region" that replicates from it, a global writer endpoint, and the two ways the primary role
moves between regions.

The secondary region has addresses of its own (another loopback prefix: its own "domain", as each AWS
region has), instances ``111``, ``112``, ... and cluster endpoints ``<prefix>1`` / ``<prefix>2`` there;
all its instances are read-only. The catalog is global, as on Aurora: ``aurora_global_db_status()``
lists the regions, ``aurora_global_db_instance_status()`` every instance with its ``aws_region``;
``aurora_replica_status()`` lists only the instances of the asking instance's own region. The global
writer endpoint (``<primary prefix>100``) follows the primary region's writer, ``dns_delay`` late.

- :meth:`GlobalDatabase.switchover` (planned, no data loss): the primary's writer stops taking writes and
  its sessions end, the secondary replays everything, its primary instance is promoted, the former
  primary's writer becomes a standby of it (``pg_rewind``), and the roles of the regions swap.
- :meth:`GlobalDatabase.failover` (unplanned, ``allow_data_loss=True``): the primary region is lost
  (its servers killed) and the secondary's primary instance is promoted with what it had: a commit
  that had not reached it is gone (:meth:`GlobalDatabase.hold_replication` keeps such a tail back on
  purpose). The lost region stays down.

Both engines: PostgreSQL streams WAL between the regions (``postgresql._global``), MariaDB replicates by
GTID (``mysql._global``).
"""

from __future__ import annotations

import asyncio
import time

from .._cluster_protocol import GlobalReplication
from .._errors import SimulatorError
from ..mysql._cluster import MariaDbCluster
from ..mysql._global import MariaDbGlobal
from ..postgresql._global import PgGlobal
from ._blue_green import GreenCluster
from ._control_plane import ControlPlane
from ._timeline import FailoverReport

GLOBAL_ENDPOINT_LISTENER = "global"
SECONDARY_ENDPOINT_LISTENERS = ("secondary-cluster", "secondary-reader")


def _replication(control: ControlPlane) -> GlobalReplication:
    return MariaDbGlobal() if isinstance(control.cluster, MariaDbCluster) else PgGlobal()


class GlobalDatabase:
    """A Global Database of a running simulator; made by :meth:`AuroraSimulator.create_global_database`."""

    def __init__(
        self,
        *,
        primary: ControlPlane,
        secondary: ControlPlane,
        secondary_endpoints: tuple[str, str],
        global_host: str,
        lock: asyncio.Lock,
    ) -> None:
        self._engine = _replication(primary)
        self._primary, self._secondary = primary, secondary
        self._global_host = global_host
        self._lock = lock
        self.secondary = GreenCluster(secondary, secondary_endpoints)
        self._lost: str | None = None  # the region lost to a failover

    @property
    def primary_region(self) -> str:
        return self._primary.region or ""

    @property
    def secondary_region(self) -> str:
        return self._secondary.region or ""

    @property
    def primary_plane(self) -> ControlPlane:
        """The primary region's cluster (the simulator's own operations on the global writer)."""
        return self._primary

    @property
    def writer_id(self) -> str:
        """The global writer: the primary region's writer."""
        return self._primary.writer_id

    @property
    def global_endpoint(self) -> str:
        """``host:port`` of the global writer endpoint (follows the primary region, ``dns_delay`` late)."""
        return f"{self._global_host}:{self._primary.port}"

    def dsn(self) -> str:
        """A DSN for the global writer endpoint."""
        return self._primary.cluster.dsn(self._global_host, self._primary.port)

    async def attach(self) -> None:
        """Create the secondary region's instances from the primary's writer and publish the catalog."""
        primary, secondary = self._primary, self._secondary
        ids = secondary.instance_ids
        await self._engine.attach(
            primary.cluster,
            primary.writer_id,
            secondary.cluster,
            (ids[0], secondary.instances[ids[0]].address),
            [(i, secondary.instances[i].address) for i in ids[1:]],
        )
        self._couple()
        await primary.write_topology()

    def _couple(self) -> None:
        self._primary.global_peer, self._secondary.global_peer = self._secondary, self._primary
        self._primary.global_secondary, self._secondary.global_secondary = False, True

    async def hold_replication(self) -> None:
        """Stop replication to the secondary region (the primary's commits from now on stay there)."""
        async with self._lock:
            self._check_two_regions()
            await self._engine.hold(self._secondary.cluster, self._secondary.writer_id)
            self._primary.timeline.record("global replication held", f"{self.secondary_region} falls behind")

    async def resume_replication(self) -> None:
        async with self._lock:
            self._check_two_regions()
            primary, secondary = self._primary, self._secondary
            await self._engine.resume(
                primary.cluster, primary.writer_id, secondary.cluster, secondary.writer_id
            )
            self._primary.timeline.record("global replication resumed")

    def _check_two_regions(self) -> None:
        if self._lost is not None:
            raise SimulatorError(f"region {self._lost} was lost to a failover: one region is left")

    async def switchover(self, *, timeout: float = 30.0) -> FailoverReport:
        """A planned switchover to the secondary region, with no data loss (see the module docstring)."""
        async with self._lock:
            self._check_two_regions()
            old, new = self._primary, self._secondary
            timeline = old.timeline
            started = time.monotonic()
            old_writer, new_writer = old.writer_id, new.writer_id
            timeline.record("global switchover started", f"{old.region} -> {new.region}")
            await self._engine.stop_writes(old.cluster, old_writer)
            timeline.record("primary region stopped taking writes", f"writer {old_writer}: sessions ended")
            try:
                await self._engine.wait_caught_up(old.cluster, old_writer, new.cluster, new_writer, timeout)
            except SimulatorError:
                await self._engine.allow_writes(old.cluster, old_writer)
                timeline.record("global switchover rolled back", f"{new.region} did not catch up")
                raise SimulatorError(
                    f"global switchover rolled back: {new.region} did not catch up within {timeout:g} s"
                ) from None
            await self._promote(new, old)
            readers = [r for r in old.reader_ids if old.instances[r].running]
            how = await self._engine.follow(old.cluster, old_writer, readers, new.cluster, new_writer)
            await old.sync_replication()
            timeline.record(
                "former primary follows", f"{old_writer} ({old.region}) streams from {new_writer} ({how})"
            )
            await new.write_topology()
            events = timeline.since(started)
            return FailoverReport("global switchover", old_writer, new_writer, started, events)

    async def failover(self, *, allow_data_loss: bool = False) -> FailoverReport:
        """An unplanned failover to the secondary region: the primary region is lost (see the module
        docstring). ``allow_data_loss`` must be true, as RDS asks."""
        if not allow_data_loss:
            raise SimulatorError(
                "a Global Database failover loses what had not reached the secondary region: pass "
                "allow_data_loss=True, or use switchover() for none"
            )
        async with self._lock:
            self._check_two_regions()
            old, new = self._primary, self._secondary
            timeline = old.timeline
            started = time.monotonic()
            old_writer, new_writer = old.writer_id, new.writer_id
            for instance_id in old.instance_ids:
                inst = old.instances[instance_id]
                await old.set_mode(inst, "down")
                await old.cluster.stop(instance_id, "immediate")
                inst.running, inst.frozen_at = False, time.time()
            timeline.record("primary region lost", f"{old.region}: {', '.join(old.instance_ids)} crashed")
            self._lost = old.region or ""
            await self._promote(new, old)
            return FailoverReport("global failover", old_writer, new_writer, started, timeline.since(started))

    async def _promote(self, new: ControlPlane, old: ControlPlane) -> None:
        """``new``'s primary instance takes writes: it is the global writer, its region the primary."""
        await self._engine.promote(new.cluster, new.writer_id)
        self._primary, self._secondary = new, old
        self._couple()
        new.timeline.record("secondary promoted", f"{new.writer_id} ({new.region}) is the global writer")
        await new.sync_replication()
        await new.write_topology()
        await self._route_global(new)

    async def _route_global(self, primary: ControlPlane) -> None:
        due = time.monotonic() + primary.dns_delay
        at = due if primary.dns_delay > 0 else None
        await primary.proxy.call("route", name=GLOBAL_ENDPOINT_LISTENER, targets=[primary.writer_id], at=at)
        primary.timeline.record("global endpoint DNS updated", f"-> {primary.writer_id}", at=due)
