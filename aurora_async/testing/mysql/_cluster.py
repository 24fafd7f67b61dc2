"""The MariaDB half of the simulator: real servers, GTID replication, promotion and rejoin.

Durability as on Aurora's shared storage: the writer commits with semi-synchronous replication (wait
point ``AFTER_SYNC``: a commit is acknowledged once a replica has it in its relay log) while at least one
replica runs, and a failover promotes the replica that received the highest GTID (or first lets the
chosen target catch up from it) after it applied all it received, so no acknowledged commit is lost.
With no replica running the writer commits alone, like a single-instance Aurora cluster.

An old writer rejoins as a replica from its own GTID position when that position lies on the new
writer's history. The history is the list of promotions: which server wrote which GTID sequence
numbers. A writer killed before its last transactions reached any replica (they were never
acknowledged) has GTIDs that are not on it; that instance is rebuilt from a ``mariadb-dump`` of the
new writer instead, so no replica ever holds data the writer lacks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._catalog import TopologyMode, TopologyRow
from .._cluster_protocol import ServerSet
from .._errors import SimulatorError
from .._process import OsUser, run_command, wait_until
from .._tls import make_certificate
from ._catalog import (
    REPLICATION_USER,
    account,
    bootstrap_sql,
    grants_sql,
    sql_string,
    topology_sql,
)
from ._iam import PAM_PLUGIN, IamLoginAttempt, IamUsers, ensure_pam_service
from ._server import MariaDbBinaries, MariaDbServer, install_template

_STREAM_TIMEOUT = 30.0
_KICK_INTERVAL = 0.25
_IDLE_SQL_THREAD = "Slave has read all relay log"
_CONNECT_ERRORS = (2003, 2013)  # the replica's IO thread lost or cannot reach its source


class ReplicationDivergedError(SimulatorError):
    """The source does not have the transactions the replica has (MariaDB error 1236)."""


def gtid_of(position: str | None, domain: int = 0) -> tuple[int, int] | None:
    """``(server_id, sequence number)`` of ``domain`` in a GTID position such as ``"0-11-42"``."""
    for part in (position or "").split(","):
        fields = part.strip().split("-")
        if len(fields) == 3 and int(fields[0]) == domain:
            return int(fields[1]), int(fields[2])
    return None


def gtid_seq(position: str | None, domain: int = 0) -> int:
    gtid = gtid_of(position, domain)
    return gtid[1] if gtid is not None else 0


class MariaDbCluster(ServerSet[MariaDbServer]):
    """Owns the MariaDB servers of one simulated cluster and performs the database-side steps."""

    SCHEME = "mysql"

    default_port = 3306

    def __init__(
        self,
        *,
        root: Path,
        binaries: MariaDbBinaries,
        user: OsUser,
        topology: TopologyMode,
        cluster_tag: str,
        backend_port: int,
        max_connections: int,
        database: str,
        db_user: str,
        password: str | None,
        tls: bool = False,
        tls_addresses: Sequence[str] = (),
        gtid_domain: int = 0,
        region: str | None = None,
    ) -> None:
        self.root = root
        self.region = region  # its AWS region (not yet in the MySQL catalog)
        self.binaries = binaries
        self.user = user
        self.topology = topology
        self.cluster_tag = cluster_tag
        self.backend_port = backend_port
        self.max_connections = max_connections
        self.database = database
        self.db_user = db_user
        self.password = password
        self.template = root / "template"
        self.tls = tls
        self.tls_addresses = tuple(tls_addresses)
        self.iam = IamUsers(root / "iam", user)
        self.servers: dict[str, MariaDbServer] = {}
        # the writers' history: (last sequence number before, server_id of the writer from then on)
        self.history: list[tuple[int, int]] = []
        # the GTID domain of the transactions this cluster's writers make (a blue/green deployment's
        # green cluster has its own, apart from blue's, which it replicates)
        self.gtid_domain = gtid_domain

    def _seq(self, position: str | None) -> int:
        """The sequence number of this cluster's own domain in a GTID position."""
        return gtid_seq(position, self.gtid_domain)

    @property
    def proxy_options(self) -> dict[str, Any]:
        """Extra arguments of the fault proxy's ``backend`` command: with ``tls``, the proxy ends the
        clients' TLS with the cluster's certificate and speaks TLS to the servers."""
        options: dict[str, Any] = {"protocol": "mysql", "aurora_mysql": self.topology == "aurora"}
        if self.tls:
            tls = self.root / "tls"
            options["tls"] = {
                "cert": str(tls / "server.crt"),
                "key": str(tls / "server.key"),
                "ca": str(tls / "ca.crt"),
            }
        return options

    @property
    def tls_root_cert(self) -> Path | None:
        """The CA certificate that signed the cluster's certificate (with ``tls``)."""
        return self.root / "tls" / "ca.crt" if self.tls else None

    # -- construction ----------------------------------------------------------------------------

    def _server(self, instance_id: str, host: str, *, read_only: bool) -> MariaDbServer:
        server = MariaDbServer(
            binaries=self.binaries,
            root=self.root / f"instance-{instance_id}",
            name=instance_id,
            host=host,
            port=self.backend_port,
            user=self.user,
            report_host=f"{instance_id}.{self.cluster_tag}.sim.invalid",
            max_connections=self.max_connections,
            read_only=read_only,
            tls_dir=self.root / "tls" if self.tls else None,
            gtid_domain=self.gtid_domain,
        )
        self.servers[instance_id] = server
        return server

    async def _make_template(self, rows: Sequence[TopologyRow]) -> None:
        """One ``mariadb-install-db`` with the catalog and users: what every instance starts from."""
        bootstrap = self.root / "bootstrap.sql"
        bootstrap.write_text(
            bootstrap_sql(
                self.topology, rows, user=self.db_user, password=self.password, database=self.database
            )
        )
        self.user.chown(bootstrap)
        if self.tls and not (self.root / "tls" / "server.crt").exists():  # a green cluster shares it
            await make_certificate(self.root / "tls", self.tls_addresses, self.user)
        await install_template(self.binaries, self.template, bootstrap, self.user, self.root)
        self.iam.prepare(self.template)

    async def create(
        self, writer: tuple[str, str], replicas: Sequence[tuple[str, str]], rows: Sequence[TopologyRow]
    ) -> None:
        """The template, copied to every instance; then start them all and let the replicas follow
        the writer."""
        await self._make_template(rows)
        primary = self._server(*writer, read_only=False)
        copies = [self._server(*replica, read_only=True) for replica in replicas]
        everyone = [primary, *copies]
        await asyncio.gather(*(server.copy_datadir_from(self.template) for server in everyone))
        self.history = [(0, primary.server_id)]
        await asyncio.gather(*(server.start() for server in everyone))
        await asyncio.gather(*(self._follow(server, primary) for server in copies))
        await self.set_sync_replicas(writer[0], [r[0] for r in replicas])
        await asyncio.gather(*(self.wait_streaming(writer[0], r[0]) for r in replicas))

    async def create_copy(
        self,
        source: MariaDbCluster,
        source_writer: str,
        writer: tuple[str, str],
        replicas: Sequence[tuple[str, str]],
    ) -> None:
        """The instances of an Aurora Global Database's secondary region: ``writer`` a copy of
        ``source``'s writer (everything: users, catalog, databases) that replicates from it
        asynchronously (no semi-sync acknowledgement: a commit in the primary region does not wait for
        this one), ``replicas`` copies of ``writer`` that replicate from it as any cluster's do."""
        await self._make_template([])
        self.history = list(source.history)
        head = self._server(*writer, read_only=True)
        head.semi_sync_replica = False
        await head.copy_datadir_from(self.template)
        await self._load_from(head, source.server(source_writer))
        copies = [self._server(*replica, read_only=True) for replica in replicas]
        for server in copies:
            await server.copy_datadir_from(self.template)
            await self._load_from(server, head)
        await self.set_sync_replicas(writer[0], [r[0] for r in replicas])

    async def set_password(self, writer_id: str, user: str, password: str) -> None:
        """Create or update a user who must log in with ``password``, with the DSN user's rights; for
        an IAM user (:meth:`create_iam_user`), the token that logs it in."""
        if user in self.iam.users:
            self.iam.set_token(user, password)
            return
        who = account(user)
        await self.servers[writer_id].execute(
            f"CREATE USER IF NOT EXISTS {who}",
            f"ALTER USER {who} IDENTIFIED BY {sql_string(password)}",
            *grants_sql(self.topology, user, self.database),
        )

    async def create_iam_user(self, writer_id: str, user: str) -> None:
        """(Re)create ``user`` as an IAM user with the DSN user's rights (see ``_iam``): it logs in with
        the token last given to :meth:`set_password`, through ``mysql_clear_password``."""
        writer = self.servers[writer_id]
        status = await writer.value(
            "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'pam'"
        )
        if status != "ACTIVE":
            raise SimulatorError(
                f"IAM users need MariaDB's PAM plugin ({PAM_PLUGIN}.so in the server's plugin directory; "
                "Debian/Ubuntu: part of mariadb-server), which the servers could not load:\n"
                + writer.log_tail()
            )
        ensure_pam_service()
        await writer.execute(
            *self.iam.create_sql(user, require_tls=self.tls), *grants_sql(self.topology, user, self.database)
        )

    def iam_login_attempts(self) -> list[IamLoginAttempt]:
        return self.iam.attempts()

    # -- replication management --------------------------------------------------------------------

    async def _follow(self, replica: MariaDbServer, source: MariaDbServer) -> None:
        """Replicate from ``source``, from the replica's own GTID position."""
        position = await replica.value("SELECT @@gtid_current_pos")
        await replica.execute(
            "STOP SLAVE",
            f"SET GLOBAL gtid_slave_pos = {sql_string(position or '')}",
            f"CHANGE MASTER TO MASTER_HOST = {sql_string(source.host)}, MASTER_PORT = {source.port}, "
            f"MASTER_USER = {sql_string(REPLICATION_USER)}, MASTER_PASSWORD = '', "
            "MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
            "START SLAVE",
        )

    async def follow_source(self, replica: MariaDbServer, source: MariaDbServer) -> None:
        """Make ``replica`` replicate ``source`` (which may be another cluster's) and wait until it does."""
        await self._follow(replica, source)
        await self.wait_replicating(source, replica)

    async def set_sync_replicas(self, writer_id: str, running_replicas: Sequence[str]) -> None:
        value = "ON" if running_replicas else "OFF"
        await self.servers[writer_id].execute(f"SET GLOBAL rpl_semi_sync_master_enabled = {value}")

    async def wait_streaming(self, writer_id: str, replica_id: str) -> None:
        """Wait until the replica is connected to the writer and has what the writer had on entry."""
        await self.wait_replicating(self.servers[writer_id], self.servers[replica_id])

    async def wait_replicating(self, writer: MariaDbServer, replica: MariaDbServer) -> None:
        """:meth:`wait_streaming` for servers (the writer may be another cluster's)."""
        writer_id, replica_id = writer.name, replica.name
        target = self._seq(await writer.value("SELECT @@gtid_current_pos"))
        last_kick = 0.0

        async def streaming() -> bool:
            nonlocal last_kick
            status = await replica.replica_status()
            if status is None or status["Master_Host"] != writer.host:
                raise SimulatorError(f"replica {replica_id} does not replicate from {writer_id}")
            _check_errors(replica_id, status)
            io_state = status["Slave_IO_Running"]
            if io_state != "Yes":
                now = time.monotonic()
                if status["Last_IO_Errno"] in _CONNECT_ERRORS and now - last_kick > _KICK_INTERVAL:
                    last_kick = now  # it waits MASTER_CONNECT_RETRY (1 s) between tries: try now
                    await replica.execute("STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD")
                return False
            return self._seq(await replica.value("SELECT @@gtid_slave_pos")) >= target

        await wait_until(
            streaming, timeout=_STREAM_TIMEOUT, what=f"replica {replica_id} to replicate from {writer_id}"
        )

    async def received_position(self, instance_id: str) -> int:
        """The highest GTID sequence number the instance received (applied or still in its relay log)."""
        server = self.servers[instance_id]
        status = await server.replica_status()
        received = self._seq(status["Gtid_IO_Pos"]) if status is not None else 0
        return max(received, self._seq(await server.value("SELECT @@gtid_current_pos")))

    async def most_advanced(self, candidates: Sequence[str]) -> tuple[str, dict[str, int]]:
        """The candidate that received the most transactions (ties go to the first one)."""
        positions = await asyncio.gather(*(self.received_position(c) for c in candidates))
        received = dict(zip(candidates, positions, strict=True))
        return max(candidates, key=lambda c: received[c]), received

    async def _drain(self, server: MariaDbServer) -> None:
        """Wait until the replica applied every whole transaction it received."""
        idle_since: float | None = None

        async def drained() -> bool:
            nonlocal idle_since
            status = await server.replica_status()
            if status is None or status["Slave_SQL_Running"] != "Yes":
                return True
            applied = self._seq(await server.value("SELECT @@gtid_slave_pos"))
            if applied >= self._seq(status["Gtid_IO_Pos"]):
                return True
            # only the start of a transaction arrived before its source died: it never committed
            if not str(status["Slave_SQL_Running_State"]).startswith(_IDLE_SQL_THREAD):
                idle_since = None
                return False
            idle_since = idle_since or time.monotonic()
            return time.monotonic() - idle_since > 0.5

        await wait_until(drained, timeout=_STREAM_TIMEOUT, what=f"{server.name} to apply its relay log")

    async def catch_up(self, target_id: str, source_id: str, lsn: int) -> None:
        """Let replica ``target_id`` replicate from replica ``source_id`` until it has GTID ``lsn``."""
        target, source = self.servers[target_id], self.servers[source_id]
        await self._drain(source)
        await self._follow(target, source)

        async def caught_up() -> bool:
            status = await target.replica_status()
            if status is not None:
                _check_errors(target_id, status)
            return self._seq(await target.value("SELECT @@gtid_slave_pos")) >= lsn

        await wait_until(caught_up, timeout=_STREAM_TIMEOUT, what=f"{target_id} to catch up with {source_id}")

    async def promote(self, instance_id: str) -> None:
        """Apply what was received, stop replicating, accept writes."""
        server = self.servers[instance_id]
        await self._drain(server)
        await server.execute(
            "STOP SLAVE",
            "RESET SLAVE ALL",
            "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
            "SET GLOBAL read_only = OFF",
        )
        server.read_only = False
        self.history.append((self._seq(await server.value("SELECT @@gtid_current_pos")), server.server_id))

    def _on_history(self, position: str | None, writer_seq: int) -> bool:
        """Whether the last transaction of ``position`` is one the current writer has too."""
        gtid = gtid_of(position, self.gtid_domain)
        if gtid is None or gtid[1] == 0:
            return True
        server_id, seq = gtid
        if seq > writer_seq:
            return False
        owner = next(sid for start, sid in reversed(self.history) if seq > start)
        return owner == server_id

    async def _attach(self, server: MariaDbServer, writer: MariaDbServer) -> str:
        """Make a running instance replicate from ``writer``; rebuild it if it diverged."""
        position = await server.value("SELECT @@gtid_current_pos")
        writer_seq = self._seq(await writer.value("SELECT @@gtid_current_pos"))
        if self._on_history(position, writer_seq):
            await self._follow(server, writer)
            try:
                await self.wait_streaming(writer.name, server.name)
                return "GTID"
            except ReplicationDivergedError:
                pass
        await self._rebuild(server, writer)
        return "rebuilt from mariadb-dump"

    async def repoint(self, replica_id: str, writer_id: str) -> None:
        """Make a running replica replicate from a new writer."""
        await self._attach(self.servers[replica_id], self.servers[writer_id])

    async def rejoin(self, instance_id: str, writer_id: str) -> str:
        """Turn a stopped instance (an ex-writer) into a replica of ``writer_id``; returns how ("GTID"
        or "rebuilt from mariadb-dump")."""
        server = self.servers[instance_id]
        await server.stop("immediate")
        server.read_only = True
        await server.start(replicate=False)
        return await self._attach(server, self.servers[writer_id])

    async def _rebuild(self, server: MariaDbServer, writer: MariaDbServer) -> None:
        await server.stop("immediate")
        await server.copy_datadir_from(self.template)
        await self._load_from(server, writer)

    async def _load_from(self, server: MariaDbServer, writer: MariaDbServer) -> None:
        """Start ``server`` on a fresh data directory, load a dump of ``writer`` and replicate from the
        dump's GTID position."""
        server.read_only = True
        await server.start(replicate=False)
        dump = server.root / "from-writer.sql"
        try:
            await run_command(
                [
                    self.binaries.dump, "--no-defaults", f"--socket={writer.socket}", "--user=root",
                    "--all-databases", "--single-transaction", "--gtid", "--master-data=1", "--routines",
                    "--events", "--triggers", "--flush-privileges", f"--result-file={dump}",
                ],
                user=self.user,
                timeout=120,
            )  # fmt: skip
            await run_command(
                [
                    self.binaries.client, "--no-defaults", f"--socket={server.socket}", "--user=root",
                    "--init-command=SET SESSION sql_log_bin = 0", "--execute", f"source {dump}",
                ],
                user=self.user,
                timeout=120,
            )  # fmt: skip
        finally:
            dump.unlink(missing_ok=True)
        position = await server.value("SELECT @@gtid_slave_pos")
        # its own binary log starts where the dump was taken, as if it had replicated everything
        await server.execute("RESET MASTER", f"SET GLOBAL gtid_binlog_state = {sql_string(position or '')}")
        await self._follow(server, writer)
        await self.wait_replicating(writer, server)

    async def add_replica(self, instance_id: str, host: str, writer_id: str) -> None:
        server = self._server(instance_id, host, read_only=True)
        await server.copy_datadir_from(self.template)
        await self._load_from(server, self.servers[writer_id])

    async def remove(self, instance_id: str) -> None:
        server = self.servers.pop(instance_id)
        await server.stop("immediate")

    async def write_topology(self, writer_id: str, rows: Sequence[TopologyRow]) -> None:
        statements = topology_sql(self.topology, rows)
        if statements:
            await self.servers[writer_id].execute(*statements)

    # -- processes ---------------------------------------------------------------------------------

    async def start(self, instance_id: str) -> None:
        server = self.servers[instance_id]
        await server.start()
        if not server.read_only:
            await self._reconnect_followers(server)

    async def _reconnect_followers(self, writer: MariaDbServer) -> None:
        """Replicas wait a second between attempts to reach a writer that was down: skip the wait."""
        for server in self.servers.values():
            if server is writer or not server.running or not server.read_only:
                continue
            status = await server.replica_status()
            if status is None or status["Master_Host"] != writer.host:
                continue
            if status["Slave_IO_Running"] != "Yes":
                await server.execute("STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD")


def _check_errors(replica_id: str, status: dict[str, Any]) -> None:
    if status["Last_IO_Errno"] == 1236:
        raise ReplicationDivergedError(f"replica {replica_id}: {status['Last_IO_Error']}")
    if status["Last_SQL_Errno"]:
        raise SimulatorError(f"replica {replica_id} stopped applying: {status['Last_SQL_Error']}")
    if status["Slave_IO_Running"] == "No" and status["Last_IO_Errno"]:
        raise SimulatorError(f"replica {replica_id} stopped receiving: {status['Last_IO_Error']}")
