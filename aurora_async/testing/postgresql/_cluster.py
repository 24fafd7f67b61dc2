"""The PostgreSQL half of the simulator: real servers, streaming replication, promotion and rejoin.

Durability as on Aurora's shared storage: the writer commits synchronously to ``ANY 1`` of its running
replicas, and a failover promotes the replica that received the most WAL (or first lets the chosen
target catch up from it), so no acknowledged commit is lost. When no replica is running the writer
commits alone, like a single-instance Aurora cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._catalog import TopologyMode, TopologyRow, dbi_resource_id
from .._cluster_protocol import ServerSet
from .._process import OsUser, wait_until
from .._tls import make_certificate
from ._catalog import (
    cluster_setup_sql,
    database_setup_sql,
    instance_settings,
    set_topology_sql,
)
from ._server import PgBinaries, PgServer

_STREAM_TIMEOUT = 30.0


PASSWORD_LOGIN_ROLE = "password_login"


class PostgresCluster(ServerSet[PgServer]):
    """Owns the PostgreSQL servers of one simulated cluster and performs the database-side steps."""

    SCHEME = "postgresql"

    default_port = 5432

    def __init__(
        self,
        *,
        root: Path,
        binaries: PgBinaries,
        user: OsUser,
        topology: TopologyMode,
        cluster_tag: str,
        backend_port: int,
        max_connections: int,
        database: str,
        tls: bool = False,
        tls_addresses: Sequence[str] = (),
        db_user: str,
        password: str | None,
        region: str | None = None,
    ) -> None:
        self.root = root
        self.region = region  # its AWS region, as the catalog reports it
        self.binaries = binaries
        self.user = user
        self.topology = topology
        self.cluster_tag = cluster_tag
        self.backend_port = backend_port
        self.max_connections = max_connections
        self.tls = tls
        self.tls_addresses = tuple(tls_addresses)
        self.database = database
        self.db_user = db_user
        self.password = password
        self.servers: dict[str, PgServer] = {}

    @property
    def proxy_options(self) -> dict[str, Any]:
        """Extra arguments of the fault proxy's ``backend`` command."""
        return {"protocol": "postgresql"}

    # -- construction ----------------------------------------------------------------------------

    def _server(self, instance_id: str, host: str) -> PgServer:
        settings = {
            "fsync": "off",  # the OS never crashes here; process kills keep the page cache
            "full_page_writes": "on",  # pg_rewind needs it
            "wal_log_hints": "on",  # pg_rewind needs it
            "wal_level": "logical",  # a blue/green deployment replicates logically
            "max_wal_senders": "20",
            "wal_keep_size": "64MB",
            "max_wal_size": "256MB",  # data may live in memory (/dev/shm): keep WAL small
            "min_wal_size": "32MB",
            "hot_standby": "on",
            "wal_retrieve_retry_interval": "100ms",
            "synchronous_commit": "on",
            "max_connections": str(self.max_connections),
            "shared_buffers": "32MB",
            "cluster_name": f"aurora-sim-{instance_id}",
            "log_line_prefix": "%m [%p] %q%a ",
            **instance_settings(
                self.topology, instance_id, dbi_resource_id(self.cluster_tag, instance_id), self.region
            ),
        }
        if self.tls:
            settings |= {
                "ssl": "on",
                "ssl_cert_file": str(self.root / "tls" / "server.crt"),
                "ssl_key_file": str(self.root / "tls" / "server.key"),
            }
        server = PgServer(
            binaries=self.binaries,
            root=self.root / f"instance-{instance_id}",
            name=instance_id,
            host=host,
            port=self.backend_port,
            user=self.user,
            settings=settings,
        )
        self.servers[instance_id] = server
        return server

    @property
    def tls_root_cert(self) -> Path | None:
        """The CA certificate that signed the servers' certificate (with ``tls``)."""
        return self.root / "tls" / "ca.crt" if self.tls else None

    async def create(
        self, writer: tuple[str, str], replicas: Sequence[tuple[str, str]], rows: Sequence[TopologyRow]
    ) -> None:
        """initdb the writer, install the catalog fakes, copy it into every replica, start them all."""
        if self.tls and not (self.root / "tls" / "server.crt").exists():  # a green cluster shares it
            await make_certificate(self.root / "tls", self.tls_addresses, self.user)
        primary = self._server(*writer)
        await primary.initdb(templates=self.root.parent)  # beside the simulators' directories
        primary.configure_primary()
        await primary.start()
        await self._install(primary, rows)
        await primary.stop("fast")
        copies = [self._server(*replica) for replica in replicas]
        await asyncio.gather(*(server.copy_datadir_from(primary) for server in copies))
        for server in copies:
            server.configure_standby(primary)
        await asyncio.gather(primary.start(), *(server.start() for server in copies))
        await self.set_sync_replicas(writer[0], [r[0] for r in replicas])
        await asyncio.gather(*(self.wait_streaming(writer[0], r[0]) for r in replicas))

    async def _install(self, primary: PgServer, rows: Sequence[TopologyRow]) -> None:
        # members of this role must log in with their password (pg_hba.conf); everyone else is trusted
        statements: list[str] = [f"CREATE ROLE {PASSWORD_LOGIN_ROLE} NOLOGIN"]
        if self.topology != "none":
            statements += cluster_setup_sql(rows)
        if self.db_user != "postgres":
            role = f'"{self.db_user}"'
            statements.append(f"CREATE ROLE {role} LOGIN")
            if self.password is not None:
                escaped = self.password.replace("'", "''")
                statements.append(f"ALTER ROLE {role} PASSWORD '{escaped}'")
        await primary.execute(*statements)
        setup = database_setup_sql(self.topology)
        if setup:
            for database in ("template1", "postgres"):
                conn = await primary.connect(database=database)
                try:
                    await conn.execute(setup)
                finally:
                    await conn.close()
        if self.database != "postgres":
            await primary.execute(f'CREATE DATABASE "{self.database}" OWNER "{self.db_user}"')

    async def set_password(self, writer_id: str, user: str, password: str) -> None:
        """Create or update a login role that must authenticate with ``password`` (SCRAM)."""
        server = self.servers[writer_id]
        conn = await server.connect()
        try:
            role = '"' + user.replace('"', '""') + '"'
            exists = await conn.fetchval("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", user)
            if not exists:
                await conn.execute(f"CREATE ROLE {role} LOGIN")
            escaped = password.replace("'", "''")
            await conn.execute(f"ALTER ROLE {role} LOGIN PASSWORD '{escaped}'")
            await conn.execute(f"GRANT {PASSWORD_LOGIN_ROLE} TO {role}")
        finally:
            await conn.close()

    # -- replication management --------------------------------------------------------------------

    async def set_sync_replicas(self, writer_id: str, running_replicas: Sequence[str]) -> None:
        # by name: a Global Database's secondary region also streams from the writer, asynchronously
        names = ", ".join(f'"{r}"' for r in running_replicas)
        value = f"ANY 1 ({names})" if running_replicas else ""
        await self.servers[writer_id].execute(
            f"ALTER SYSTEM SET synchronous_standby_names = '{value}'", "SELECT pg_catalog.pg_reload_conf()"
        )

    async def wait_streaming(self, writer_id: str, replica_id: str) -> None:
        writer = self.servers[writer_id]

        async def streaming() -> bool:
            state = await writer.fetchval(
                "SELECT state FROM pg_catalog.pg_stat_replication "
                f"WHERE application_name = '{replica_id}' AND state = 'streaming' LIMIT 1"
            )
            return state == "streaming"

        await wait_until(
            streaming, timeout=_STREAM_TIMEOUT, what=f"replica {replica_id} to stream from {writer_id}"
        )

    async def received_lsn(self, instance_id: str) -> int:
        value = await self.servers[instance_id].fetchval(
            "SELECT pg_catalog.pg_wal_lsn_diff(GREATEST(pg_catalog.pg_last_wal_receive_lsn(), "
            "pg_catalog.pg_last_wal_replay_lsn()), '0/0')::bigint"
        )
        return int(value) if isinstance(value, int) else 0

    async def most_advanced(self, candidates: Sequence[str]) -> tuple[str, dict[str, int]]:
        """The candidate that received the most WAL (ties go to the first one)."""
        lsns = dict(
            zip(candidates, await asyncio.gather(*(self.received_lsn(c) for c in candidates)), strict=True)
        )
        best = max(candidates, key=lambda c: lsns[c])
        return best, lsns

    async def catch_up(self, target_id: str, source_id: str, lsn: int) -> None:
        """Let replica ``target_id`` stream from replica ``source_id`` until it has ``lsn``."""
        target, source = self.servers[target_id], self.servers[source_id]
        await self._point_at(target, source)

        async def caught_up() -> bool:
            return await self.received_lsn(target_id) >= lsn

        await wait_until(caught_up, timeout=_STREAM_TIMEOUT, what=f"{target_id} to catch up with {source_id}")

    async def _point_at(self, replica: PgServer, primary: PgServer) -> None:
        conninfo = primary.conninfo(replica.name).replace("'", "''")
        await replica.execute(
            f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'", "SELECT pg_catalog.pg_reload_conf()"
        )

    async def promote(self, instance_id: str) -> None:
        await self.servers[instance_id].promote()

    async def repoint(self, replica_id: str, writer_id: str) -> None:
        """Make a running replica stream from a new writer (it follows the new timeline by itself)."""
        await self._point_at(self.servers[replica_id], self.servers[writer_id])
        await self.wait_streaming(writer_id, replica_id)

    async def rejoin(self, instance_id: str, writer_id: str) -> str:
        """Turn a stopped ex-writer into a replica of ``writer_id``; returns how ("pg_rewind" or
        "pg_basebackup")."""
        server, writer = self.servers[instance_id], self.servers[writer_id]
        await server.stop("immediate")
        await writer.execute("CHECKPOINT")  # pg_rewind reads the new timeline from the control file
        rewound = await server.rewind_from(writer)
        server.configure_standby(writer)
        await server.start()
        await self.wait_streaming(writer_id, instance_id)
        return "pg_rewind" if rewound else "pg_basebackup"

    async def add_replica(self, instance_id: str, host: str, writer_id: str) -> None:
        server = self._server(instance_id, host)
        writer = self.servers[writer_id]
        await server.basebackup_from(writer)
        server.configure_standby(writer)
        await server.start()
        await self.wait_streaming(writer_id, instance_id)

    async def remove(self, instance_id: str) -> None:
        server = self.servers.pop(instance_id)
        await server.stop("immediate")

    async def write_topology(self, writer_id: str, rows: Sequence[TopologyRow]) -> None:
        if self.topology != "none":
            await self.servers[writer_id].execute(set_topology_sql(rows))

    # -- processes ---------------------------------------------------------------------------------

    async def start(self, instance_id: str) -> None:
        await self.servers[instance_id].start()
