"""What the control plane needs from an engine's cluster (``PostgresCluster``, ``MariaDbCluster``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import quote

from ._catalog import TopologyRow


class DatabaseCluster(Protocol):
    """The database servers of one simulated cluster and the database-side steps of every operation.

    Positions (``most_advanced``, ``catch_up``) are integers that grow with every transaction the
    writer commits: bytes of WAL for PostgreSQL, the GTID sequence number for MariaDB.
    """

    cluster_tag: str
    backend_port: int

    @property
    def proxy_options(self) -> dict[str, Any]:
        """Extra arguments of the fault proxy's ``backend`` command for every instance."""
        ...

    async def create(
        self, writer: tuple[str, str], replicas: Sequence[tuple[str, str]], rows: Sequence[TopologyRow]
    ) -> None:
        """Create and start the writer and its replicas (``(instance_id, address)`` pairs)."""
        ...

    async def set_password(self, writer_id: str, user: str, password: str) -> None: ...

    async def set_sync_replicas(self, writer_id: str, running_replicas: Sequence[str]) -> None:
        """Commits wait for one of the running replicas, or for none when there is none."""
        ...

    async def wait_streaming(self, writer_id: str, replica_id: str) -> None: ...

    async def most_advanced(self, candidates: Sequence[str]) -> tuple[str, dict[str, int]]: ...

    async def catch_up(self, target_id: str, source_id: str, lsn: int) -> None: ...

    async def promote(self, instance_id: str) -> None: ...

    async def repoint(self, replica_id: str, writer_id: str) -> None: ...

    async def rejoin(self, instance_id: str, writer_id: str) -> str:
        """Turn a stopped instance into a replica of ``writer_id``; returns how it was done."""
        ...

    async def add_replica(self, instance_id: str, host: str, writer_id: str) -> None: ...

    async def remove(self, instance_id: str) -> None: ...

    async def write_topology(self, writer_id: str, rows: Sequence[TopologyRow]) -> None: ...

    async def start(self, instance_id: str) -> None: ...

    async def stop(self, instance_id: str, mode: str) -> None:
        """``fast`` (clean shutdown) or ``immediate`` (a crash)."""
        ...

    def running(self, instance_id: str) -> bool: ...

    async def close(self) -> None: ...

    def pids(self) -> list[int]: ...

    def dsn(self, host: str, port: int) -> str: ...

    def describe_failure(self, instance_id: str) -> str: ...


class GlobalReplication(Protocol):
    """The database steps of an Aurora Global Database, for one engine: replication from the primary
    region's writer to the secondary region's primary instance (its ``head``), and the steps of a
    switchover or a failover between them. Each method is told which cluster plays which part (they
    swap at a switchover)."""

    async def attach(
        self,
        primary: DatabaseCluster,
        primary_writer: str,
        secondary: DatabaseCluster,
        head: tuple[str, str],
        replicas: Sequence[tuple[str, str]],
    ) -> None:
        """Create the secondary's instances (``(id, address)``) as copies of the primary's writer:
        ``head`` replicates from it, ``replicas`` from ``head``."""
        ...

    async def hold(self, secondary: DatabaseCluster, head: str) -> None:
        """Stop replication to the secondary (the primary's commits from now on stay there)."""
        ...

    async def resume(
        self, primary: DatabaseCluster, writer: str, secondary: DatabaseCluster, head: str
    ) -> None: ...

    async def stop_writes(self, primary: DatabaseCluster, writer: str) -> None:
        """The primary's writer takes no more writes, and its client sessions end."""
        ...

    async def allow_writes(self, primary: DatabaseCluster, writer: str) -> None: ...

    async def wait_caught_up(
        self, primary: DatabaseCluster, writer: str, secondary: DatabaseCluster, head: str, timeout: float
    ) -> None:
        """Wait until ``head`` applied everything ``writer`` wrote so far."""
        ...

    async def promote(self, secondary: DatabaseCluster, head: str) -> None:
        """The secondary's head takes writes, with what it has."""
        ...

    async def follow(
        self,
        old: DatabaseCluster,
        old_writer: str,
        old_replicas: Sequence[str],
        new: DatabaseCluster,
        new_head: str,
    ) -> str:
        """Turn the former primary's (running) writer into a replica of ``new_head`` and its replicas
        into replicas of it again; returns how the writer was brought back."""
        ...


class ServerProcess(Protocol):
    """What :class:`ServerSet` needs from one server (``PgServer``, ``MariaDbServer``)."""

    process: asyncio.subprocess.Process | None

    @property
    def running(self) -> bool: ...

    async def stop(self, mode: str = ...) -> None: ...

    def log_tail(self, lines: int = 20) -> str: ...


S = TypeVar("S", bound=ServerProcess)


class ServerSet(Generic[S]):
    """The part of a :class:`DatabaseCluster` that is the same for every engine: its servers by
    instance id, their processes, and the DSN clients use."""

    SCHEME: ClassVar[str]  # of the DSNs it hands out
    servers: dict[str, S]
    db_user: str
    password: str | None
    database: str

    def server(self, instance_id: str) -> S:
        return self.servers[instance_id]

    async def stop(self, instance_id: str, mode: str) -> None:
        await self.servers[instance_id].stop(mode)

    def running(self, instance_id: str) -> bool:
        return self.servers[instance_id].running

    async def close(self) -> None:
        await asyncio.gather(*(s.stop("immediate") for s in self.servers.values()), return_exceptions=True)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.servers.values() if s.process is not None]

    def dsn(self, host: str, port: int) -> str:
        auth = quote(self.db_user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        return f"{self.SCHEME}://{auth}@{host}:{port}/{quote(self.database, safe='')}"

    def describe_failure(self, instance_id: str) -> str:
        server = self.servers.get(instance_id)
        return server.log_tail() if server is not None else ""
