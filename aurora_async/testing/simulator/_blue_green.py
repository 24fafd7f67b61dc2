"""A simulated Amazon RDS blue/green deployment: a second cluster (green) that replicates from the
simulator's own (blue), its metadata as Aurora publishes it, and the switchover.

The green cluster has instances of its own (ids from ``111``), in the same "domain" as blue (addresses
``<prefix><id>`` on the same port, so blue's ``instance_host_pattern`` reaches them, as an RDS
instance name in the same account and region does), and cluster endpoints of its own (``<prefix>101``
and ``<prefix>102``, where RDS names them ``...-green-xxxxxx``). Green is read-only until the switchover.

Metadata: each cluster serves the deployment's hosts with their role (``BLUE_GREEN_DEPLOYMENT_SOURCE``
for blue, ``..._TARGET`` for green) and its status: PostgreSQL through
``pg_catalog.get_blue_green_fast_switchover_metadata(text)``, MySQL through the ``mysql.rds_topology``
table (columns ``id, endpoint, port, role, status, version, update_stamp``).

A switchover, step by step (:meth:`BlueGreenDeployment.switchover`):

1. ``SWITCHOVER_INITIATED``; a pause (``preparation``, 1.5 s by default).
2. ``SWITCHOVER_IN_PROGRESS``: as RDS does, every instance of both clusters drops its connections
   and refuses new ones; blue's writer stops taking writes (read-only, and its server sessions are
   ended); green catches up with blue's last commit; replication stops (PostgreSQL: sequences are
   copied); the names swap (blue's cluster endpoints lead to green's instances, green's to blue's, the
   ``-old1`` names), ``dns_delay`` later: stale DNS, as after a failover); connections are allowed
   again and green's writer takes writes. Instance endpoints keep their instance: the simulator does
   not rename instances. When green does not catch up within ``timeout`` the switchover is rolled
   back: blue takes writes and connections again, the status is ``AVAILABLE`` again, and it raises.
3. ``SWITCHOVER_IN_POST_PROCESSING`` until the endpoints follow.
4. ``SWITCHOVER_COMPLETED`` once the endpoints follow. Blue stays read-only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from .._catalog import BlueGreenHost
from .._cluster_protocol import DatabaseCluster
from .._errors import SimulatorError
from ..mysql._blue_green import MariaDbBlueGreen
from ..mysql._cluster import MariaDbCluster
from ..postgresql._blue_green import PgBlueGreen
from ..postgresql._cluster import PostgresCluster
from ._control_plane import ControlPlane
from ._timeline import FailoverReport

if TYPE_CHECKING:
    from ._instances import InstanceState

Status = Literal[
    "AVAILABLE",
    "SWITCHOVER_INITIATED",
    "SWITCHOVER_IN_PROGRESS",
    "SWITCHOVER_IN_POST_PROCESSING",
    "SWITCHOVER_COMPLETED",
]
SOURCE = "BLUE_GREEN_DEPLOYMENT_SOURCE"
TARGET = "BLUE_GREEN_DEPLOYMENT_TARGET"
METADATA_VERSION = "1.0"
GREEN_ENDPOINT_LISTENERS = ("green-cluster", "green-reader")


def replication_for(blue: DatabaseCluster, green: DatabaseCluster) -> Replication:
    """The engine's replication between two clusters of the same engine."""
    if isinstance(blue, PostgresCluster) and isinstance(green, PostgresCluster):
        return PgBlueGreen(blue, green)
    if isinstance(blue, MariaDbCluster) and isinstance(green, MariaDbCluster):
        return MariaDbBlueGreen(blue, green)
    raise SimulatorError("blue/green deployments are not simulated for this engine yet")


class Replication(Protocol):
    """The engine's part: replication from blue's writer to green's, and a switchover's database steps."""

    async def replicate(self, blue_writer: str, green_writer: str) -> None: ...

    async def stop_writes(self) -> None: ...

    async def allow_writes_on_blue(self) -> None: ...

    async def wait_caught_up(self, timeout: float) -> None: ...

    async def detach(self) -> None: ...

    async def copy_sequences(self) -> None: ...

    async def allow_writes_on_green(self) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def write_status(
        self, side: Literal["blue", "green"], writer_id: str, hosts: Sequence[BlueGreenHost]
    ) -> None: ...


class GreenCluster:
    """The green cluster's addresses, as :class:`AuroraSimulator` gives blue's."""

    def __init__(self, control: ControlPlane, endpoint_hosts: tuple[str, str]) -> None:
        self._control = control
        self._endpoint_hosts = endpoint_hosts

    @property
    def instance_ids(self) -> list[str]:
        return self._control.instance_ids

    @property
    def writer_id(self) -> str:
        return self._control.writer_id

    @property
    def reader_ids(self) -> list[str]:
        return self._control.reader_ids

    @property
    def cluster_endpoint(self) -> str:
        """``host:port`` of green's writer endpoint (before a switchover; blue's instances after it)."""
        return f"{self._endpoint_hosts[0]}:{self._control.port}"

    @property
    def reader_endpoint(self) -> str:
        return f"{self._endpoint_hosts[1]}:{self._control.port}"

    @property
    def instances(self) -> dict[str, InstanceState]:
        return self._control.snapshot()

    @property
    def instance_host_pattern(self) -> str:
        """Its ``cluster_instance_host_pattern`` (a Global Database's secondary region has its own)."""
        return f"{self._control.prefix}?:{self._control.port}"

    def endpoint(self, instance_id: str | int) -> str:
        return f"{self._control.get(instance_id).address}:{self._control.port}"

    def dsn(self, target: str | int = "cluster") -> str:
        """A DSN for green's ``"cluster"`` or ``"reader"`` endpoint, or one of its instances."""
        control = self._control
        if target == "cluster":
            host = self._endpoint_hosts[0]
        elif target == "reader":
            host = self._endpoint_hosts[1]
        else:
            host = control.get(target).address
        return control.cluster.dsn(host, control.port)


class BlueGreenDeployment:
    """A blue/green deployment of a running simulator (see the module docstring); made by
    :meth:`AuroraSimulator.create_blue_green`."""

    def __init__(
        self,
        *,
        blue: ControlPlane,
        green: ControlPlane,
        replication: Replication,
        endpoint_hosts: dict[tuple[str, str], tuple[str, str]],
        lock: asyncio.Lock,
    ) -> None:
        self._blue = blue
        self._green_control = green
        self._replication = replication
        self._endpoint_hosts = endpoint_hosts  # endpoint listener pair -> their two addresses
        self._lock = lock  # the simulator's: one operation at a time
        self._status: Status = "AVAILABLE"
        self._replicating = True
        self.green = GreenCluster(green, endpoint_hosts[GREEN_ENDPOINT_LISTENERS])

    @property
    def status(self) -> Status:
        """The deployment's status as its metadata reports it."""
        return self._status

    @property
    def replicating(self) -> bool:
        """Whether green still replicates from blue (until a switchover)."""
        return self._replicating

    def hosts(self) -> list[BlueGreenHost]:
        """The metadata rows each cluster serves now."""
        stamp = time.time()
        rows: list[BlueGreenHost] = []
        for control, role in ((self._blue, SOURCE), (self._green_control, TARGET)):
            writer_host, reader_host = self._endpoint_hosts[control.endpoint_listeners]
            names = [
                (f"{control.tag}-writer-endpoint", writer_host),
                (f"{control.tag}-reader-endpoint", reader_host),
            ] + [(i, control.instances[i].address) for i in control.instance_ids]
            rows += [
                BlueGreenHost(name, host, control.port, role, self._status, METADATA_VERSION, stamp)
                for name, host in names
            ]
        return rows

    async def publish(self) -> None:
        """Write the metadata on both clusters' writers."""
        hosts = self.hosts()
        sides: tuple[tuple[ControlPlane, Literal["blue", "green"]], ...] = (
            (self._blue, "blue"),
            (self._green_control, "green"),
        )
        for control, side in sides:
            if control.instances[control.writer_id].running:
                await self._replication.write_status(side, control.writer_id, hosts)

    async def _set_status(self, status: Status, detail: str = "") -> None:
        self._status = status
        await self.publish()
        self._blue.timeline.record(f"blue/green {status}", detail)

    async def _connections(self, *, allowed: bool) -> None:
        """Refuse new connections to every instance of both clusters and drop the open ones (as RDS
        does while it switches over), or allow them again."""
        for control in (self._blue, self._green_control):
            for instance_id in control.instance_ids:
                inst = control.instances[instance_id]
                if inst.running and inst.network != "crashed":
                    await control.set_mode(inst, "up" if allowed else "down")

    async def pause_replication(self) -> None:
        """Hold replication to green (green falls behind; a switchover then waits, or times out)."""
        async with self._lock:
            self._check_replicating()
            await self._replication.pause()
            self._blue.timeline.record("blue/green replication paused")

    async def resume_replication(self) -> None:
        async with self._lock:
            self._check_replicating()
            await self._replication.resume()
            self._blue.timeline.record("blue/green replication resumed")

    def _check_replicating(self) -> None:
        if not self._replicating:
            raise SimulatorError("the blue/green deployment no longer replicates: it switched over")

    async def switchover(self, *, timeout: float = 30.0, preparation: float = 1.5) -> FailoverReport:
        """Switch over to green (the steps are in the module docstring); returns once the endpoints
        follow (``dns_delay`` after the switch).

        :param timeout: how long green may take to catch up with blue's last commit; then the
            switchover is rolled back and :class:`SimulatorError` raised.
        :param preparation: seconds between ``SWITCHOVER_INITIATED`` and ``SWITCHOVER_IN_PROGRESS``
            (RDS's guardrail checks; scaled down, long enough for a client polling the metadata every
            second to see the switchover coming).
        """
        if timeout <= 0 or preparation < 0:
            raise ValueError("timeout must be > 0 and preparation >= 0")
        async with self._lock:
            self._check_replicating()
            blue, green = self._blue, self._green_control
            started = time.monotonic()
            old_writer, new_writer = blue.writer_id, green.writer_id
            await self._set_status("SWITCHOVER_INITIATED")
            await asyncio.sleep(preparation)
            await self._set_status("SWITCHOVER_IN_PROGRESS")
            await self._connections(allowed=False)
            await self._replication.stop_writes()
            blue.timeline.record(
                "blue stopped taking writes",
                f"writer {old_writer}: read-only, its sessions ended; no connections to either cluster",
            )
            try:
                await self._replication.wait_caught_up(timeout)
            except SimulatorError:
                await self._replication.allow_writes_on_blue()
                await self._connections(allowed=True)
                await self._set_status("AVAILABLE", "rolled back")
                raise SimulatorError(
                    "blue/green switchover rolled back: green did not catch up with blue within "
                    f"{timeout:g} s"
                ) from None
            blue.timeline.record("green caught up", f"{new_writer} applied blue's last commit")
            await self._replication.detach()
            await self._replication.copy_sequences()
            self._replicating = False
            due = time.monotonic() + blue.dns_delay
            blue.endpoint_listeners, green.endpoint_listeners = (
                green.endpoint_listeners,
                blue.endpoint_listeners,
            )
            for control in (green, blue):
                await control.schedule_dns(due)
            await self._connections(allowed=True)
            await self._replication.allow_writes_on_green()
            blue.timeline.record("green takes writes", f"writer {new_writer}; connections allowed again")
            await self._set_status("SWITCHOVER_IN_POST_PROCESSING", "names swapped; DNS follows")
            await blue.wait_dns_settled(None)
            await self._set_status("SWITCHOVER_COMPLETED")
            return FailoverReport(
                "blue/green switchover", old_writer, new_writer, started, blue.timeline.since(started)
            )
