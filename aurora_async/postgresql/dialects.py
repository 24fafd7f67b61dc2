"""PostgreSQL dialects: how to ask each kind of PostgreSQL cluster who is who.

The SQL is what the AWS drivers send to Aurora and RDS (verbatim where they have it), so it runs the
same against real clusters and against ``aurora_async.testing``'s simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from .._blue_green import BlueGreenHost
from .._dialect import (
    DETECTION_NOTE,
    Dialect,
    HostBuilder,
    aurora_instances,
    global_instances,
    multi_az_instance_name,
    multi_az_instances,
)
from .._topology import Instance
from .._version import __version__

IS_READER_SQL = "SELECT pg_catalog.pg_is_in_recovery()"
# an instance whose server configuration makes every transaction read-only takes no writes: a blue
# environment after a blue/green switchover. (A session's own default, set by its client or by SET, is
# the application's choice, not the instance's role.) Asked in two steps: the value comes with the
# role check; its source, from pg_settings (a view of every setting, costly to plan), only when it is on.
READ_ONLY_DEFAULT = "pg_catalog.current_setting('default_transaction_read_only') OPERATOR(pg_catalog.=) 'on'"
WRITES_BLOCKED_SQL = (
    "SELECT source OPERATOR(pg_catalog.=) 'configuration file' FROM pg_catalog.pg_settings "
    "WHERE name OPERATOR(pg_catalog.=) 'default_transaction_read_only'"
)


class PgDialect(Dialect):
    """Plain PostgreSQL: no topology; the instance is identified by its address."""

    code = "pg"

    async def detect(self, conn: Any, timeout: float) -> bool:
        return await _probe(conn, "SELECT 1 FROM pg_catalog.pg_proc LIMIT 1", timeout) is not None

    async def is_reader(self, conn: Any, timeout: float) -> bool:
        return bool(await _fetchval(conn, IS_READER_SQL, timeout))

    async def instance_id(self, conn: Any, timeout: float) -> str:
        row = await _fetchrow(
            conn, "SELECT pg_catalog.inet_server_addr()::text, pg_catalog.inet_server_port()", timeout
        )
        return f"{row[0]}:{row[1]}" if row is not None and row[0] is not None else "local"


class RdsPgDialect(PgDialect):
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


class AuroraPgDialect(PgDialect):
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
    # read-only: a replica, or an instance that takes no writes (blue after a blue/green switchover)
    IS_READER_SQL = f"SELECT pg_catalog.pg_is_in_recovery(), {READ_ONLY_DEFAULT}"
    # both questions a new connection asks, in one round trip (a second only when writes may be blocked)
    IDENTIFY_SQL = (
        "SELECT pg_catalog.aurora_db_instance_identifier(), pg_catalog.pg_is_in_recovery(), "
        f"{READ_ONLY_DEFAULT}"
    )
    BLUE_GREEN_SQL = (
        "SELECT version, endpoint, port, role, status FROM "
        f"pg_catalog.get_blue_green_fast_switchover_metadata('aurora_async-{__version__}')"
    )
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
        return str(await _fetchval(conn, self.INSTANCE_ID_SQL, timeout))

    async def is_reader(self, conn: Any, timeout: float) -> bool:
        row = await _fetchrow(conn, self.IS_READER_SQL, timeout)
        assert row is not None
        return await _read_only(conn, bool(row[0]), bool(row[1]), timeout)

    async def blue_green(self, conn: Any, timeout: float) -> list[BlueGreenHost] | None:
        try:
            rows = await _fetch(conn, self.BLUE_GREEN_SQL, timeout)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate in NOT_THIS_DIALECT_SQLSTATES:  # an Aurora version without it
                return None
            raise
        return [BlueGreenHost(str(r[1]), int(r[2]), str(r[3]), str(r[4])) for r in rows]

    async def identify(self, conn: Any, timeout: float) -> tuple[str, bool]:
        row = await _fetchrow(conn, self.IDENTIFY_SQL, timeout)
        assert row is not None
        return str(row[0]), await _read_only(conn, bool(row[1]), bool(row[2]), timeout)

    async def is_writer(self, conn: Any, timeout: float) -> bool:
        # the instance must accept writes and the catalog must name it as the writer; the cheap
        # recovery check first, since a failover's writer search asks replicas this many times
        if await self.is_reader(conn, timeout):
            return False
        return await _fetchval(conn, self.WRITER_ID_SQL, timeout) is not None

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        rows = await _fetch(conn, self.TOPOLOGY_SQL, timeout)
        return aurora_instances([tuple(r) for r in rows], build)


class GlobalAuroraPgDialect(AuroraPgDialect):
    """An Aurora Global Database (PostgreSQL): the topology is every region's instances, from
    ``aurora_global_db_instance_status()``, the writer the global one (``MASTER_SESSION_ID``); instance
    hosts come from ``global_cluster_instance_host_patterns`` by region."""

    code = "global-aurora-pg"
    TOPOLOGY_SQL = (
        "SELECT SERVER_ID, CASE WHEN SESSION_ID OPERATOR(pg_catalog.=) 'MASTER_SESSION_ID' THEN TRUE ELSE "
        "FALSE END, VISIBILITY_LAG_IN_MSEC, AWS_REGION FROM pg_catalog.aurora_global_db_instance_status()"
    )
    WRITER_ID_SQL = (
        "SELECT SERVER_ID FROM pg_catalog.aurora_global_db_instance_status() WHERE SESSION_ID "
        "OPERATOR(pg_catalog.=) 'MASTER_SESSION_ID' AND SERVER_ID OPERATOR(pg_catalog.=) "
        "pg_catalog.aurora_db_instance_identifier()"
    )

    async def detect(self, conn: Any, timeout: float) -> bool:
        return await super().detect(conn, timeout) and await self.spans_regions(conn, timeout)

    async def spans_regions(self, conn: Any, timeout: float) -> bool:
        """Whether the Aurora cluster behind ``conn`` is part of a Global Database of several regions
        (each region counted once, a row naming none not at all)."""
        row = await _probe(
            conn, "SELECT count(DISTINCT aws_region) FROM pg_catalog.aurora_global_db_status()", timeout
        )
        return row is not None and int(row[0]) > 1

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        rows = await _fetch(conn, self.TOPOLOGY_SQL, timeout)
        return global_instances([tuple(r) for r in rows], build)


class MultiAzPgDialect(PgDialect):
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
        row = await _fetchrow(conn, self.INSTANCE_ID_SQL, timeout)
        if row is not None and row[0] is not None:
            return multi_az_instance_name(str(row[0]), row[1])
        return str(await _fetchval(conn, self.SELF_SQL, timeout))

    async def is_writer(self, conn: Any, timeout: float) -> bool:
        if await self.is_reader(conn, timeout):
            return False
        source = await _fetchval(conn, self.SOURCE_SQL, timeout)
        me = await _fetchval(conn, self.SELF_SQL, timeout)
        return source is not None and source == me

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        source = await _fetchval(conn, self.SOURCE_SQL, timeout)
        rows = await _fetch(conn, self.TOPOLOGY_SQL, timeout)
        return multi_az_instances(rows, lambda dbi: source is not None and dbi == source, build)


DIALECTS: dict[str, type[Dialect]] = {
    "aurora-pg": AuroraPgDialect,
    "global-aurora-pg": GlobalAuroraPgDialect,
    "multi-az-pg": MultiAzPgDialect,
    "rds-pg": RdsPgDialect,
    "pg": PgDialect,
}


async def detect_dialect(conn: Any, timeout: float) -> Dialect:
    """Probe the most specific dialect first; plain PostgreSQL is the fallback."""
    aurora = AuroraPgDialect()
    if await aurora.detect(conn, timeout):
        spanning = GlobalAuroraPgDialect()
        return spanning if await spanning.spans_regions(conn, timeout) else aurora
    for dialect in (MultiAzPgDialect(), RdsPgDialect()):
        if await dialect.detect(conn, timeout):
            return dialect
    return PgDialect()


async def _read_only(conn: Any, in_recovery: bool, read_only_default: bool, timeout: float) -> bool:
    """A replica, or an instance whose configuration blocks writes (see ``WRITES_BLOCKED_SQL``)."""
    if in_recovery:
        return True
    if not read_only_default:
        return False
    return bool(await _fetchval(conn, WRITES_BLOCKED_SQL, timeout))


# SQLSTATEs that say a catalog object the probe asks about does not exist on this server: the one answer
# that means "not this dialect" (aurora_replica_status() on RDS or community PostgreSQL: 42883; the
# rds_tools schema where the extension is not installed: 3F000; a name cast to regproc or regclass:
# 42704; a relation or column of a catalog of another shape: 42P01, 42703)
NOT_THIS_DIALECT_SQLSTATES = frozenset({"42883", "42P01", "3F000", "42704", "42703"})


async def _probe(conn: Any, query: str, timeout: float) -> asyncpg.Record | None:
    """Run a detection query: its first row, or None when the catalog object it asks about does not
    exist ("not this dialect"). Any other error (a privilege the user lacks, a statement timeout, a
    cancelled query, a lost connection) says nothing about the dialect: it propagates, the same
    exception with a note saying where it came from."""
    try:
        return await _fetchrow(conn, query, timeout)
    except asyncpg.PostgresError as exc:
        if exc.sqlstate in NOT_THIS_DIALECT_SQLSTATES:
            return None
        if not isinstance(exc, asyncpg.PostgresConnectionError):
            exc.add_note(DETECTION_NOTE)
        raise


# -- queries that leave no trace ----------------------------------------------------------------------
# Detection, role checks and the first topology query run on the connection the application is about to
# get. Through asyncpg's statement cache they would stay prepared on it (named statements in
# pg_prepared_statements, entries in its cache): a new connection must look as asyncpg's own would.
# Without the cache asyncpg prepares an unnamed statement: on a new connection the same round trips as
# a first cached run (on the topology monitor's own connection, one more per refresh).


async def _fetch(conn: Any, query: str, timeout: float) -> list[Any]:
    with _uncached(conn):
        rows: list[Any] = await conn.fetch(query, timeout=timeout)
    return rows


async def _fetchrow(conn: Any, query: str, timeout: float) -> asyncpg.Record | None:
    with _uncached(conn):
        row: asyncpg.Record | None = await conn.fetchrow(query, timeout=timeout)
    return row


async def _fetchval(conn: Any, query: str, timeout: float) -> Any:
    with _uncached(conn):
        return await conn.fetchval(query, timeout=timeout)


@contextmanager
def _uncached(conn: Any) -> Iterator[None]:
    """asyncpg's statement cache off for the statements run inside (its own switch for
    ``statement_cache_size=0``; a connection without it is left as it is)."""
    enabled = getattr(conn, "_stmt_cache_enabled", None)
    if enabled is None:
        yield
        return
    conn._stmt_cache_enabled = False
    try:
        yield
    finally:
        conn._stmt_cache_enabled = enabled
