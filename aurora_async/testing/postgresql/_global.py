"""The PostgreSQL side of a simulated Aurora Global Database: a secondary region's cluster that streams
the primary's WAL (its primary instance a standby of the primary's writer, its other instances standbys
of that one), and the database steps of a switchover and a failover between the regions.

Replication between the regions is asynchronous, as on Aurora: the primary's writer waits for its own
replicas only (synchronous_standby_names lists them by name), so a commit acknowledged in the primary
region may not have reached the secondary when the primary is lost (:meth:`PgGlobal.hold` keeps such a
tail back on purpose). Everything is carried, DDL and roles included: the secondary is a physical copy.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._cluster_protocol import DatabaseCluster
from .._errors import SimulatorError
from .._process import wait_until
from ._blue_green import set_read_only
from ._cluster import PostgresCluster
from ._server import PgServer

_STREAM_TIMEOUT = 60.0
_LSN = "SELECT pg_catalog.pg_wal_lsn_diff({}, '0/0')::bigint"  # a WAL position as a number of bytes


def _pg(cluster: DatabaseCluster) -> PostgresCluster:
    if not isinstance(cluster, PostgresCluster):
        raise SimulatorError("a PostgreSQL Global Database has PostgreSQL clusters only")
    return cluster


class PgGlobal:
    """Streaming from the primary region's writer to the secondary's head, and the steps between
    regions (:class:`~aurora_async.testing._cluster_protocol.GlobalReplication`)."""

    async def attach(
        self,
        primary: DatabaseCluster,
        primary_writer: str,
        secondary: DatabaseCluster,
        head: tuple[str, str],
        replicas: Sequence[tuple[str, str]],
    ) -> None:
        """Base backups of the primary's writer: ``head`` streams from it, ``replicas`` from ``head``."""
        source = _pg(primary).server(primary_writer)
        region = _pg(secondary)
        first = region._server(*head)
        await first.basebackup_from(source)
        first.configure_standby(source)
        await first.start()
        await wait_streaming(source, first.name)
        for replica in replicas:
            server = region._server(*replica)
            await server.basebackup_from(source)
            server.configure_standby(first)
            await server.start()
            await wait_streaming(first, server.name)

    async def hold(self, secondary: DatabaseCluster, head: str) -> None:
        target = _pg(secondary).server(head)
        await target.execute("ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_catalog.pg_reload_conf()")

        # the reload only asks: the WAL receiver streams on until the startup process has ended it,
        # and a commit acknowledged meanwhile would still reach the secondary
        async def stopped() -> bool:
            return await target.fetchval("SELECT count(*) FROM pg_catalog.pg_stat_wal_receiver") == 0

        await wait_until(stopped, timeout=_STREAM_TIMEOUT, what=f"{head} to stop receiving WAL")

    async def resume(
        self, primary: DatabaseCluster, writer: str, secondary: DatabaseCluster, head: str
    ) -> None:
        source, target = _pg(primary).server(writer), _pg(secondary).server(head)
        conninfo = source.conninfo(target.name).replace("'", "''")
        await target.execute(
            f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'", "SELECT pg_catalog.pg_reload_conf()"
        )
        await wait_streaming(source, target.name)

    async def stop_writes(self, primary: DatabaseCluster, writer: str) -> None:
        source = _pg(primary).server(writer)
        await set_read_only(source, True)
        await source.execute(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid() "
            "AND application_name IS DISTINCT FROM 'aurora-simulator'"
        )

    async def allow_writes(self, primary: DatabaseCluster, writer: str) -> None:
        await set_read_only(_pg(primary).server(writer), False)

    async def wait_caught_up(
        self, primary: DatabaseCluster, writer: str, secondary: DatabaseCluster, head: str, timeout: float
    ) -> None:
        source, target = _pg(primary).server(writer), _pg(secondary).server(head)
        wanted = await source.fetchval(_LSN.format("pg_catalog.pg_current_wal_lsn()"))

        async def replayed() -> bool:
            done = await target.fetchval(_LSN.format("pg_catalog.pg_last_wal_replay_lsn()"))
            return isinstance(done, int) and isinstance(wanted, int) and done >= wanted

        await wait_until(replayed, timeout=timeout, interval=0.01, what="the secondary region to catch up")

    async def promote(self, secondary: DatabaseCluster, head: str) -> None:
        """The head takes writes (its replicas follow the new timeline)."""
        await _pg(secondary).server(head).promote()

    async def follow(
        self,
        old: DatabaseCluster,
        old_writer: str,
        old_replicas: Sequence[str],
        new: DatabaseCluster,
        new_head: str,
    ) -> str:
        """Each of the former primary's servers rewound to the new primary's history first (they hold
        the writer's shutdown checkpoint, which the new timeline does not): "pg_rewind" or
        "pg_basebackup"."""
        region = _pg(old)
        writer = region.server(old_writer)
        replicas = [region.server(r) for r in old_replicas]
        new_primary = _pg(new).server(new_head)
        for server in (writer, *replicas):
            await server.stop("fast")
        await new_primary.execute("CHECKPOINT")  # pg_rewind reads the new timeline from the control file
        rewound = await writer.rewind_from(new_primary)
        writer.configure_standby(new_primary)
        writer.set_auto_conf(default_transaction_read_only="")
        await writer.start()
        await wait_streaming(new_primary, writer.name)
        for server in replicas:
            await server.rewind_from(new_primary)
            server.configure_standby(writer)
            server.set_auto_conf(default_transaction_read_only="")
            await server.start()
            await wait_streaming(writer, server.name)
        return "pg_rewind" if rewound else "pg_basebackup"


async def wait_streaming(source: PgServer, standby: str) -> None:
    """Wait until ``source`` streams to standby ``standby`` (named by its application_name)."""

    async def streaming() -> bool:
        state = await source.fetchval(
            "SELECT state FROM pg_catalog.pg_stat_replication "
            f"WHERE application_name = '{standby}' AND state = 'streaming' LIMIT 1"
        )
        return state == "streaming"

    try:
        await wait_until(streaming, timeout=_STREAM_TIMEOUT, what=f"{standby} to stream from {source.name}")
    except SimulatorError as exc:
        raise SimulatorError(f"{exc}\n{source.log_tail()}") from None
