"""Database dialects: how to ask each kind of PostgreSQL cluster who is who.

The SQL is what the AWS drivers send to Aurora and RDS (verbatim where they have it), so it runs the
same against real clusters and against ``aurora_async.testing``'s simulator.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from ._rds_hosts import HostPattern, classify_host
from ._topology import Instance, Role
from ._version import __version__

# (instance id, host from the catalog or None) -> (host, port) clients should use
HostBuilder = Callable[[str, str | None, int | None], tuple[str, int]]

IS_READER_SQL = "SELECT pg_catalog.pg_is_in_recovery()"


class Dialect:
    """Plain PostgreSQL: no topology; the instance is identified by its address.

    Also the interface of every dialect (PostgreSQL and MySQL): ``conn`` is the driver's physical
    connection."""

    code = "pg"
    has_topology = False
    # the catalog names instances by id only: their addresses come from cluster_instance_host_pattern
    # (or the RDS cluster endpoint's domain)
    ids_only = False

    async def detect(self, conn: Any, timeout: float) -> bool:
        return await _probe(conn, "SELECT 1 FROM pg_catalog.pg_proc LIMIT 1", timeout) is not None

    async def is_reader(self, conn: Any, timeout: float) -> bool:
        return bool(await conn.fetchval(IS_READER_SQL, timeout=timeout))

    async def is_writer(self, conn: Any, timeout: float) -> bool:
        """Ask the instance itself whether it is the cluster's writer."""
        return not await self.is_reader(conn, timeout)

    async def instance_id(self, conn: Any, timeout: float) -> str:
        row = await conn.fetchrow(
            "SELECT pg_catalog.inet_server_addr()::text, pg_catalog.inet_server_port()", timeout=timeout
        )
        return f"{row[0]}:{row[1]}" if row is not None and row[0] is not None else "local"

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        """Every instance with its role, or None when the answer is unusable (no writer)."""
        return None


class RdsPgDialect(Dialect):
    """A single RDS for PostgreSQL instance (rds_tools present, not Aurora)."""

    code = "rds-pg"

    async def detect(self, conn: Any, timeout: float) -> bool:
        row = await _probe(
            conn,
            "SELECT (setting LIKE '%rds_tools%') AS rds_tools, (setting LIKE '%aurora_stat_utils%') AS "
            "aurora_stat_utils FROM pg_catalog.pg_settings "
            "WHERE name OPERATOR(pg_catalog.=) 'rds.extensions'",
            timeout,
        )
        return row is not None and bool(row[0]) and not row[1]


class AuroraPgDialect(Dialect):
    code = "aurora-pg"
    has_topology = True
    ids_only = True
    TOPOLOGY_SQL = (
        "SELECT SERVER_ID, CASE WHEN SESSION_ID OPERATOR(pg_catalog.=) 'MASTER_SESSION_ID' THEN TRUE ELSE "
        "FALSE END, CPU, COALESCE(REPLICA_LAG_IN_MSEC, 0), LAST_UPDATE_TIMESTAMP FROM "
        "pg_catalog.aurora_replica_status() WHERE EXTRACT(EPOCH FROM(pg_catalog.NOW() OPERATOR(pg_catalog.-) "
        "LAST_UPDATE_TIMESTAMP)) OPERATOR(pg_catalog.<=) 300 OR SESSION_ID OPERATOR(pg_catalog.=) "
        "'MASTER_SESSION_ID' OR LAST_UPDATE_TIMESTAMP IS NULL"
    )
    INSTANCE_ID_SQL = "SELECT pg_catalog.aurora_db_instance_identifier()"
    WRITER_ID_SQL = (
        "SELECT SERVER_ID FROM pg_catalog.aurora_replica_status() WHERE SESSION_ID OPERATOR(pg_catalog.=) "
        "'MASTER_SESSION_ID' AND SERVER_ID OPERATOR(pg_catalog.=) pg_catalog.aurora_db_instance_identifier()"
    )

    async def detect(self, conn: Any, timeout: float) -> bool:
        row = await _probe(
            conn,
            "SELECT (setting LIKE '%aurora_stat_utils%') AS aurora_stat_utils FROM pg_catalog.pg_settings "
            "WHERE name OPERATOR(pg_catalog.=) 'rds.extensions'",
            timeout,
        )
        if row is None or not row[0]:
            return False
        return (
            await _probe(conn, "SELECT 1 FROM pg_catalog.aurora_replica_status() LIMIT 1", timeout)
            is not None
        )

    async def instance_id(self, conn: Any, timeout: float) -> str:
        return str(await conn.fetchval(self.INSTANCE_ID_SQL, timeout=timeout))

    async def is_writer(self, conn: Any, timeout: float) -> bool:
        # the instance must accept writes and the catalog must name it as the writer; the cheap
        # recovery check first, since a failover's writer search asks replicas this many times
        if await self.is_reader(conn, timeout):
            return False
        return await conn.fetchval(self.WRITER_ID_SQL, timeout=timeout) is not None

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        rows = await conn.fetch(self.TOPOLOGY_SQL, timeout=timeout)
        return aurora_instances([tuple(r) for r in rows], build)


class MultiAzPgDialect(Dialect):
    """RDS Multi-AZ DB clusters (one writer, two readable standbys) through ``rds_tools``.

    The writer is the instance for which ``multi_az_db_cluster_source_dbi_resource_id()`` names itself;
    a reader names the writer it replicates from. (The AWS Python wrapper reads this the wrong way
    round; this follows the JDBC wrapper.)
    """

    code = "multi-az-pg"
    has_topology = True
    SOURCE_SQL = (
        "SELECT multi_az_db_cluster_source_dbi_resource_id FROM "
        "rds_tools.multi_az_db_cluster_source_dbi_resource_id()"
    )
    SELF_SQL = "SELECT dbi_resource_id FROM rds_tools.dbi_resource_id()"
    INSTANCE_ID_SQL = (
        "SELECT endpoint, port FROM rds_tools.show_topology() WHERE id OPERATOR(pg_catalog.=) "
        "rds_tools.dbi_resource_id()"
    )
    TOPOLOGY_SQL = f"SELECT id, endpoint, port FROM rds_tools.show_topology('aurora_async-{__version__}')"

    async def detect(self, conn: Any, timeout: float) -> bool:
        row = await _probe(conn, self.SOURCE_SQL, timeout)
        return row is not None and bool(row[0])

    async def instance_id(self, conn: Any, timeout: float) -> str:
        """The instance's name as :func:`multi_az_instances` gives it, from its own catalog row."""
        row = await conn.fetchrow(self.INSTANCE_ID_SQL, timeout=timeout)
        if row is not None and row[0] is not None:
            return multi_az_instance_name(str(row[0]), row[1])
        return str(await conn.fetchval(self.SELF_SQL, timeout=timeout))

    async def is_writer(self, conn: Any, timeout: float) -> bool:
        if await self.is_reader(conn, timeout):
            return False
        source = await conn.fetchval(self.SOURCE_SQL, timeout=timeout)
        me = await conn.fetchval(self.SELF_SQL, timeout=timeout)
        return source is not None and source == me

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        source = await conn.fetchval(self.SOURCE_SQL, timeout=timeout)
        rows = await conn.fetch(self.TOPOLOGY_SQL, timeout=timeout)
        return multi_az_instances(rows, lambda dbi: source is not None and dbi == source, build)


DIALECTS: dict[str, type[Dialect]] = {
    "aurora-pg": AuroraPgDialect,
    "multi-az-pg": MultiAzPgDialect,
    "rds-pg": RdsPgDialect,
    "pg": Dialect,
}


async def detect_dialect(conn: Any, timeout: float) -> Dialect:
    """Probe the most specific dialect first; plain PostgreSQL is the fallback."""
    for dialect in (AuroraPgDialect(), MultiAzPgDialect(), RdsPgDialect()):
        if await dialect.detect(conn, timeout):
            return dialect
    return Dialect()


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


def host_builder(pattern: HostPattern | None, initial_host: str, initial_port: int) -> HostBuilder:
    """How instance ids become addresses: the configured pattern, else the RDS cluster's domain, else
    (Multi-AZ only) the endpoint the catalog reports; ``LookupError`` when none of them applies.

    A Multi-AZ endpoint that is an IP address is used as listed (with the row's port): it is an address
    already, and the instance it names has no id to put in a pattern."""
    template = pattern.template if pattern is not None else classify_host(initial_host).instance_template
    port = pattern.port if pattern is not None and pattern.port is not None else initial_port

    def build(instance_id: str, endpoint: str | None, row_port: int | None) -> tuple[str, int]:
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


# SQLSTATEs that say a catalog object the probe asks about does not exist on this server: the one answer
# that means "not this dialect" (aurora_replica_status() on RDS or community PostgreSQL: 42883; the
# rds_tools schema where the extension is not installed: 3F000; a name cast to regproc or regclass:
# 42704; a relation or column of a catalog of another shape: 42P01, 42703)
NOT_THIS_DIALECT_SQLSTATES = frozenset({"42883", "42P01", "3F000", "42704", "42703"})
DETECTION_NOTE = (
    "aurora_async: raised by a dialect detection query, so the cluster's dialect is unknown and the "
    "connect failed (the next one detects again); if the user may not read the catalog, grant it, or set "
    "wrapper_dialect to skip detection"
)


async def _probe(conn: Any, query: str, timeout: float) -> asyncpg.Record | None:
    """Run a detection query: its first row, or None when the catalog object it asks about does not
    exist ("not this dialect"). Any other error (a privilege the user lacks, a statement timeout, a
    cancelled query, a lost connection) says nothing about the dialect: it propagates, the same
    exception with a note saying where it came from."""
    try:
        row: asyncpg.Record | None = await conn.fetchrow(query, timeout=timeout)
        return row
    except asyncpg.PostgresError as exc:
        if exc.sqlstate in NOT_THIS_DIALECT_SQLSTATES:
            return None
        if not isinstance(exc, asyncpg.PostgresConnectionError):
            exc.add_note(DETECTION_NOTE)
        raise
