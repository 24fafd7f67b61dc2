"""Database dialects for MySQL: Aurora MySQL, RDS Multi-AZ DB clusters, RDS MySQL and plain MySQL.

The SQL is what the AWS drivers send (verbatim where they have it), so it runs the same against real
clusters and against ``aurora_async.testing``'s simulator.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiomysql
import pymysql
from pymysql.constants import ER

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

log = logging.getLogger("aurora_async.topology")


async def fetch_table(conn: Any, query: str, timeout: float) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of ``query`` on an aiomysql connection, within ``timeout`` seconds (a
    timeout closes the connection: aiomysql cannot leave a reply half-read).

    The query leaves no trace the application could see: the connection's last result
    (``insert_id()``, ``affected_rows()``) and server status (``get_transaction_status()``,
    ``get_autocommit()``) are put back as they were, so a connection that the library probed (its role
    checked at connect, its instance identified) reads as aiomysql's own would, without a round trip.
    """
    seen = (conn._result, conn._affected_rows, conn.server_status)
    try:
        async with asyncio.timeout(timeout):
            in_transaction = conn.get_transaction_status()
            cursor = await conn.cursor(aiomysql.Cursor)  # tuples, whatever the connection's default
            try:
                await cursor.execute(query)
                names = [d[0] for d in cursor.description or ()]
                rows = list(await cursor.fetchall() or ())
            finally:
                await cursor.close()
            if not in_transaction and conn.get_transaction_status():
                # autocommit off (aiomysql's default): the query opened a transaction, whose snapshot
                # would hide every later topology change from this connection and leave the
                # application's connection "in a transaction" it never began
                await conn.rollback()
            return names, rows
    finally:
        conn._result, conn._affected_rows, conn.server_status = seen


async def fetch_rows(conn: Any, query: str, timeout: float) -> list[tuple[Any, ...]]:
    return (await fetch_table(conn, query, timeout))[1]


# server errors that say a catalog object the probe asks about does not exist on this server: the one
# answer that means "not this dialect". Privileges (1142, 1227, ...), statement timeouts (3024, 1969),
# killed queries and lost connections say nothing about the dialect.
NOT_THIS_DIALECT_ERRNOS = frozenset(
    {
        ER.NO_SUCH_TABLE,  # 1146: mysql.rds_topology on Aurora MySQL, community MySQL, MariaDB
        ER.UNKNOWN_TABLE,  # 1109: "Unknown table ... in information_schema"
        ER.BAD_DB_ERROR,  # 1049: unknown database (schema)
        ER.SP_DOES_NOT_EXIST,  # 1305: no such function or procedure
        ER.UNKNOWN_SYSTEM_VARIABLE,  # 1193: @@aurora_version and friends elsewhere
        ER.BAD_FIELD_ERROR,  # 1054: a catalog table of another shape
    }
)


async def _probe(
    conn: Any, query: str, timeout: float, *, denied_means_absent: bool = False
) -> tuple[Any, ...] | None:
    """First row of a detection query, or None when the catalog object it asks about does not exist
    ("not this dialect"). Any other error (a privilege the user lacks, a statement timeout, a killed
    query, a lost connection) says nothing about the dialect: it propagates, the same exception (with a
    note saying where a server's error came from).

    ``denied_means_absent``: the query reads a table of the ``mysql`` schema. MySQL answers a user who
    has no privilege there "SELECT command denied" (1142) whether the table exists or not, so that
    answer cannot tell a missing table from an unreadable one: it is taken as "not this dialect", with a
    warning saying how to make the table readable."""
    try:
        rows = await fetch_rows(conn, query, timeout)
    except pymysql.err.MySQLError as exc:
        errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if errno in NOT_THIS_DIALECT_ERRNOS:
            return None
        if denied_means_absent and errno == ER.TABLEACCESS_DENIED_ERROR:
            log.warning(
                "dialect detection: %s is not readable by this user (%s), which MySQL also answers for "
                "a table that does not exist; taken as not this dialect. On an RDS Multi-AZ DB cluster, "
                "GRANT SELECT ON mysql.rds_topology TO the user, or set wrapper_dialect",
                query,
                exc.args[1] if len(exc.args) > 1 else errno,
            )
            return None
        if errno is not None and not 2000 <= errno < 3000:  # a server's error (2000-2999: the client's)
            exc.add_note(DETECTION_NOTE)
        raise
    return rows[0] if rows else None


async def _variable(conn: Any, name: str, timeout: float) -> str | None:
    row = await _probe(conn, f"SHOW VARIABLES LIKE '{name}'", timeout)
    return None if row is None or row[1] is None else str(row[1])


class MySqlDialect(Dialect):
    """Plain MySQL (or MariaDB): no topology; the instance is identified by host name and port."""

    code = "mysql"
    IS_READER_SQL = "SELECT @@read_only"

    async def detect(self, conn: Any, timeout: float) -> bool:
        comment = await _variable(conn, "version_comment", timeout)
        return comment is not None and "mysql" in comment.lower()

    async def is_reader(self, conn: Any, timeout: float) -> bool:
        rows = await fetch_rows(conn, self.IS_READER_SQL, timeout)
        return bool(int(rows[0][0]))

    async def instance_id(self, conn: Any, timeout: float) -> str:
        rows = await fetch_rows(conn, "SELECT CONCAT(@@hostname, ':', @@port)", timeout)
        return str(rows[0][0])

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        return None


class RdsMySqlDialect(MySqlDialect):
    """A single RDS for MySQL instance."""

    code = "rds-mysql"

    async def detect(self, conn: Any, timeout: float) -> bool:
        comment = await _variable(conn, "version_comment", timeout)
        if comment is None or comment.lower() != "source distribution":
            return False
        return bool(await _variable(conn, "report_host", timeout))


class AuroraMySqlDialect(MySqlDialect):
    code = "aurora-mysql"
    has_topology = True
    ids_only = True
    TOPOLOGY_SQL = (
        "SELECT SERVER_ID, CASE WHEN SESSION_ID = 'MASTER_SESSION_ID' THEN TRUE ELSE FALSE END, CPU, "
        "REPLICA_LAG_IN_MILLISECONDS, LAST_UPDATE_TIMESTAMP FROM information_schema.replica_host_status "
        "WHERE time_to_sec(timediff(now(), LAST_UPDATE_TIMESTAMP)) <= 300 OR SESSION_ID = "
        "'MASTER_SESSION_ID' "
    )
    INSTANCE_ID_SQL = "SELECT @@aurora_server_id, @@aurora_server_id"
    IS_READER_SQL = "SELECT @@innodb_read_only"
    IDENTIFY_SQL = "SELECT @@aurora_server_id, @@innodb_read_only"  # both, in one round trip
    WRITER_ID_SQL = (
        "SELECT SERVER_ID FROM information_schema.replica_host_status WHERE SESSION_ID = "
        "'MASTER_SESSION_ID' AND SERVER_ID = @@aurora_server_id"
    )

    BLUE_GREEN_SQL = "SELECT version, endpoint, port, role, status FROM mysql.rds_topology"

    async def detect(self, conn: Any, timeout: float) -> bool:
        return await _probe(conn, "SHOW VARIABLES LIKE 'aurora_version'", timeout) is not None

    async def blue_green(self, conn: Any, timeout: float) -> list[BlueGreenHost] | None:
        # the table exists while a deployment does; a user without SELECT on it cannot tell
        try:
            rows = await fetch_rows(conn, self.BLUE_GREEN_SQL, timeout)
        except pymysql.err.MySQLError as exc:
            errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if errno in (ER.NO_SUCH_TABLE, ER.TABLEACCESS_DENIED_ERROR, ER.BAD_FIELD_ERROR):
                return None
            raise
        return [BlueGreenHost(str(r[1]), int(r[2]), str(r[3]), str(r[4])) for r in rows]

    async def instance_id(self, conn: Any, timeout: float) -> str:
        rows = await fetch_rows(conn, self.INSTANCE_ID_SQL, timeout)
        return str(rows[0][0])

    async def identify(self, conn: Any, timeout: float) -> tuple[str, bool]:
        rows = await fetch_rows(conn, self.IDENTIFY_SQL, timeout)
        return str(rows[0][0]), bool(int(rows[0][1]))

    async def is_writer(self, conn: Any, timeout: float) -> bool:
        if await self.is_reader(conn, timeout):
            return False
        return bool(await fetch_rows(conn, self.WRITER_ID_SQL, timeout))

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        return aurora_instances(await fetch_rows(conn, self.TOPOLOGY_SQL, timeout), build)


class GlobalAuroraMySqlDialect(AuroraMySqlDialect):
    """An Aurora Global Database (MySQL): the topology is every region's instances, from
    ``information_schema.aurora_global_db_instance_status``, the writer the global one
    (``MASTER_SESSION_ID``); instance hosts come from ``global_cluster_instance_host_patterns`` by
    region."""

    code = "global-aurora-mysql"
    TOPOLOGY_SQL = (
        "SELECT SERVER_ID, CASE WHEN SESSION_ID = 'MASTER_SESSION_ID' THEN TRUE ELSE FALSE END, "
        "VISIBILITY_LAG_IN_MSEC, AWS_REGION FROM information_schema.aurora_global_db_instance_status "
    )
    WRITER_ID_SQL = (
        "SELECT SERVER_ID FROM information_schema.aurora_global_db_instance_status WHERE SESSION_ID = "
        "'MASTER_SESSION_ID' AND SERVER_ID = @@aurora_server_id"
    )

    async def detect(self, conn: Any, timeout: float) -> bool:
        return await super().detect(conn, timeout) and await self.spans_regions(conn, timeout)

    async def spans_regions(self, conn: Any, timeout: float) -> bool:
        """Whether the Aurora cluster behind ``conn`` is part of a Global Database of several regions
        (each region counted once, a row naming none not at all)."""
        row = await _probe(
            conn, "SELECT COUNT(DISTINCT AWS_REGION) FROM information_schema.aurora_global_db_status", timeout
        )
        return row is not None and int(row[0]) > 1

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        rows = await fetch_rows(conn, self.TOPOLOGY_SQL, timeout)
        return global_instances(rows, build)


class MultiAzMySqlDialect(MySqlDialect):
    """RDS Multi-AZ DB clusters for MySQL: ``mysql.rds_topology`` lists the instances; an instance
    that replicates from no one is the writer, a reader's ``SHOW REPLICA STATUS`` names it."""

    code = "multi-az-mysql"
    has_topology = True
    TOPOLOGY_SQL = "SELECT id, endpoint, port FROM mysql.rds_topology"
    INSTANCE_ID_SQL = "SELECT id, endpoint, port FROM mysql.rds_topology WHERE id = @@server_id"
    SOURCE_COLUMNS = ("Source_Server_Id", "Master_Server_Id")

    async def detect(self, conn: Any, timeout: float) -> bool:
        # report_host first: it needs no privilege, and where it is empty (not RDS) the catalog table,
        # which only RDS has, is not asked for at all
        if not await _variable(conn, "report_host", timeout):
            return False
        return await _probe(conn, self.TOPOLOGY_SQL, timeout, denied_means_absent=True) is not None

    async def instance_id(self, conn: Any, timeout: float) -> str:
        """The instance's name as :func:`multi_az_instances` gives it, from its own catalog row."""
        rows = await fetch_rows(conn, self.INSTANCE_ID_SQL, timeout)
        if rows and rows[0][1]:
            return multi_az_instance_name(str(rows[0][1]), rows[0][2])
        return str((await fetch_rows(conn, "SELECT @@server_id", timeout))[0][0])

    async def _source(self, conn: Any, timeout: float) -> int | None:
        """The server id this instance replicates from; None when it replicates from no one."""
        names, rows = await fetch_table(conn, "SHOW REPLICA STATUS", timeout)
        if not rows:
            return None
        for column in self.SOURCE_COLUMNS:
            if column in names:
                value = rows[0][names.index(column)]
                return int(value) if value is not None else None
        return None

    async def is_writer(self, conn: Any, timeout: float) -> bool:
        if await self.is_reader(conn, timeout):
            return False
        return await self._source(conn, timeout) is None

    async def topology(self, conn: Any, timeout: float, build: HostBuilder) -> list[Instance] | None:
        source = await self._source(conn, timeout)
        if source is None:
            source = int((await fetch_rows(conn, "SELECT @@server_id", timeout))[0][0])
        rows = await fetch_rows(conn, self.TOPOLOGY_SQL, timeout)
        return multi_az_instances(rows, lambda server_id: int(server_id) == source, build)


DIALECTS: dict[str, type[Dialect]] = {
    "aurora-mysql": AuroraMySqlDialect,
    "global-aurora-mysql": GlobalAuroraMySqlDialect,
    "multi-az-mysql": MultiAzMySqlDialect,
    "rds-mysql": RdsMySqlDialect,
    "mysql": MySqlDialect,
}


async def detect_dialect(conn: Any, timeout: float) -> Dialect:
    """Probe the most specific dialect first; plain MySQL is the fallback (MariaDB included)."""
    aurora = AuroraMySqlDialect()
    if await aurora.detect(conn, timeout):
        spanning = GlobalAuroraMySqlDialect()
        return spanning if await spanning.spans_regions(conn, timeout) else aurora
    for dialect in (MultiAzMySqlDialect(), RdsMySqlDialect()):
        if await dialect.detect(conn, timeout):
            return dialect
    return MySqlDialect()
