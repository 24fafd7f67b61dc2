"""The MySQL (MariaDB) side of a simulated Aurora Global Database: a secondary region's cluster whose
head replicates the primary's writer by GTID (its other instances replicate the head), and the database
steps of a switchover and a failover between the regions.

The secondary is a copy of everything (users, the simulator's catalog, every database), made from a
dump of the primary's writer, and replicates everything that follows in the same GTID domain: as on
Aurora, a Global Database is one database in several regions. Replication between the regions is
asynchronous: the head does not acknowledge what it receives (no semi-sync), so a commit acknowledged
in the primary region may not have reached the secondary when the primary is lost (:meth:`hold` keeps
such a tail back on purpose).
"""

from __future__ import annotations

from collections.abc import Sequence

from .._cluster_protocol import DatabaseCluster
from .._errors import SimulatorError
from .._process import wait_until
from ._blue_green import stop_client_writes
from ._cluster import MariaDbCluster, gtid_seq


def _mariadb(cluster: DatabaseCluster) -> MariaDbCluster:
    if not isinstance(cluster, MariaDbCluster):
        raise SimulatorError("a MySQL Global Database has MariaDB clusters only")
    return cluster


class MariaDbGlobal:
    """GTID replication from the primary region's writer to the secondary's head, and the steps
    between regions (:class:`~aurora_async.testing._cluster_protocol.GlobalReplication`)."""

    async def attach(
        self,
        primary: DatabaseCluster,
        primary_writer: str,
        secondary: DatabaseCluster,
        head: tuple[str, str],
        replicas: Sequence[tuple[str, str]],
    ) -> None:
        source = _mariadb(primary)
        await _mariadb(secondary).create_copy(source, primary_writer, head, replicas)

    async def hold(self, secondary: DatabaseCluster, head: str) -> None:
        await _mariadb(secondary).server(head).execute("STOP SLAVE")

    async def resume(
        self, primary: DatabaseCluster, writer: str, secondary: DatabaseCluster, head: str
    ) -> None:
        region = _mariadb(secondary)
        target = region.server(head)
        await target.execute("START SLAVE")
        await region.wait_replicating(_mariadb(primary).server(writer), target)

    async def stop_writes(self, primary: DatabaseCluster, writer: str) -> None:
        await stop_client_writes(_mariadb(primary).server(writer))

    async def allow_writes(self, primary: DatabaseCluster, writer: str) -> None:
        source = _mariadb(primary).server(writer)
        await source.execute("SET GLOBAL read_only = OFF")
        source.read_only = False

    async def wait_caught_up(
        self, primary: DatabaseCluster, writer: str, secondary: DatabaseCluster, head: str, timeout: float
    ) -> None:
        source, target = _mariadb(primary).server(writer), _mariadb(secondary).server(head)
        domain = source.gtid_domain
        wanted = gtid_seq(await source.value("SELECT @@gtid_binlog_pos"), domain)

        async def applied() -> bool:
            status = await target.replica_status()
            if status is not None and status["Last_SQL_Errno"]:
                raise SimulatorError(f"the secondary region stopped applying: {status['Last_SQL_Error']}")
            return gtid_seq(await target.value("SELECT @@gtid_slave_pos"), domain) >= wanted

        await wait_until(applied, timeout=timeout, interval=0.01, what="the secondary region to catch up")

    async def promote(self, secondary: DatabaseCluster, head: str) -> None:
        """The head applies what it received, stops replicating and takes writes."""
        await _mariadb(secondary).promote(head)

    async def follow(
        self,
        old: DatabaseCluster,
        old_writer: str,
        old_replicas: Sequence[str],
        new: DatabaseCluster,
        new_head: str,
    ) -> str:
        """The former primary's writer (read-only, every transaction of it applied by the new primary)
        replicates the new primary from its own GTID position, asynchronously; its replicas keep
        replicating it."""
        region, other = _mariadb(old), _mariadb(new)
        writer, head = region.server(old_writer), other.server(new_head)
        writer.semi_sync_replica = False
        await writer.execute(
            "SET GLOBAL rpl_semi_sync_master_enabled = OFF", "SET GLOBAL rpl_semi_sync_slave_enabled = OFF"
        )
        region.history = list(other.history)
        await region.follow_source(writer, head)
        return "GTID"
