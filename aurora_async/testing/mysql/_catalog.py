"""Aurora MySQL and RDS Multi-AZ catalog objects, faked on MariaDB, and the one query rewrite that
reaches them.

What every instance gets (written into its data directory before it first starts, so nothing of it is
in the binary log):

- ``topology="aurora"``: the table ``aurora_sim.instances`` (the topology; the control plane rewrites it
  on the writer and it replicates; an Aria table, so that like ``information_schema`` it is read without
  a transaction's snapshot) and the view ``aurora_sim.replica_host_status`` with the columns of
  Aurora's ``information_schema.replica_host_status``. ``LAST_UPDATE_TIMESTAMP`` is ``NOW()`` for a
  running instance and the moment it went down for a stopped one; ``SESSION_ID`` is
  ``MASTER_SESSION_ID`` for the writer. Every row names its instance's region: the view lists the
  asking instance's region only (an Aurora Global Database's other regions are clusters of their own),
  and the views ``aurora_sim.global_db_instance_status`` and ``aurora_sim.global_db_status`` have the
  columns of Aurora's ``information_schema.aurora_global_db_instance_status`` and
  ``aurora_global_db_status`` over every region. (A view cannot read ``@@server_id``: the function
  ``aurora_sim.local_region()`` does; the views run as their definer, and every user the simulator
  makes may execute it, which reading the views' columns in ``information_schema`` asks.)
- ``topology="multi-az"``: ``mysql.rds_topology(id, endpoint, port)`` as on RDS Multi-AZ DB clusters
  (``id`` is the instance's ``server_id``, ``port`` the simulator's client port).
- every mode: ``server_id`` = the instance id, ``report_host`` = its endpoint name, replicas run with
  ``read_only=ON``; the DSN user is an ordinary user (``ALL`` on its database, ``SELECT`` on the objects
  above, ``SLAVE MONITOR`` for ``SHOW REPLICA STATUS``).

MariaDB cannot host objects in ``information_schema`` nor variables named ``@@aurora_*``, and its
``innodb_read_only`` cannot change at run time. So for ``topology="aurora"`` (and only then, and only
for MySQL) the fault proxy rewrites the SQL text of client ``COM_QUERY`` and ``COM_STMT_PREPARE``
packets on their way to the server; matching ignores case, and string literals and comments are left
alone. These are all the substitutions (the client sends -> the server runs):

- ``information_schema.replica_host_status`` (also back-quoted) -> ``aurora_sim.replica_host_status``,
  and likewise ``information_schema.aurora_global_db_instance_status`` and
  ``information_schema.aurora_global_db_status`` -> ``aurora_sim.global_db_instance_status`` and
  ``aurora_sim.global_db_status``;
- ``@@aurora_server_id`` -> ``'12'``, the quoted id of the instance that connection reached;
- ``@@aurora_version`` and ``AURORA_VERSION()`` -> ``'3.05.2'``;
- ``@@innodb_read_only`` -> ``@@global.read_only``;
- the whole statement ``SHOW [GLOBAL|SESSION] VARIABLES LIKE 'aurora_version'`` ->
  ``SELECT 'aurora_version' AS Variable_name, '3.05.2' AS Value``.

The ``@@global.`` and ``@@session.`` forms of the variables are rewritten too. Every other byte passes
unchanged, as do packets of 16 MiB or more and connections that use TLS or compression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .._catalog import TopologyMode, TopologyRow

AURORA_MYSQL_VERSION = "3.05.2"
CATALOG_SCHEMA = "aurora_sim"
REPLICATION_USER = "aurora_sim_repl"


def sql_string(text: str) -> str:
    """``text`` as a MariaDB string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


# -- the rewrite (runs in the fault proxy process) --------------------------------------------------

_TRIGGER = re.compile(rb"aurora_|replica_host_status|innodb_read_only", re.IGNORECASE)
_GLOBAL_TABLE = re.compile(
    rb"`?\binformation_schema`?\s*\.\s*`?aurora_global_db_(instance_status|status)\b`?", re.IGNORECASE
)
_SHOW_VERSION = re.compile(
    rb"\A\s*SHOW\s+(?:GLOBAL\s+|SESSION\s+)?VARIABLES\s+LIKE\s+(['\"])aurora_version\1\s*;?\s*\Z",
    re.IGNORECASE,
)
# quoted strings and comments, which are never rewritten
_OPAQUE = re.compile(rb"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|/\*.*?\*/|(?:--[ \t]|\#)[^\n]*""", re.DOTALL)
_SCOPE = rb"@@(?:global\.|session\.)?"
_TABLE = re.compile(rb"`?\binformation_schema`?\s*\.\s*`?replica_host_status\b`?", re.IGNORECASE)
_SERVER_ID = re.compile(_SCOPE + rb"aurora_server_id\b", re.IGNORECASE)
_VERSION = re.compile(_SCOPE + rb"aurora_version\b|(?<![\w.@`$])aurora_version\s*\(\s*\)", re.IGNORECASE)
_READ_ONLY = re.compile(_SCOPE + rb"innodb_read_only\b", re.IGNORECASE)


def rewrite_aurora_sql(sql: bytes, instance_id: str) -> bytes:
    """The SQL the server runs for ``sql`` sent to instance ``instance_id`` (see the module docstring).

    Returns ``sql`` itself (the same object) when nothing is substituted."""
    if not _TRIGGER.search(sql):
        return sql
    version = sql_string(AURORA_MYSQL_VERSION).encode()
    if _SHOW_VERSION.match(sql):
        return b"SELECT 'aurora_version' AS Variable_name, " + version + b" AS Value"
    server_id = sql_string(instance_id).encode()
    parts: list[bytes] = []
    start = 0
    for match in _OPAQUE.finditer(sql):
        parts.append(_rewrite_code(sql[start : match.start()], server_id, version))
        parts.append(match.group())
        start = match.end()
    parts.append(_rewrite_code(sql[start:], server_id, version))
    rewritten = b"".join(parts)
    return sql if rewritten == sql else rewritten


def _rewrite_code(code: bytes, server_id: bytes, version: bytes) -> bytes:
    code = _TABLE.sub(CATALOG_SCHEMA.encode() + b".replica_host_status", code)
    code = _GLOBAL_TABLE.sub(lambda m: CATALOG_SCHEMA.encode() + b".global_db_" + m.group(1).lower(), code)
    code = _SERVER_ID.sub(lambda _: server_id, code)
    code = _VERSION.sub(lambda _: version, code)
    return _READ_ONLY.sub(b"@@global.read_only", code)


def aurora_rewriter(instance_id: str) -> Callable[[bytes], bytes]:
    """The rewrite for the connections of one instance."""

    def rewrite(sql: bytes) -> bytes:
        return rewrite_aurora_sql(sql, instance_id)

    return rewrite


# -- the catalog (installed by the simulator) ------------------------------------------------------


def account(user: str, host: str = "%") -> str:
    return f"{sql_string(user)}@{sql_string(host)}"


_ROOT = "DEFINER = 'root'@'localhost'"
_DEFINER = f"{_ROOT} SQL SECURITY DEFINER"
_AURORA_TABLES = f"""
CREATE DATABASE {CATALOG_SCHEMA};
CREATE TABLE {CATALOG_SCHEMA}.instances (
  server_id VARCHAR(100) NOT NULL PRIMARY KEY,
  session_id VARCHAR(100) NOT NULL,
  cpu DOUBLE NOT NULL,
  replica_lag_ms DOUBLE NOT NULL,
  frozen_at TIMESTAMP(6) NULL,
  region VARCHAR(64) NULL
) ENGINE=Aria COMMENT='internal to the aurora_async local Aurora simulator';
CREATE {_ROOT} FUNCTION {CATALOG_SCHEMA}.local_region() RETURNS VARCHAR(64) READS SQL DATA
  SQL SECURITY DEFINER RETURN (SELECT region FROM {CATALOG_SCHEMA}.instances WHERE server_id = @@server_id);
CREATE {_DEFINER} VIEW {CATALOG_SCHEMA}.replica_host_status AS SELECT
  server_id AS SERVER_ID, session_id AS SESSION_ID, 0 AS IOPS, 0 AS READ_IOS, 0 AS PENDING_READ_IOS,
  cpu AS CPU, NULL AS DURABLE_LSN, NULL AS ACTIVE_LSN, 0 AS LAST_TRANSPORT_ERROR,
  NULL AS LAST_ERROR_TIMESTAMP, COALESCE(frozen_at, NOW(6)) AS LAST_UPDATE_TIMESTAMP,
  CAST(replica_lag_ms * 1000 AS UNSIGNED) AS MASTER_SLAVE_LATENCY_IN_MICROSECONDS,
  replica_lag_ms AS REPLICA_LAG_IN_MILLISECONDS, 0.0 AS LOG_STREAM_SPEED_IN_KiB_PER_SECOND,
  NULL AS LOG_BUFFER_SEQUENCE_NUMBER, 1 AS IS_CURRENT, NULL AS OLDEST_READ_VIEW_TRX_ID,
  NULL AS OLDEST_READ_VIEW_LSN, NULL AS HIGHEST_LSN_RECEIVED, NULL AS CURRENT_READ_POINT,
  0 AS CURRENT_REPLAY_LATENCY_IN_MICROSECONDS, 0 AS AVERAGE_REPLAY_LATENCY_IN_MICROSECONDS,
  0 AS MAX_REPLAY_LATENCY_IN_MICROSECONDS
FROM {CATALOG_SCHEMA}.instances
-- this cluster's instances: a Global Database's other regions have clusters of their own
WHERE region IS NULL OR {CATALOG_SCHEMA}.local_region() IS NULL OR region = {CATALOG_SCHEMA}.local_region();
CREATE {_DEFINER} VIEW {CATALOG_SCHEMA}.global_db_instance_status AS SELECT
  server_id AS SERVER_ID, session_id AS SESSION_ID, region AS AWS_REGION, NULL AS DURABLE_LSN,
  NULL AS HIGHEST_LSN_RCVD, NULL AS OLDEST_READ_VIEW_TRX_ID, NULL AS OLDEST_READ_VIEW_LSN,
  CASE WHEN session_id = 'MASTER_SESSION_ID' THEN NULL ELSE replica_lag_ms END AS VISIBILITY_LAG_IN_MSEC
FROM {CATALOG_SCHEMA}.instances WHERE region IS NOT NULL;
CREATE {_DEFINER} VIEW {CATALOG_SCHEMA}.global_db_status AS SELECT
  region AS AWS_REGION, NULL AS HIGHEST_LSN_WRITTEN,
  CASE WHEN MAX(session_id = 'MASTER_SESSION_ID') THEN NULL ELSE 10 END AS DURABILITY_LAG_IN_MILLISECONDS,
  CASE WHEN MAX(session_id = 'MASTER_SESSION_ID') THEN NULL ELSE 10 END AS RPO_LAG_IN_MILLISECONDS,
  NOW(6) AS LAST_LAG_CALCULATION_TIME, NULL AS OLDEST_READ_VIEW_TRX_ID
FROM {CATALOG_SCHEMA}.instances WHERE region IS NOT NULL GROUP BY region;
"""

_MULTI_AZ_TABLES = """
CREATE TABLE mysql.rds_topology (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  endpoint VARCHAR(255) NOT NULL,
  port INT NOT NULL
) ENGINE=InnoDB;
"""


def catalog_objects(mode: TopologyMode) -> list[str]:
    """What a client may read besides its database (to grant SELECT on)."""
    if mode == "aurora":
        return [f"{CATALOG_SCHEMA}.*"]
    if mode == "multi-az":
        return ["mysql.rds_topology"]
    return []


def grants_sql(mode: TopologyMode, user: str, database: str) -> list[str]:
    """An ordinary application user: its database, the catalog, ``SHOW REPLICA STATUS``; no SUPER,
    no READ ONLY ADMIN, so ``read_only`` applies to it."""
    who = account(user)
    statements = [
        f"GRANT ALL ON `{database}`.* TO {who}",
        f"GRANT SLAVE MONITOR ON *.* TO {who}",
    ]
    statements += [f"GRANT SELECT ON {obj} TO {who}" for obj in catalog_objects(mode)]
    if mode == "aurora":  # (what reading the views' definitions asks)
        statements.append(f"GRANT EXECUTE ON FUNCTION {CATALOG_SCHEMA}.local_region TO {who}")
    return statements


def bootstrap_sql(
    mode: TopologyMode, rows: Sequence[TopologyRow], *, user: str, password: str | None, database: str
) -> str:
    """The SQL run once by ``mariadb-install-db`` into the template data directory."""
    statements = [
        "FLUSH PRIVILEGES",  # bootstrap runs without grant tables: load them, or CREATE USER fails
        f"CREATE USER {account(REPLICATION_USER, '127.%')}",
        f"GRANT REPLICATION SLAVE ON *.* TO {account(REPLICATION_USER, '127.%')}",
        f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4",
    ]
    script = "\n".join(s + ";" for s in statements)
    if mode == "aurora":
        script += _AURORA_TABLES
    elif mode == "multi-az":
        script += _MULTI_AZ_TABLES
    script += "\n".join(s + ";" for s in topology_sql(mode, rows)) + "\n"
    if user != "root":
        identified = f" IDENTIFIED BY {sql_string(password)}" if password is not None else ""
        script += f"CREATE USER {account(user)}{identified};\n"
        script += "\n".join(s + ";" for s in grants_sql(mode, user, database)) + "\n"
    return script


def topology_sql(mode: TopologyMode, rows: Sequence[TopologyRow]) -> list[str]:
    """Statements that replace the published topology on the writer (they replicate).

    Aurora's status table is no InnoDB table: a reader in an open transaction sees every update, as
    it would in ``information_schema`` (``aurora_sim.instances`` is an Aria table, read without a
    snapshot). One ``REPLACE`` updates every row at once, so no reader ever sees a partial topology."""
    ids = ", ".join(sql_string(r.instance_id) for r in rows) or "NULL"
    if mode == "aurora":
        values = ", ".join(
            f"({sql_string(r.instance_id)}, {sql_string(r.session_id)}, {r.cpu!r}, "
            f"{float(r.replica_lag_ms or 0.0)!r}, "
            f"{'NULL' if r.frozen_at is None else f'FROM_UNIXTIME({r.frozen_at:.6f})'}, "
            f"{'NULL' if r.region is None else sql_string(r.region)})"
            for r in rows
        )
        replace = [f"REPLACE INTO {CATALOG_SCHEMA}.instances VALUES {values}"] if rows else []
        return [
            *replace,
            f"DELETE FROM {CATALOG_SCHEMA}.instances WHERE server_id NOT IN ({ids})",
        ]
    if mode == "multi-az":
        values = ", ".join(f"({int(r.instance_id)}, {sql_string(r.endpoint)}, {int(r.port)})" for r in rows)
        replace = [f"REPLACE INTO mysql.rds_topology VALUES {values}"] if rows else []
        return [
            "START TRANSACTION",
            *replace,
            f"DELETE FROM mysql.rds_topology WHERE id NOT IN ({ids})",
            "COMMIT",
        ]
    return []
