"""What every dialect is, whatever the engine: the interface, and what the catalogs' rows become.

A dialect knows how to ask one kind of cluster (Aurora, RDS Multi-AZ, RDS, plain) who is who: which
instance a connection reached, whether it is the writer, and the topology. ``conn`` is the driver's
physical connection. The engine packages (``postgresql``, ``mysql``) hold the dialects themselves.
"""

from __future__ import annotations

import abc
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar, Protocol

from ._blue_green import BlueGreenHost
from ._rds_hosts import HostPattern, classify_host
from ._topology import Instance, Role


class HostBuilder(Protocol):
    """(instance id, host from the catalog or None, port from the catalog or None, the instance's
    region where the catalog gives one) -> (host, port) to dial."""

    def __call__(
        self, instance_id: str, endpoint: str | None, row_port: int | None, region: str | None = None
    ) -> tuple[str, int]: ...


class Dialect(abc.ABC):
    """How to ask one kind of cluster who is who (see the module docstring)."""

    code: ClassVar[str]
    has_topology: ClassVar[bool] = False
    # the catalog names instances by id only: their addresses come from cluster_instance_host_pattern
    # (or the RDS cluster endpoint's domain)
    ids_only: ClassVar[bool] = False

    @abc.abstractmethod
    async def detect(self, conn: Any, timeout: float) -> bool:
        """Whether the server behind ``conn`` is of this kind."""

    @abc.abstractmethod
    async def is_reader(self, conn: Any, timeout: float) -> bool:
        """The cheap role check: is the instance read-only (a replica)?"""

    async def is_writer(self, conn: Any, timeout: float) -> bool:
        """Ask the instance itself whether it is the cluster's writer."""
        return not await self.is_reader(conn, timeout)

    @abc.abstractmethod
    async def instance_id(self, conn: Any, timeout: float) -> str:
        """The id of the instance ``conn`` reached, as the topology names it."""

    async def identify(self, conn: Any, timeout: float) -> tuple[str, bool]:
        """(:meth:`instance_id`, :meth:`is_reader`): which instance ``conn`` reached and whether it is
        read-only; a dialect that can ask both in one round trip does."""
        is_reader = await self.is_reader(conn, timeout)
        return await self.instance_id(conn, timeout), is_reader

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        """Every instance with its role, or None when the answer is unusable (no writer)."""
        return None

    async def blue_green(self, conn: Any, timeout: float) -> list[BlueGreenHost] | None:
        """The blue/green deployment's metadata as this catalog publishes it (no rows: none is
        deployed), or None where the catalog has none (another kind of cluster, an older version)."""
        return None


DETECTION_NOTE = (
    "aurora_async: raised by a dialect detection query, so the cluster's dialect is unknown and the "
    "connect failed (the next one detects again); if the user may not read the catalog, grant it, or set "
    "wrapper_dialect to skip detection"
)


def aurora_instances(rows: list[tuple[Any, ...]], build: HostBuilder) -> list[Instance] | None:
    """Aurora's status rows as instances; None when no row is the writer (the answer is unusable).

    Of several rows claiming to be the writer, the most recently updated one wins.
    """
    by_id: dict[str, Instance] = {}
    writers: list[Instance] = []
    for server_id, is_writer, _cpu, lag, updated in rows:
        if server_id is None:
            continue
        instance_id = str(server_id)
        host, port = build(instance_id, None, None)
        instance = Instance(
            instance_id, host, port, Role.READER, updated, float(lag) if lag is not None else None
        )
        by_id[instance_id] = instance  # an id listed twice: its last row (unless it is the writer)
        if is_writer:
            writers.append(instance)
    if not writers:
        return None
    latest = max(writers, key=lambda w: (w.last_update is not None, w.last_update or datetime.min))
    by_id[latest.instance_id] = replace(latest, role=Role.WRITER)  # the only writer, from its own row
    return list(by_id.values())


def global_instances(rows: list[tuple[Any, ...]], build: HostBuilder) -> list[Instance] | None:
    """An Aurora Global Database's ``(server id, is the global writer, visibility lag, region)`` rows as
    instances of every region; None when no row is the writer (the answer is unusable)."""
    instances: dict[str, Instance] = {}
    writer: str | None = None
    for server_id, is_writer, lag, region in rows:
        if server_id is None:
            continue
        instance_id, where = str(server_id), str(region) if region is not None else None
        host, port = build(instance_id, None, None, where)
        role = Role.WRITER if is_writer and writer is None else Role.READER
        writer = instance_id if role is Role.WRITER else writer
        instances[instance_id] = Instance(
            instance_id, host, port, role, None, float(lag) if lag is not None else None, where
        )
    return list(instances.values()) if writer is not None else None


def multi_az_instances(
    rows: Iterable[Sequence[Any]], is_writer: Callable[[Any], bool], build: HostBuilder
) -> list[Instance] | None:
    """RDS Multi-AZ ``(id, endpoint, port)`` rows as instances named by :func:`multi_az_instance_name`;
    the first row whose id ``is_writer`` is the writer. None when no row is (the answer is unusable)."""
    by_name: dict[str, Instance] = {}
    writer: Instance | None = None
    for row_id, endpoint, port in rows:
        if row_id is None or endpoint is None:  # names no instance
            continue
        row_port = int(port) if port is not None else None
        name = multi_az_instance_name(str(endpoint), row_port)
        host, real_port = build(name, str(endpoint), row_port)
        if writer is None and is_writer(row_id):
            writer = by_name[name] = Instance(name, host, real_port, Role.WRITER)
        elif name not in by_name:  # a name listed twice: its first row (the writer's, if any)
            by_name[name] = Instance(name, host, real_port, Role.READER)
    return list(by_name.values()) if writer is not None else None


def host_builder(
    pattern: HostPattern | None,
    initial_host: str,
    initial_port: int,
    regional: Sequence[tuple[str, HostPattern]] = (),
) -> HostBuilder:
    """How instance ids become addresses: for an instance of a region ``regional`` names (an Aurora
    Global Database), that region's pattern; else the configured pattern, else the RDS cluster's
    domain, else (Multi-AZ only) the endpoint the catalog reports; ``LookupError`` when none of them
    applies.

    A Multi-AZ endpoint that is an IP address is used as listed (with the row's port): it is an address
    already, and the instance it names has no id to put in a pattern."""
    template = pattern.template if pattern is not None else classify_host(initial_host).instance_template
    port = pattern.port if pattern is not None and pattern.port is not None else initial_port

    by_region = dict(regional)

    def build(
        instance_id: str, endpoint: str | None, row_port: int | None, region: str | None = None
    ) -> tuple[str, int]:
        if region is not None and by_region:
            if region not in by_region:
                raise LookupError(
                    f"instance {instance_id} is in region {region}, for which "
                    "global_cluster_instance_host_patterns has no pattern (it has "
                    f"{', '.join(sorted(by_region))})"
                )
            local = by_region[region]
            return local.host_for(instance_id), local.port if local.port is not None else port
        if endpoint is not None and _ip_address(endpoint) is not None:
            return endpoint, row_port or port
        if template is not None:
            return template.replace("?", instance_id), port
        if endpoint is not None:
            return endpoint, row_port or initial_port
        raise LookupError(instance_id)

    return build


def multi_az_instance_name(endpoint: str, port: Any) -> str:
    """The name of the instance a Multi-AZ catalog row lists at ``endpoint`` and ``port``.

    RDS lists DNS names, whose first label is the instance identifier (``db-1`` for
    ``db-1.abc.us-east-1.rds.amazonaws.com``). An IP address has no such label: it names the instance
    whole, with its port (``10.0.0.5:5432``, ``[fd00::5]:5432``), so that neither two addresses nor two
    ports of one address become one instance. :meth:`MultiAzPgDialect.instance_id` and its MySQL
    counterpart name the instance a connection reached the same way, from its own row."""
    address = _ip_address(endpoint)
    if address is None:
        return endpoint.split(".", 1)[0]
    host = f"[{address}]" if address.version == 6 else str(address)
    return host if port is None else f"{host}:{int(port)}"


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
