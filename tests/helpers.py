"""Test helpers: every wait has a deadline, every simulator is checked for leftovers."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from aurora_async.testing import AuroraSimulator

CONNECT_TIMEOUT = 5.0


async def connect(dsn: str, timeout: float = CONNECT_TIMEOUT) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=timeout)


async def fetchval(dsn: str, query: str) -> object:
    conn = await connect(dsn)
    try:
        return await conn.fetchval(query, timeout=CONNECT_TIMEOUT)
    finally:
        await conn.close(timeout=CONNECT_TIMEOUT)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait for ``check`` to hold, polling, with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (a simulator's temp directory, for instance)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


async def refused(endpoint: str) -> bool:
    host, port = endpoint.rsplit(":", 1)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def sockets_to(address_prefix: str) -> list[str]:
    """This process's open TCP connections to addresses starting with ``address_prefix`` (an IPv4
    prefix such as ``"127.0.42."``), read from /proc: what a leak of sockets to the simulator looks like."""
    mine = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        hex_ip, hex_port = remote.split(":")
        ip = ".".join(str(b) for b in reversed(bytes.fromhex(hex_ip)))
        if inode in mine and ip.startswith(address_prefix) and state != "0A":  # 0A: listening
            found.append(f"{ip}:{int(hex_port, 16)}")
    return found


class Leftovers:
    """What a running simulator owns, captured so that it can be checked after it stopped."""

    def __init__(self, sim: AuroraSimulator) -> None:
        self.root = sim.root
        self.pids = sim.process_ids
        self.endpoints = [sim.cluster_endpoint, sim.reader_endpoint] + [
            sim.endpoint(i) for i in sim.instance_ids
        ]

    async def assert_none(self) -> None:
        assert not self.root.exists(), f"{self.root} was left behind"
        alive = [pid for pid in self.pids if process_exists(pid)]
        assert not alive, f"processes left running: {alive}"
        assert processes_mentioning(str(self.root)) == []
        for endpoint in self.endpoints:
            assert await refused(endpoint), f"{endpoint} still accepts connections"


# What asyncpg raises when the server side of a connection vanishes. InternalClientError: asyncpg 0.32
# raises it ("cannot switch to state 15; another operation (2) is in progress") for a query issued just
# as the server's FATAL "terminating connection due to administrator command" arrives.
CONNECTION_LOST = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)

# The incumbent's Aurora PostgreSQL SQL, verbatim (aws-advanced-python-wrapper's Aurora PostgreSQL dialect).
AURORA_TOPOLOGY_SQL = (
    "SELECT SERVER_ID, CASE WHEN SESSION_ID OPERATOR(pg_catalog.=) 'MASTER_SESSION_ID' THEN TRUE ELSE "
    "FALSE END, CPU, COALESCE(REPLICA_LAG_IN_MSEC, 0), LAST_UPDATE_TIMESTAMP FROM "
    "pg_catalog.aurora_replica_status() WHERE EXTRACT(EPOCH FROM(pg_catalog.NOW() OPERATOR(pg_catalog.-) "
    "LAST_UPDATE_TIMESTAMP)) OPERATOR(pg_catalog.<=) 300 OR SESSION_ID OPERATOR(pg_catalog.=) "
    "'MASTER_SESSION_ID' OR LAST_UPDATE_TIMESTAMP IS NULL"
)
AURORA_REPLICA_STATUS_COLUMNS = [
    "server_id", "session_id", "durable_lsn", "highest_lsn_rcvd", "current_read_lsn",
    "cur_replay_latency_in_usec", "active_txns", "is_current", "last_transport_error",
    "last_error_timestamp", "last_update_timestamp", "feedback_xmin", "feedback_epoch",
    "replica_lag_in_msec", "log_stream_speed_in_kib_per_second", "log_buffer_sequence_number",
    "oldest_read_view_trx_id", "oldest_read_view_lsn", "pending_read_ios", "read_ios", "iops", "cpu",
]  # fmt: skip
AURORA_HOST_ID_SQL = (
    "SELECT pg_catalog.aurora_db_instance_identifier(), pg_catalog.aurora_db_instance_identifier()"
)
AURORA_WRITER_ID_SQL = (
    "SELECT SERVER_ID FROM pg_catalog.aurora_replica_status() WHERE SESSION_ID OPERATOR(pg_catalog.=) "
    "'MASTER_SESSION_ID' AND SERVER_ID OPERATOR(pg_catalog.=) pg_catalog.aurora_db_instance_identifier()"
)
AURORA_DETECT_SQL = (
    "SELECT (setting LIKE '%aurora_stat_utils%') AS aurora_stat_utils FROM pg_catalog.pg_settings "
    "WHERE name OPERATOR(pg_catalog.=) 'rds.extensions'"
)
RDS_DETECT_SQL = (
    "SELECT (setting LIKE '%rds_tools%') AS rds_tools, (setting LIKE '%aurora_stat_utils%') AS "
    "aurora_stat_utils FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'rds.extensions'"
)
IS_READER_SQL = "SELECT pg_catalog.pg_is_in_recovery()"
MULTI_AZ_DETECT_SQL = (
    "SELECT multi_az_db_cluster_source_dbi_resource_id FROM "
    "rds_tools.multi_az_db_cluster_source_dbi_resource_id()"
)
MULTI_AZ_TOPOLOGY_SQL = "SELECT id, endpoint, port FROM rds_tools.show_topology('aws_python_driver-3.1.0')"
MULTI_AZ_HOST_ID_SQL = (
    "SELECT id, SUBSTRING(endpoint FROM 0 FOR POSITION('.' IN endpoint)) FROM rds_tools.show_topology() "
    "WHERE id OPERATOR(pg_catalog.=) rds_tools.dbi_resource_id()"
)
# JDBC's writer query: a row on a reader, none on the writer.
MULTI_AZ_WRITER_SQL = (
    "SELECT multi_az_db_cluster_source_dbi_resource_id FROM "
    "rds_tools.multi_az_db_cluster_source_dbi_resource_id() WHERE "
    "multi_az_db_cluster_source_dbi_resource_id OPERATOR(pg_catalog.!=) "
    "(SELECT dbi_resource_id FROM rds_tools.dbi_resource_id())"
)


async def execute(dsn: str, *statements: str) -> None:
    conn = await connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement, timeout=CONNECT_TIMEOUT)
    finally:
        await conn.close(timeout=CONNECT_TIMEOUT)


async def has_table(dsn: str, table: str) -> bool:
    return await fetchval(dsn, f"SELECT to_regclass('{table}') IS NOT NULL") is True


async def wait_for_table(dsn: str, table: str, *, timeout: float = 10.0) -> None:
    """Wait until ``table`` has replicated to the server behind ``dsn``."""
    await eventually(lambda: has_table(dsn, table), timeout=timeout, what=f"{table} at {dsn}")


async def assert_writer_replicates(sim: AuroraSimulator, table: str = "replication_probe") -> None:
    """Create ``table`` on the writer; every replica must receive it."""
    await execute(sim.dsn(sim.writer_id), f"CREATE TABLE {table}(x int)")
    for reader in sim.reader_ids:
        await wait_for_table(sim.dsn(reader), table)


class LoopbackServer:
    """A TCP server on loopback for a test that owns every connection it accepts: each gets its
    task the moment it is made, and leaving ``async with`` closes the server, aborts every
    connection (and every :meth:`own`-ed one), and waits for every task, so nothing is left open
    for a later test's garbage collection to report. ``async with`` gives its port. Subclasses
    implement :meth:`serve`."""

    def __init__(self, host: str = "127.0.0.1", sock: socket.socket | None = None) -> None:
        self.host = host
        self._sock = sock
        self._server: asyncio.Server | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        if self._sock is not None:
            self._server = await asyncio.start_server(self._accepted, sock=self._sock)
        else:
            self._server = await asyncio.start_server(self._accepted, self.host, 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._closing = True  # an accept still under way is aborted as it completes
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        assert not self._tasks, f"{len(self._tasks)} connection tasks did not end"
        await self._server.wait_closed()

    async def __aenter__(self) -> int:
        await self.start()
        return self.port

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def own(self, writer: asyncio.StreamWriter) -> None:
        """Abort ``writer`` too when the server stops (e.g. a connection :meth:`serve` opened)."""
        self._writers.add(writer)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.transport.abort()
            return
        self.own(writer)
        task = asyncio.get_running_loop().create_task(self._run(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.serve(reader, writer)
        except OSError:
            pass
        finally:
            writer.close()  # (flushed: a test's "close" is a FIN; stop() aborts what is left)


class Forwarder(LoopbackServer):
    """``async with Forwarder(listen_host, target) as port:`` a TCP forwarder on loopback: every
    connection to ``listen_host:port`` is piped to ``target`` (``"host:port"``). It stands for an
    address that leads to an instance for a while (a network path, a DNS name), then stops: leaving
    the block closes it and every connection through it."""

    def __init__(self, listen_host: str, target: str) -> None:
        super().__init__(listen_host)
        self.target_host, port = target.rsplit(":", 1)
        self.target_port = int(port)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        self.own(up_writer)
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()


async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy ``source`` to ``sink`` until ``source`` ends, then close ``sink``."""
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        sink.close()
