"""The narrow view of a cluster that its parts see: the writer search and connection placement
(``_routing``), the topology monitor, the host monitors and first contact (``_discovery``).

They see what the cluster *is* (settings, driver, dialect, topology and what is known about its
hosts), how to open connections for it, and the few things they may ask of it; not its lifetime or
its registry. :class:`aurora_async._cluster.Cluster` is the one implementation.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine, Iterator
from typing import Any, Protocol, TypeVar

from ._blue_green import BlueGreen
from ._dialect import Dialect, HostBuilder
from ._driver import Driver, RawConnection
from ._events import EventHub
from ._opener import Opener
from ._options import ClusterSettings
from ._topology import Instance, Topology

T = TypeVar("T")


class ClusterContext(Protocol):
    """What a cluster's parts may read and ask (see the module docstring)."""

    host: str  # the address the first connection was given
    port: int
    options: ClusterSettings
    driver: Driver
    events: EventHub  # what happens to the cluster, told to the application and to telemetry
    opener: Opener
    dialect: Dialect | None
    build: HostBuilder | None  # instance ids (and catalog endpoints) to addresses, once the dialect is known
    topology: Topology | None
    stats: Counter[str]
    down: set[str]  # instance ids a host monitor declared dead (until they answer)
    # the writer a search or the topology monitor last proved by asking it: (instance, when)
    writer_proved: tuple[Instance, float] | None
    load: Counter[str]  # connections of this process per instance id
    blue_green: BlueGreen  # its blue/green deployment (the writer search also watches green's hosts)
    blue_green_wanted: bool  # a connection runs the bg plugin: the topology monitor reads the metadata
    reader_turns: Iterator[int]  # round_robin reader selection

    @property
    def closed(self) -> bool: ...

    def spawn(self, work: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``work`` as one of the cluster's background tasks."""
        ...

    def publish(self, instances: list[Instance], *, verified: bool) -> Topology:
        """Make ``instances`` the topology (``verified``: its writer just answered as the writer)."""
        ...

    async def read_topology(self, conn: RawConnection) -> list[Instance] | None:
        """The topology the catalog behind ``conn`` reports (None: the dialect has none)."""
        ...

    async def find_writer(self, not_before: float, deadline: float) -> Topology:
        """A topology whose writer was verified at or after ``not_before`` (the shared search)."""
        ...

    def monitor_on(self, conn: RawConnection | None, writer_id: str | None) -> None:
        """Hand the topology monitor a connection to the writer (None: it opens its own)."""
        ...

    def start_monitor(self) -> None:
        """Start the topology monitor (once the dialect is known; idempotent)."""
        ...

    async def ping_writer_on_monitor(self, instance_id: str) -> bool | None:
        """Probe instance ``instance_id`` on the topology monitor's connection when that connection is
        open on it (the writer): True when it answered; None when there is no such connection (the
        caller probes on one of its own). A failure raises the driver's error, or TimeoutError under
        the caller's deadline, and the connection is dropped (the monitor reopens it, or searches)."""
        ...

    def request_refresh(self) -> None:
        """Read the topology soon, and often for a while (a failure was seen)."""
        ...

    def mark_down(self, instance_id: str) -> None: ...

    def mark_up(self, instance_id: str) -> None: ...
