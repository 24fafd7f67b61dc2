"""The MySQL (MariaDB) side of a simulated blue/green deployment: binary log replication from the blue
writer to the green writer, as RDS does it for Aurora MySQL, and the database steps of a switchover.

The green cluster is created empty (its own catalog and instances, its writers' transactions in a GTID
domain of their own); what blue holds is copied in: its users with their grants, and a consistent dump
of its databases, whose GTID position green's writer then replicates from. Green's writer logs what it
applies, so green's replicas get blue's changes too. The simulator's own tables (``aurora_sim.*``, the
deployment's ``mysql.rds_topology``) are not replicated: each cluster keeps its own.

``mysql.rds_topology`` is the deployment's metadata, as Aurora MySQL keeps it (``id, endpoint, port,
role, status, version, update_stamp``), created on both clusters with the deployment and readable by
every user that existed then.

A switchover's database steps: blue's writer turns ``read_only`` and its client sessions are ended
(so no transaction begun before commits later), green's writer is awaited until it applied blue's last
transaction (its GTID), replication stops, and green's writer takes writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .._catalog import BlueGreenHost
from .._errors import SimulatorError
from .._process import run_command, wait_until
from ._catalog import CATALOG_SCHEMA, REPLICATION_USER, account, sql_string
from ._cluster import MariaDbCluster, gtid_seq
from ._server import MariaDbServer

Side = Literal["blue", "green"]
METADATA_TABLE = "mysql.rds_topology"
_SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys", CATALOG_SCHEMA)
_SYSTEM_USERS = ("root", "mariadb.sys", "PUBLIC", REPLICATION_USER, "")
_SYSTEM_THREADS = ("root", "system user", "event_scheduler", REPLICATION_USER)
_CREATE_METADATA = (
    f"CREATE TABLE IF NOT EXISTS {METADATA_TABLE} (id VARCHAR(100) NOT NULL PRIMARY KEY, "
    "endpoint VARCHAR(255) NOT NULL, port INT NOT NULL, role VARCHAR(64) NOT NULL, "
    "status VARCHAR(64) NOT NULL, version VARCHAR(16) NOT NULL, update_stamp DATETIME(6) NOT NULL) "
    "ENGINE=Aria COMMENT='the blue/green deployment, as the aurora_async simulator publishes it'"
)
_SYNC_TIMEOUT = 60.0


class MariaDbBlueGreen:
    """Replication from ``blue``'s writer to ``green``'s writer, and the database steps of a switchover."""

    def __init__(self, blue: MariaDbCluster, green: MariaDbCluster) -> None:
        if blue.gtid_domain == green.gtid_domain:
            raise SimulatorError("a green cluster needs a GTID domain of its own")
        self.blue = blue
        self.green = green
        self._blue_writer: MariaDbServer | None = None
        self._green_writer: MariaDbServer | None = None

    # -- set-up ----------------------------------------------------------------------------------

    async def replicate(self, blue_writer: str, green_writer: str) -> None:
        source, target = self.blue.server(blue_writer), self.green.server(green_writer)
        self._blue_writer, self._green_writer = source, target
        target.read_only = True
        await target.execute("SET GLOBAL read_only = ON")
        await source.execute(_CREATE_METADATA)
        await target.execute(_CREATE_METADATA)
        await self._copy_users(source, target)
        await self._load_databases(source, target)
        await target.execute(
            "STOP SLAVE",
            f"SET GLOBAL replicate_wild_ignore_table = '{CATALOG_SCHEMA}.%,{METADATA_TABLE}'",
            f"CHANGE MASTER TO MASTER_HOST = {sql_string(source.host)}, MASTER_PORT = {source.port}, "
            f"MASTER_USER = {sql_string(REPLICATION_USER)}, MASTER_PASSWORD = '', "
            "MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
            "START SLAVE",
        )
        await self._wait_applied(source, target, _SYNC_TIMEOUT)

    async def _copy_users(self, source: MariaDbServer, target: MariaDbServer) -> None:
        excluded = ", ".join(sql_string(u) for u in _SYSTEM_USERS)
        users = await source.query(
            f"SELECT User AS user, Host AS host FROM mysql.user WHERE User NOT IN ({excluded}) "
            "AND is_role = 'N'"
        )
        statements: list[str] = []
        for row in users:
            who = account(row["user"], row["host"])
            create = await source.value(f"SHOW CREATE USER {who}")
            grants = await source.query(f"SHOW GRANTS FOR {who}")
            statements += [f"DROP USER IF EXISTS {who}", str(create)]
            statements += [str(next(iter(g.values()))) for g in grants]
            statements.append(f"GRANT SELECT ON {METADATA_TABLE} TO {who}")
        if statements:
            await target.execute(*statements)
        for server in (source, target):  # the users that read the metadata on blue, too
            await server.execute(
                *(f"GRANT SELECT ON {METADATA_TABLE} TO {account(r['user'], r['host'])}" for r in users)
            )

    async def _load_databases(self, source: MariaDbServer, target: MariaDbServer) -> None:
        excluded = ", ".join(sql_string(s) for s in _SYSTEM_SCHEMAS)
        rows = await source.query(
            "SELECT schema_name AS name FROM information_schema.schemata "
            f"WHERE schema_name NOT IN ({excluded})"
        )
        databases = [r["name"] for r in rows]
        binaries, user = self.blue.binaries, self.blue.user
        dump = target.root / "from-blue.sql"
        try:
            await run_command(
                [
                    binaries.dump, "--no-defaults", f"--socket={source.socket}", "--user=root",
                    "--single-transaction", "--gtid", "--master-data=1", "--routines", "--events",
                    "--triggers", f"--result-file={dump}", "--databases", *databases,
                ],
                user=user,
                timeout=120,
            )  # fmt: skip
            # logged (in green's own GTID domain), so that green's replicas load it too
            await run_command(
                [
                    binaries.client, "--no-defaults", f"--socket={target.socket}", "--user=root",
                    "--execute", f"source {dump}",
                ],
                user=user,
                timeout=120,
            )  # fmt: skip
        finally:
            dump.unlink(missing_ok=True)

    async def _wait_applied(self, source: MariaDbServer, target: MariaDbServer, timeout: float) -> None:
        """Wait until ``target`` applied every transaction ``source`` logged before this call."""
        domain = self.blue.gtid_domain
        wanted = gtid_seq(await source.value("SELECT @@gtid_binlog_pos"), domain)

        async def applied() -> bool:
            status = await target.replica_status()
            if status is None:
                raise SimulatorError("green's writer does not replicate from blue")
            if status["Last_SQL_Errno"]:
                raise SimulatorError(f"green stopped applying blue's changes: {status['Last_SQL_Error']}")
            return gtid_seq(await target.value("SELECT @@gtid_slave_pos"), domain) >= wanted

        await wait_until(applied, timeout=timeout, interval=0.01, what="green to apply blue's last commits")

    # -- switchover ------------------------------------------------------------------------------

    async def stop_writes(self) -> None:
        await stop_client_writes(self._source())

    async def allow_writes_on_blue(self) -> None:
        source = self._source()
        await source.execute("SET GLOBAL read_only = OFF")
        source.read_only = False

    async def wait_caught_up(self, timeout: float) -> None:
        await self._wait_applied(self._source(), self._target(), timeout)

    async def detach(self) -> None:
        await self._target().execute(
            "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL replicate_wild_ignore_table = ''"
        )

    async def copy_sequences(self) -> None:
        """Nothing to do: AUTO_INCREMENT counters travel with the rows."""

    async def allow_writes_on_green(self) -> None:
        target = self._target()
        await target.execute("SET GLOBAL read_only = OFF")
        target.read_only = False

    async def pause(self) -> None:
        await self._target().execute("STOP SLAVE")

    async def resume(self) -> None:
        await self._target().execute("START SLAVE")

    async def write_status(self, side: Side, writer_id: str, hosts: Sequence[BlueGreenHost]) -> None:
        """Publish the deployment's metadata on one cluster's writer (one statement: readers never see
        half of it)."""
        values = ", ".join(
            f"({sql_string(h.id)}, {sql_string(h.endpoint)}, {h.port}, {sql_string(h.role)}, "
            f"{sql_string(h.status)}, {sql_string(h.version)}, FROM_UNIXTIME({h.update_stamp:.6f}))"
            for h in hosts
        )
        cluster = self.blue if side == "blue" else self.green
        await cluster.server(writer_id).execute(f"REPLACE INTO {METADATA_TABLE} VALUES {values}")

    def _source(self) -> MariaDbServer:
        if self._blue_writer is None:
            raise SimulatorError("the blue/green deployment is not replicating")
        return self._blue_writer

    def _target(self) -> MariaDbServer:
        if self._green_writer is None:
            raise SimulatorError("the blue/green deployment is not replicating")
        return self._green_writer


async def stop_client_writes(source: MariaDbServer) -> None:
    """``source`` turns ``read_only`` and its client sessions are ended (so that no transaction begun
    before commits later)."""
    source.read_only = True
    await source.execute("SET GLOBAL read_only = ON")
    others = ", ".join(sql_string(u) for u in _SYSTEM_THREADS)
    sessions = await source.query(
        f"SELECT id FROM information_schema.processlist WHERE user NOT IN ({others}) "
        "AND id <> CONNECTION_ID()"
    )
    for row in sessions:
        try:
            await source.execute(f"KILL CONNECTION {int(row['id'])}")
        except Exception as exc:  # it ended meanwhile (1094: unknown thread id)
            if getattr(exc, "args", (None,))[0] != 1094:
                raise
