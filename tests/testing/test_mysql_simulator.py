"""The simulator with ``engine="mysql"``: real MariaDB servers with GTID replication behind the fault
proxies, Aurora MySQL's SQL (verbatim, as aws-advanced-python-wrapper's Aurora MySQL dialect sends it)
and RDS Multi-AZ's ``mysql.rds_topology``, observed with plain aiomysql."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomysql
import pymysql
import pytest
import pytest_asyncio

from aurora_async.testing import AuroraSimulator, FailoverDelays, SimulatorError
from aurora_async.testing.__main__ import _parser
from aurora_async.testing.mysql._catalog import rewrite_aurora_sql
from aurora_async.testing.mysql._iam import PAM_SERVICE, PAM_SERVICE_TEXT, ensure_pam_service
from aurora_async.testing.proxy._mysql_wire import ClientPackets, is_commit_packet
from tests.helpers import Leftovers, eventually, processes_mentioning

# the async tests share the event loop of the module-scoped simulators
module_loop = pytest.mark.asyncio(loop_scope="module")

DELAYS = FailoverDelays(promotion=0.05, topology=0.02, replica_restart=0.05, rejoin=0.05)
TIMEOUT = 5.0

# Aurora MySQL, verbatim (the trailing space of the topology query included)
DETECT_SQL = "SHOW VARIABLES LIKE 'aurora_version'"
TOPOLOGY_SQL = (
    "SELECT SERVER_ID, CASE WHEN SESSION_ID = 'MASTER_SESSION_ID' THEN TRUE ELSE FALSE END, CPU, "
    "REPLICA_LAG_IN_MILLISECONDS, LAST_UPDATE_TIMESTAMP FROM information_schema.replica_host_status "
    "WHERE time_to_sec(timediff(now(), LAST_UPDATE_TIMESTAMP)) <= 300 OR SESSION_ID = 'MASTER_SESSION_ID' "
)
HOST_ID_SQL = "SELECT @@aurora_server_id, @@aurora_server_id"
IS_READER_SQL = "SELECT @@innodb_read_only"
WRITER_ID_SQL = (
    "SELECT SERVER_ID FROM information_schema.replica_host_status "
    "WHERE SESSION_ID = 'MASTER_SESSION_ID' AND SERVER_ID = @@aurora_server_id"
)
# RDS Multi-AZ DB cluster (MySQL)
MULTI_AZ_TOPOLOGY_SQL = "SELECT id, endpoint, port FROM mysql.rds_topology"
MULTI_AZ_HOST_ID_SQL = (
    "SELECT id, SUBSTRING_INDEX(endpoint, '.', 1) FROM mysql.rds_topology WHERE id = @@server_id"
)
REPORT_HOST_SQL = "SHOW VARIABLES LIKE 'report_host'"

READ_ONLY = 1290  # ER_OPTION_PREVENTS_STATEMENT: --read-only
LOST = 2013  # CR_SERVER_LOST
CANNOT_CONNECT = 2003  # CR_CONN_HOST_ERROR
ACCESS_DENIED = 1045
CONNECTION_ERRORS = (pymysql.err.Error, OSError, TimeoutError)


# -- plain aiomysql ------------------------------------------------------------------------------------


async def connect(dsn: str, timeout: float = TIMEOUT, **overrides: Any) -> Any:
    parts = urlsplit(dsn)
    options: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "db": parts.path.lstrip("/"),
        "autocommit": True,
        "connect_timeout": timeout,
        **overrides,
    }
    async with asyncio.timeout(timeout):
        return await aiomysql.connect(**options)


async def fetch(conn: Any, query: str, args: Any = None) -> list[tuple[Any, ...]]:
    async with asyncio.timeout(TIMEOUT), conn.cursor() as cursor:
        await cursor.execute(query, args)
        return list(await cursor.fetchall())


async def rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    conn = await connect(dsn)
    try:
        return await fetch(conn, query)
    finally:
        conn.close()


async def value(dsn: str, query: str) -> Any:
    result = await rows(dsn, query)
    return result[0][0] if result else None


async def execute(dsn: str, *statements: str) -> None:
    conn = await connect(dsn)
    try:
        for statement in statements:
            await fetch(conn, statement)
    finally:
        conn.close()


def as_root(sim: AuroraSimulator, instance_id: str) -> str:
    """The server itself, bypassing its proxy, as MariaDB's root (what the tests use to break things)."""
    return f"mysql://root@{sim.server_endpoint(instance_id)}/mysql"


async def count(dsn: str, table: str = "ledger") -> int:
    return int(await value(dsn, f"SELECT COUNT(*) FROM {table}"))


async def has_rows(dsn: str, expected: int, table: str = "ledger") -> bool:
    try:
        return await count(dsn, table) == expected
    except pymysql.err.ProgrammingError:  # the table has not replicated yet
        return False


def errno(exc: BaseException) -> int | None:
    return exc.args[0] if isinstance(exc, pymysql.err.Error) and exc.args else None


# -- fixtures ------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[AuroraSimulator]:
    """One Aurora-mode cluster for the tests that leave roles and membership as they found them."""
    async with AuroraSimulator("mysql", 3, dns_delay=0.2, delays=DELAYS) as simulator:
        yield simulator


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def failover_sim() -> AsyncIterator[AuroraSimulator]:
    """A cluster whose writer the failover tests move around (each starts from the current writer)."""
    async with AuroraSimulator("mysql", 3, dns_delay=1.0, delays=DELAYS) as simulator:
        yield simulator


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """A short private directory for the simulator's temp dir (Unix socket paths must stay short)."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="sim-test-", dir=parent))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- no server: the proxy's view of the protocol -------------------------------------------------------


def _packet(payload: bytes, sequence: int = 0) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


def _handshake(capabilities: int = 0x000FA685) -> bytes:
    return _packet(capabilities.to_bytes(4, "little") + b"\0" * 28 + b"admin\0", sequence=1)


def test_rewrite_substitutes_aurora_names_outside_literals() -> None:
    assert rewrite_aurora_sql(HOST_ID_SQL.encode(), "12") == b"SELECT '12', '12'"
    assert (
        rewrite_aurora_sql(b"select @@Aurora_Version, AURORA_VERSION()", "12") == b"select '3.05.2', '3.05.2'"
    )
    assert rewrite_aurora_sql(IS_READER_SQL.encode(), "12") == b"SELECT @@global.read_only"
    assert rewrite_aurora_sql(b"show global variables like 'aurora_version';", "12") == (
        b"SELECT 'aurora_version' AS Variable_name, '3.05.2' AS Value"
    )
    assert rewrite_aurora_sql(b"SELECT * FROM `information_schema`.`replica_host_status`", "12") == (
        b"SELECT * FROM aurora_sim.replica_host_status"
    )
    untouched = (
        b"SELECT '@@aurora_server_id', \"information_schema.replica_host_status\" /* @@aurora_version */"
    )
    assert rewrite_aurora_sql(untouched, "12") is untouched
    plain = b"SELECT @@server_id FROM information_schema.tables"
    assert rewrite_aurora_sql(plain, "12") is plain


def test_client_packets_are_reassembled_rewritten_and_resized() -> None:
    rewrite_for_12 = lambda sql: rewrite_aurora_sql(sql, "12")  # noqa: E731
    packets = ClientPackets(rewrite_for_12)
    stream = _handshake() + _packet(b"\x03" + HOST_ID_SQL.encode()) + _packet(b"\x0e")  # COM_PING
    out = b"".join(packets.feed(stream[i : i + 1])[0] for i in range(len(stream)))  # byte by byte
    assert out == _handshake() + _packet(b"\x03SELECT '12', '12'") + _packet(b"\x0e")
    # a packet of 16 MiB or more passes untouched, as do its continuations
    big = (0xFFFFFF).to_bytes(3, "little") + b"\0\x03" + b"@@aurora_version" + b" " * 100
    forwarded, _ = packets.feed(big)
    assert forwarded == big and packets.passing == 0xFFFFFF + 4 - len(big)


def test_tls_and_compressed_connections_pass_untouched() -> None:
    for flag in (0x800, 0x20):
        packets = ClientPackets(lambda sql: b"REWRITTEN")
        stream = _handshake(0x000FA685 | flag) + _packet(b"\x03SELECT @@aurora_server_id")
        assert packets.feed(stream) == (stream, False)


def test_commit_packets_are_recognised() -> None:
    assert is_commit_packet(_packet(b"\x03COMMIT"))
    assert is_commit_packet(_packet(b"\x03 commit work ;"))
    assert not is_commit_packet(_packet(b"\x03COMMIT", sequence=1))
    assert not is_commit_packet(_packet(b"\x03SELECT 'COMMIT'"))
    assert not is_commit_packet(_packet(b"\x16COMMIT"))
    packets = ClientPackets()
    assert packets.feed(_handshake()) == (_handshake(), False)
    assert packets.feed(_packet(b"\x03COMMIT")) == (_packet(b"\x03COMMIT"), True)


def test_cli_accepts_the_mysql_engine() -> None:
    args = _parser().parse_args(["up", "--engine", "mysql"])
    assert (args.engine, args.user, args.database) == ("mysql", None, None)


def test_bad_options_are_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        AuroraSimulator("oracle")


# -- lifecycle -----------------------------------------------------------------------------------------


@module_loop
async def test_start_and_stop_leave_nothing_behind(base_dir: Path) -> None:
    started = time.monotonic()
    async with AuroraSimulator("mysql", 3, base_dir=base_dir, delays=DELAYS) as simulator:
        startup = time.monotonic() - started
        leftovers = Leftovers(simulator)
        assert simulator.engine == "mysql" and simulator.root.parent == base_dir
        assert len(simulator.process_ids) == 4  # three mariadbd and the proxy
        port = simulator.port
        assert simulator.dsn("cluster") == f"mysql://admin@{simulator.cluster_endpoint}/app"
        assert simulator.dsn("13") == f"mysql://admin@127.0.42.13:{port}/app"
        assert simulator.instance_host_pattern == f"127.0.42.?:{port}"
        assert await value(simulator.dsn("cluster"), "SELECT @@server_id") == 11
        assert await value(simulator.dsn("13"), "SELECT @@server_id") == 13
        servers = simulator.process_ids[:3]
        owners = {Path(f"/proc/{pid}").stat().st_uid for pid in servers}
        assert 0 not in owners or os.geteuid() != 0, "a server runs as root"
    await leftovers.assert_none()
    assert list(base_dir.iterdir()) == [], "the simulator left files behind"
    assert processes_mentioning(str(base_dir)) == []
    assert startup < 10, f"a 3-instance cluster took {startup:.1f} s to start"


def _installing(base_dir: Path) -> bool:
    return any(base_dir.glob("*/template/mysql"))


def _servers_starting(base_dir: Path) -> bool:
    return any(base_dir.glob("*/instance-13/server.log"))


@pytest.mark.parametrize("stage", [_installing, _servers_starting])
@module_loop
async def test_cancellation_during_start_up_leaves_nothing_behind(
    base_dir: Path, stage: Callable[[Path], bool]
) -> None:
    async def body() -> None:
        async with AuroraSimulator("mysql", 3, base_dir=base_dir):
            pytest.fail("start-up should have been cancelled")

    task = asyncio.ensure_future(body())

    async def reached() -> bool:
        return stage(base_dir)

    await eventually(reached, timeout=30, what=stage.__name__)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(base_dir.iterdir()) == [], "the simulator left files behind"
    assert processes_mentioning(str(base_dir)) == []


# -- Aurora MySQL's SQL ---------------------------------------------------------------------------------


@module_loop
async def test_aurora_mysql_sql_through_every_endpoint(sim: AuroraSimulator) -> None:
    for target, instance_id in (("cluster", "11"), ("11", "11"), ("12", "12"), ("13", "13")):
        dsn = sim.dsn(target)
        assert await rows(dsn, DETECT_SQL) == [("aurora_version", "3.05.2")]
        assert await rows(dsn, HOST_ID_SQL) == [(instance_id, instance_id)]
        assert await value(dsn, IS_READER_SQL) == (0 if instance_id == "11" else 1)
        assert await rows(dsn, WRITER_ID_SQL) == ([("11",)] if instance_id == "11" else [])
        topology = await rows(dsn, TOPOLOGY_SQL)
        assert [(r[0], r[1]) for r in topology] == [("11", 1), ("12", 0), ("13", 0)]
        now = await value(dsn, "SELECT NOW(6)")
        assert all(abs((now - r[4]).total_seconds()) < 2 for r in topology)  # running: fresh
        assert all(isinstance(r[2], float) and isinstance(r[3], float) for r in topology)
    assert await value(sim.dsn("reader"), HOST_ID_SQL) in ("12", "13")


@module_loop
async def test_only_the_query_text_outside_literals_is_rewritten(sim: AuroraSimulator) -> None:
    assert await rows(sim.dsn("12"), "select '@@aurora_server_id', @@AURORA_SERVER_ID, @@server_id") == [
        ("@@aurora_server_id", "12", 12)
    ]
    columns = await rows(
        sim.dsn("13"),
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'aurora_sim' "
        "AND table_name = 'replica_host_status' ORDER BY ordinal_position",
    )
    assert len(columns) == 23 and columns[0] == ("SERVER_ID",)


@module_loop
async def test_replicas_are_read_only_for_the_dsn_user(sim: AuroraSimulator) -> None:
    await execute(
        sim.dsn("cluster"), "CREATE TABLE rw_probe(id INT PRIMARY KEY)", "INSERT INTO rw_probe VALUES (1)"
    )
    for replica in ("12", "13"):
        with pytest.raises(pymysql.err.OperationalError) as caught:
            await execute(sim.dsn(replica), "INSERT INTO rw_probe VALUES (2)")
        assert errno(caught.value) == READ_ONLY and "--read-only" in str(caught.value)
        await eventually(
            functools.partial(has_rows, sim.dsn(replica), 1, "rw_probe"), what=f"rw_probe on {replica}"
        )
        status = await rows(sim.dsn(replica), "SHOW REPLICA STATUS")  # SLAVE MONITOR is granted
        assert status and status[0][1] == "127.0.42.11"
    assert await value(sim.dsn("11"), "SELECT @@read_only") == 0
    grants = " ".join(r[0] for r in await rows(sim.dsn("11"), "SHOW GRANTS"))
    assert "SUPER" not in grants and "READ ONLY ADMIN" not in grants and "ON *.* TO" in grants


@module_loop
async def test_set_password_makes_a_user_log_in_with_it(sim: AuroraSimulator) -> None:
    await sim.set_password("alice", "s3cret:/@")
    dsn = sim.dsn("cluster").replace("admin@", "alice:s3cret%3A%2F%40@")
    assert await value(dsn, "SELECT CURRENT_USER()") == "alice@%"
    with pytest.raises(pymysql.err.OperationalError) as caught:
        await connect(sim.dsn("cluster").replace("admin@", "alice:wrong@"))
    assert errno(caught.value) == ACCESS_DENIED


# -- faults ----------------------------------------------------------------------------------------------


@module_loop
async def test_crash_resets_connections_and_restore_rejoins(sim: AuroraSimulator) -> None:
    conn = await connect(sim.dsn("13"))
    try:
        await sim.crash("13")
        with pytest.raises(pymysql.err.OperationalError) as caught:
            await fetch(conn, "SELECT 1")
        assert errno(caught.value) == LOST
    finally:
        conn.close()
    with pytest.raises(pymysql.err.OperationalError) as refused:
        await connect(sim.dsn("13"))
    assert errno(refused.value) == CANNOT_CONNECT
    frozen = {r[0]: r[4] for r in await rows(sim.dsn("cluster"), TOPOLOGY_SQL)}["13"]
    await execute(sim.dsn("cluster"), "CREATE TABLE while_down(id INT)", "INSERT INTO while_down VALUES (1)")
    await eventually(lambda: has_rows(sim.dsn("12"), 1, "while_down"), what="12 to replicate")
    topology = {r[0]: r[4] for r in await rows(sim.dsn("12"), TOPOLOGY_SQL)}
    assert topology["13"] == frozen < topology["12"]  # a stopped instance's status stops updating

    await sim.restore("13")
    assert sim.instances["13"].running and sim.instances["13"].role == "reader"
    await eventually(lambda: has_rows(sim.dsn("13"), 1, "while_down"), what="13 to catch up")


@module_loop
async def test_blackhole_hangs_and_restore_resumes(sim: AuroraSimulator) -> None:
    conn = await connect(sim.dsn("12"))
    try:
        await sim.blackhole("12")
        pending = asyncio.ensure_future(fetch(conn, "SELECT @@server_id"))
        done, _ = await asyncio.wait([pending], timeout=0.3)
        assert not done, "a query went through a black hole"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await aiomysql.connect(host="127.0.42.12", port=sim.port, user="admin", connect_timeout=5)
        await sim.restore("12")
        assert await pending == [(12,)]
    finally:
        conn.close()
    assert await value(sim.dsn("12"), "SELECT 1") == 1


@module_loop
async def test_latency_is_added_to_every_round_trip(sim: AuroraSimulator) -> None:
    conn = await connect(sim.dsn("12"))
    try:
        await sim.latency("12", 1.0)
        started = time.monotonic()
        await fetch(conn, "SELECT 1")
        assert time.monotonic() - started >= 0.99
        await sim.latency("12", 0)
        started = time.monotonic()
        await fetch(conn, "SELECT 1")
        assert time.monotonic() - started < 0.5  # the 1 s delay is gone
    finally:
        conn.close()


@module_loop
async def test_reboot_of_a_replica_drops_connections_and_keeps_its_role(sim: AuroraSimulator) -> None:
    conn = await connect(sim.dsn("12"))
    try:
        await sim.reboot("12")
        with pytest.raises(pymysql.err.Error):
            await fetch(conn, "SELECT 1")
    finally:
        conn.close()
    assert sim.instances["12"].role == "reader" and sim.instances["12"].running
    assert await value(sim.dsn("12"), IS_READER_SQL) == 1
    await execute(
        sim.dsn("cluster"), "CREATE TABLE after_reboot(id INT)", "INSERT INTO after_reboot VALUES (1)"
    )
    await eventually(lambda: has_rows(sim.dsn("12"), 1, "after_reboot"), what="12 to replicate")


@module_loop
async def test_reset_connections_cuts_open_connections_only(sim: AuroraSimulator) -> None:
    conn = await connect(sim.dsn("11"))
    try:
        await sim.reset_connections("11")
        with pytest.raises(pymysql.err.OperationalError) as caught:
            await fetch(conn, "SELECT 1")
        assert errno(caught.value) == LOST
    finally:
        conn.close()
    assert await value(sim.dsn("11"), "SELECT 1") == 1


@module_loop
async def test_drop_after_commit_commits_but_never_tells_the_client(sim: AuroraSimulator) -> None:
    await execute(sim.dsn("cluster"), "CREATE TABLE dropped(id INT PRIMARY KEY)")
    conn = await connect(sim.dsn("cluster"), autocommit=False)
    try:
        await fetch(conn, "INSERT INTO dropped VALUES (1)")
        await sim.drop_after_commit("11")
        with pytest.raises(pymysql.err.OperationalError) as caught:
            async with asyncio.timeout(TIMEOUT):
                await conn.commit()
        assert errno(caught.value) == LOST
    finally:
        conn.close()
    assert await count(sim.dsn("cluster"), "dropped") == 1
    assert (await sim.proxy_status())["backends"]["11"]["armed"] is None


@module_loop
async def test_add_and_remove_an_instance(sim: AuroraSimulator) -> None:
    await execute(sim.dsn("cluster"), "CREATE TABLE before_add(id INT)", "INSERT INTO before_add VALUES (7)")
    await eventually(lambda: has_rows(sim.dsn("12"), 1, "before_add"), what="12 to replicate")
    # like information_schema, the topology is read fresh even inside a transaction's snapshot
    in_transaction = await connect(sim.dsn("12"), autocommit=False)
    try:
        assert await fetch(in_transaction, "SELECT COUNT(*) FROM before_add") == [(1,)]
        new_id = await sim.add_instance()

        async def listed() -> bool:  # once replication brought the new topology to 12 (asynchronous)
            return [r[0] for r in await fetch(in_transaction, TOPOLOGY_SQL)] == ["11", "12", "13", "14"]

        await eventually(listed, what="the new instance in 12's topology, inside its transaction")
    finally:
        in_transaction.close()
    try:
        assert new_id == "14" and sim.reader_ids == ["12", "13", "14"]
        assert await rows(sim.dsn(new_id), HOST_ID_SQL) == [("14", "14")]
        assert await value(sim.dsn(new_id), "SELECT id FROM before_add") == 7
        assert await value(sim.dsn(new_id), IS_READER_SQL) == 1
        assert [r[0] for r in await rows(sim.dsn("cluster"), TOPOLOGY_SQL)] == ["11", "12", "13", "14"]
        await execute(sim.dsn("cluster"), "INSERT INTO before_add VALUES (8)")
        await eventually(lambda: has_rows(sim.dsn(new_id), 2, "before_add"), what="14 to replicate")
    finally:
        await sim.remove_instance(new_id)
    assert sim.instance_ids == ["11", "12", "13"]
    assert [r[0] for r in await rows(sim.dsn("cluster"), TOPOLOGY_SQL)] == ["11", "12", "13"]


# -- failover -------------------------------------------------------------------------------------------


@dataclass
class WriteLog:
    acknowledged: set[int] = field(default_factory=set)
    unknown: set[int] = field(default_factory=set)  # sent, then the connection broke
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))


async def _writer(dsn: str, log: WriteLog, stop: asyncio.Event) -> None:
    """Insert rows one at a time (autocommit) through ``dsn`` until ``stop``; reconnect after failures."""
    while not stop.is_set():
        try:
            conn = await connect(dsn, timeout=2)
        except CONNECTION_ERRORS:
            await asyncio.sleep(0.02)
            continue
        try:
            while not stop.is_set():
                row_id = next(log.ids)
                try:
                    await fetch(conn, "INSERT INTO ledger VALUES (%s)", (row_id,))
                except CONNECTION_ERRORS as exc:
                    if errno(exc) != READ_ONLY:  # a stale endpoint led to a replica: nothing written
                        log.unknown.add(row_id)
                    break
                log.acknowledged.add(row_id)
        finally:
            conn.close()


async def _at_least(log: WriteLog, n: int) -> bool:
    return len(log.acknowledged) >= n


@module_loop
async def test_crash_failover_keeps_every_acknowledged_commit(failover_sim: AuroraSimulator) -> None:
    sim = failover_sim
    await sim.wait_dns_settled()  # the writer endpoint leads to the writer
    old = sim.writer_id
    await execute(sim.dsn("cluster"), "CREATE TABLE ledger(id BIGINT PRIMARY KEY)")
    log, stop = WriteLog(), asyncio.Event()
    writers = [asyncio.ensure_future(_writer(sim.dsn("cluster"), log, stop)) for _ in range(6)]
    # the stale-endpoint checks below must run before the DNS delay ends, and on a loaded machine the
    # failover sequence (rejoin included) has taken more than the module's 1 s
    saved_delay, sim.dns_delay = sim.dns_delay, 2.5
    try:
        await eventually(lambda: _at_least(log, 300), timeout=20, what="writes before the failover")
        report = await sim.failover()
        new = report.new_writer
        assert report.old_writer == old and new != old and sim.writer_id == new
        steps = [e.step for e in report.events if e.step != "endpoint DNS updated"]
        assert steps == [
            "writer lost",
            "replica promoted",
            "topology updated",
            "replicas re-pointed",
            "old writer rejoined",
        ]
        promoted = next(e.at for e in report.events if e.step == "replica promoted")
        due = next(e.at for e in report.events if e.step == "endpoint DNS updated")
        assert due == pytest.approx(promoted + sim.dns_delay)
        # the topology names the new writer at once; the writer endpoint is stale until the DNS delay
        assert await rows(sim.dsn(new), WRITER_ID_SQL) == [(new,)]
        assert [r[0] for r in await rows(sim.dsn(new), TOPOLOGY_SQL) if r[1]] == [new]
        assert await value(sim.dsn("cluster"), "SELECT @@server_id") == int(old)
        assert time.monotonic() < due, "the checks ran past the DNS delay; they prove nothing"
        await sim.wait_dns_settled()
        assert time.monotonic() >= due
        assert await rows(sim.dsn("cluster"), HOST_ID_SQL) == [(new, new)]
        after = len(log.acknowledged)
        await eventually(lambda: _at_least(log, after + 300), timeout=20, what="writes on the new writer")
    finally:
        sim.dns_delay = saved_delay
        stop.set()
        await asyncio.gather(*writers)

    present = {r[0] for r in await rows(sim.dsn(new), "SELECT id FROM ledger")}
    assert not log.acknowledged - present, f"{len(log.acknowledged - present)} acknowledged commits lost"
    assert not present - log.acknowledged - log.unknown, "rows nobody wrote"
    # the old writer is a read-only replica of the new one and has every row
    assert await value(sim.dsn(old), IS_READER_SQL) == 1
    with pytest.raises(pymysql.err.OperationalError) as caught:
        await execute(sim.dsn(old), "INSERT INTO ledger VALUES (0)")
    assert errno(caught.value) == READ_ONLY
    for instance_id in sim.instance_ids:
        await eventually(
            functools.partial(has_rows, sim.dsn(instance_id), len(present)), what=f"rows on {instance_id}"
        )


@module_loop
async def test_switchover_moves_the_writer_cleanly(failover_sim: AuroraSimulator) -> None:
    sim = failover_sim
    await sim.wait_dns_settled()  # the writer endpoint leads to the writer
    old = sim.writer_id
    conn = await connect(sim.dsn(old))
    try:
        query = asyncio.ensure_future(fetch(conn, "SELECT SLEEP(30)"))
        started = time.monotonic()
        report = await sim.switchover()
        with pytest.raises(pymysql.err.Error):  # the clean shutdown ends the session
            await query
        assert time.monotonic() - started < 10
    finally:
        conn.close()
    new = report.new_writer
    assert [e.step for e in report.events][0] == "writer stopped"
    assert "(GTID)" in next(e.detail for e in report.events if e.step == "old writer rejoined")
    assert sim.instances[old].role == "reader" and sim.writer_id == new
    assert await value(sim.dsn(new), IS_READER_SQL) == 0
    assert await value(sim.dsn(old), IS_READER_SQL) == 1
    await execute(
        sim.dsn(new), "CREATE TABLE after_switchover(id INT)", "INSERT INTO after_switchover VALUES (1)"
    )
    for reader in sim.reader_ids:
        await eventually(
            functools.partial(has_rows, sim.dsn(reader), 1, "after_switchover"), what=f"rows on {reader}"
        )


@module_loop
async def test_a_lagging_target_catches_up_before_its_promotion(failover_sim: AuroraSimulator) -> None:
    sim = failover_sim
    await sim.wait_dns_settled()  # the writer endpoint leads to the writer
    lagging, other = sim.reader_ids
    await execute(as_root(sim, lagging), "STOP SLAVE")
    await execute(sim.dsn("cluster"), "CREATE TABLE lag_probe(id INT PRIMARY KEY)")
    await execute(sim.dsn("cluster"), *(f"INSERT INTO lag_probe VALUES ({i})" for i in range(100)))
    assert not await has_rows(sim.dsn(lagging), 100, "lag_probe")
    report = await sim.failover(target=lagging)
    assert report.new_writer == lagging
    assert "replica caught up" in [e.step for e in report.events]
    assert await count(sim.dsn(lagging), "lag_probe") == 100
    await eventually(lambda: has_rows(sim.dsn(other), 100, "lag_probe"), what=f"rows on {other}")


@module_loop
async def test_an_old_writer_with_unacknowledged_commits_is_rebuilt(failover_sim: AuroraSimulator) -> None:
    sim = failover_sim
    await sim.wait_dns_settled()  # the writer endpoint leads to the writer
    old = sim.writer_id
    await execute(sim.dsn("cluster"), "CREATE TABLE divergence(id INT PRIMARY KEY)")
    for reader in sim.reader_ids:
        await eventually(
            functools.partial(has_rows, sim.dsn(reader), 0, "divergence"), what=f"table on {reader}"
        )
        await execute(as_root(sim, reader), "STOP SLAVE")
    # the commit reaches the writer's binary log, then waits for a replica's acknowledgement forever
    conn = await connect(sim.dsn(old))
    try:
        insert = asyncio.ensure_future(fetch(conn, "INSERT INTO divergence VALUES (1)"))

        async def waiting() -> bool:
            status = await rows(as_root(sim, old), "SHOW STATUS LIKE 'Rpl_semi_sync_master_wait_sessions'")
            return status == [("Rpl_semi_sync_master_wait_sessions", "1")]

        await eventually(waiting, what="the commit to wait for a replica")
        report = await sim.failover()
        with pytest.raises(pymysql.err.OperationalError) as caught:
            await insert
        assert errno(caught.value) == LOST  # unacknowledged: the client cannot know
    finally:
        conn.close()
    rejoined = next(e.detail for e in report.events if e.step == "old writer rejoined")
    assert "rebuilt from mariadb-dump" in rejoined
    assert await count(sim.dsn(report.new_writer), "divergence") == 0
    assert await count(sim.dsn(old), "divergence") == 0  # the divergent row is gone
    assert await value(sim.dsn(old), IS_READER_SQL) == 1
    await execute(sim.dsn(report.new_writer), "INSERT INTO divergence VALUES (2)")
    await eventually(lambda: has_rows(sim.dsn(old), 1, "divergence"), what="the rebuilt replica to replicate")


@module_loop
async def test_failover_rejects_bad_targets(failover_sim: AuroraSimulator) -> None:
    sim = failover_sim
    with pytest.raises(SimulatorError, match="is the writer already"):
        await sim.failover(target=sim.writer_id)
    with pytest.raises(SimulatorError, match="unknown instance '99'"):
        await sim.failover(target="99")


# -- RDS Multi-AZ DB cluster ----------------------------------------------------------------------------


@module_loop
async def test_multi_az_topology_is_native_mariadb() -> None:
    async with AuroraSimulator(
        "mysql", 3, topology="multi-az", password="p@ss:w/rd", dns_delay=0, delays=DELAYS
    ) as simulator:
        assert simulator.dsn("cluster").startswith("mysql://admin:p%40ss%3Aw%2Frd@")
        tag_rows = await rows(simulator.dsn("12"), MULTI_AZ_TOPOLOGY_SQL)
        assert [(r[0], r[1].split(".")[0], r[2]) for r in tag_rows] == [
            (11, "11", simulator.port),
            (12, "12", simulator.port),
            (13, "13", simulator.port),
        ]
        assert all(r[1].endswith(".sim.invalid") for r in tag_rows)
        for instance_id in simulator.instance_ids:
            dsn = simulator.dsn(instance_id)
            assert await rows(dsn, MULTI_AZ_HOST_ID_SQL) == [(int(instance_id), instance_id)]
            report_host = await rows(dsn, REPORT_HOST_SQL)
            assert report_host and report_host[0][1].startswith(f"{instance_id}.")
            assert await rows(dsn, DETECT_SQL) == []  # no rewriting outside Aurora mode
        assert await rows(simulator.dsn("11"), "SHOW REPLICA STATUS") == []
        replica_status = await rows(simulator.dsn("12"), "SHOW REPLICA STATUS")
        assert replica_status[0][39] == 11  # Master_Server_Id, as the Multi-AZ dialect reads it

        report = await simulator.switchover(target="13")
        assert report.new_writer == "13"
        assert await rows(simulator.dsn("13"), "SHOW REPLICA STATUS") == []
        for replica in ("11", "12"):
            status = await rows(simulator.dsn(replica), "SHOW REPLICA STATUS")
            assert status[0][39] == 13


# -- TLS and IAM users ---------------------------------------------------------------------------------


def test_the_tls_request_stops_the_parser_when_the_proxy_ends_tls() -> None:
    ssl_request = _packet((0x000FA685 | 0x800).to_bytes(4, "little") + b"\0" * 28, sequence=1)
    packets = ClientPackets(lambda sql: b"REWRITTEN", end_tls=True)
    assert packets.feed(ssl_request[:10]) == (b"", False)  # waits for the whole SSLRequest
    assert packets.feed(ssl_request[10:] + b"\x16\x03\x01hello") == (ssl_request, False)
    assert packets.tls_start == b"\x16\x03\x01hello"  # the TLS handshake that followed
    # what comes next is the plain text from inside TLS: the handshake response, then commands
    query = _packet(b"\x03SELECT @@aurora_server_id")
    response = _packet(b"\x01" * 40, sequence=2)
    assert packets.feed(response + query) == (response + _packet(b"\x03REWRITTEN"), False)


SSL_CIPHER_SQL = (
    "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_CIPHER'"
)


@module_loop
async def test_tls_cluster_verifies_and_keeps_rewriting_and_dropping_inside_tls(base_dir: Path) -> None:
    async with AuroraSimulator("mysql", 2, base_dir=base_dir, delays=DELAYS, tls=True) as tls_sim:
        assert tls_sim.tls_root_cert is not None
        context = ssl.create_default_context(cafile=str(tls_sim.tls_root_cert))
        for endpoint in ("cluster", "reader", "11", "12"):
            conn = await connect(tls_sim.dsn(endpoint), ssl=context)
            try:
                [(cipher,)] = await fetch(conn, SSL_CIPHER_SQL)
                assert cipher  # the server's session is TLS too
                assert [r[0] for r in await fetch(conn, TOPOLOGY_SQL)] == ["11", "12"]  # rewritten
            finally:
                conn.close()
        plain = await connect(tls_sim.dsn("cluster"))  # plain text still works
        plain.close()
        with pytest.raises(pymysql.err.OperationalError) as refused:
            await connect(tls_sim.dsn("cluster"), ssl=ssl.create_default_context())  # system CAs
        assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
        await execute(tls_sim.dsn("cluster"), "CREATE TABLE dropped(id INT PRIMARY KEY)")
        conn = await connect(tls_sim.dsn("cluster"), ssl=context, autocommit=False)
        try:
            await fetch(conn, "INSERT INTO dropped VALUES (1)")
            await tls_sim.drop_after_commit("11")
            with pytest.raises(pymysql.err.OperationalError) as caught:
                async with asyncio.timeout(TIMEOUT):
                    await conn.commit()
            assert errno(caught.value) == LOST
        finally:
            conn.close()
        assert await count(tls_sim.dsn("cluster"), "dropped") == 1


@module_loop
async def test_iam_user_logs_in_with_the_current_token_in_clear_text(sim: AuroraSimulator) -> None:
    await sim.create_iam_user("iam_sim")
    await sim.set_password("iam_sim", "token-one")
    dsn = sim.dsn("cluster").replace("admin@", "iam_sim:token-one@")
    conn = await connect(dsn)
    try:
        assert conn._auth_plugin_used == "mysql_clear_password"  # the server asked for clear text
        assert await fetch(conn, "SELECT CURRENT_USER()") == [("iam_sim@%",)]
    finally:
        conn.close()
    await sim.set_password("iam_sim", "token-two")  # only the current token is accepted
    with pytest.raises(pymysql.err.OperationalError) as refused:
        await connect(dsn)
    assert errno(refused.value) == ACCESS_DENIED
    assert [(a.user, a.accepted, a.length) for a in sim.iam_login_attempts()[-2:]] == [
        ("iam_sim", True, len("token-one")),
        ("iam_sim", False, len("token-one")),
    ]
    with pytest.raises(SimulatorError, match="at most 511 bytes"):
        await sim.set_password("iam_sim", "x" * 512)
    with pytest.raises(SimulatorError, match="letters, digits"):
        await sim.create_iam_user("bad/name")


def test_the_pam_service_is_written_once_and_only_by_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SimulatorError, match=r"aurora_async_sim_iam.*only root can write it"):
        ensure_pam_service(tmp_path)
    (tmp_path / PAM_SERVICE).write_text(PAM_SERVICE_TEXT)
    ensure_pam_service(tmp_path)  # there already: nothing to do, root or not
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    (tmp_path / PAM_SERVICE).write_text("out of date")
    ensure_pam_service(tmp_path)
    assert (tmp_path / PAM_SERVICE).read_text() == PAM_SERVICE_TEXT
    assert [p.name for p in tmp_path.iterdir()] == [PAM_SERVICE]
