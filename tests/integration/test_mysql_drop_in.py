"""aiomysql code ports by changing its connect call: what aiomysql's own test suite checks of a
connection, on aurora_async's MySQL facade and on aiomysql itself, side by side against the same
simulated cluster (the facade with its default plugins and with ``plugins=()``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import aiomysql
import pymysql
import pytest

import aurora_async
from aurora_async import AuroraMySQLConnection, FailoverSuccessError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually

PLUGINS = pytest.mark.parametrize("plugins", ["default", "none"])


def _address(sim: AuroraSimulator, target: str = "cluster") -> tuple[str, int]:
    parts = urlsplit(sim.dsn(target))
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def _facade(
    sim: AuroraSimulator, plugins: str, target: str = "cluster", **kwargs: Any
) -> AuroraMySQLConnection:
    options: dict[str, Any] = {"plugins": ()} if plugins == "none" else {}
    options.setdefault("cluster_instance_host_pattern", sim.instance_host_pattern)
    conn: AuroraMySQLConnection = await aurora_async.connect(sim.dsn(target), **options, **kwargs)
    return conn


async def _aiomysql(sim: AuroraSimulator, target: str = "cluster", **kwargs: Any) -> Any:
    host, port = _address(sim, target)
    return await aiomysql.connect(host=host, port=port, user="admin", db="app", **kwargs)


@asynccontextmanager
async def _side_by_side(
    sim: AuroraSimulator, plugins: str, target: str = "cluster", **kwargs: Any
) -> AsyncIterator[tuple[AuroraMySQLConnection, Any]]:
    """A facade connection and an aiomysql one, opened with the same arguments; both closed after."""
    facade = await _facade(sim, plugins, target, **kwargs)
    try:
        raw = await _aiomysql(sim, target, **kwargs)
        try:
            yield facade, raw
        finally:
            raw.close()
    finally:
        await facade.ensure_closed()
    assert registry.clusters() == []


async def _scalar(conn: Any, sql: str) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
    return row[0] if row is not None else None


async def _control(sim: AuroraSimulator, sql: str, target: str = "cluster") -> Any:
    """One value read on a connection of the test's own (not the ones compared)."""
    conn = await _aiomysql(sim, target, autocommit=True)
    try:
        return await _scalar(conn, sql)
    finally:
        conn.close()


def _error(raised: pytest.ExceptionInfo[BaseException]) -> tuple[type[BaseException], tuple[Any, ...]]:
    return type(raised.value), raised.value.args


# -- a new connection looks untouched ------------------------------------------------------------------


def _observed(conn: Any) -> dict[str, Any]:
    """What an application can read on a connection without a round trip."""
    return {
        "insert_id": conn.insert_id(),
        "affected_rows": conn.affected_rows(),
        "get_transaction_status": conn.get_transaction_status(),
        "get_autocommit": conn.get_autocommit(),
        "server_status": conn.server_status,
        "autocommit_mode": conn.autocommit_mode,
        "charset": conn.charset,
        "encoding": conn.encoding,
        "character_set_name": conn.character_set_name(),
        "db": conn.db,
        "user": conn.user,
        "echo": conn.echo,
        "closed": conn.closed,
    }


@PLUGINS
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"autocommit": True}, {"charset": "utf8mb4", "init_command": "SET @a = 1"}],
    ids=["defaults", "autocommit", "init_command"],
)
async def test_a_new_connection_reads_as_a_new_aiomysql_connection(
    aurora_mysql: AuroraSimulator, plugins: str, kwargs: dict[str, Any]
) -> None:
    # the library's role check and dialect queries ran on the facade's connection: they leave no trace
    async with _side_by_side(aurora_mysql, plugins, **kwargs) as (facade, raw):
        assert _observed(facade) == _observed(raw)
        assert facade.insert_id() == 0 and facade.affected_rows() == 0
        assert not facade.get_transaction_status()


# -- ping(reconnect=...) -----------------------------------------------------------------------------


async def _session(conn: Any) -> tuple[Any, ...]:
    return (
        conn.closed,
        await _scalar(conn, "SELECT @@autocommit"),
        await _scalar(conn, "SELECT @@character_set_client"),
    )


@PLUGINS
@pytest.mark.parametrize("close", ["close", "ensure_closed"])
async def test_ping_reconnects_a_closed_connection_with_its_session_state(
    aurora_mysql: AuroraSimulator, plugins: str, close: str
) -> None:
    async with _side_by_side(aurora_mysql, plugins) as (facade, raw):
        for conn in (facade, raw):
            await conn.autocommit(True)
            await conn.set_charset("latin1")
            cur = await conn.cursor()
            if close == "close":
                conn.close()
            else:
                await conn.ensure_closed()
            assert conn.closed
            await conn.ping()
            await cur.execute("SELECT 1")  # a cursor made before the close works again, as aiomysql's
            assert await cur.fetchone() == (1,)
        assert await _session(facade) == await _session(raw) == (False, 1, "latin1")


@PLUGINS
async def test_ping_without_reconnect_on_a_closed_connection_raises_as_aiomysql_does(
    aurora_mysql: AuroraSimulator, plugins: str
) -> None:
    async with _side_by_side(aurora_mysql, plugins) as (facade, raw):
        errors = []
        for conn in (facade, raw):
            conn.close()
            with pytest.raises(pymysql.err.Error) as raised:
                await conn.ping(reconnect=False)
            errors.append(_error(raised))
            assert conn.closed
        assert errors[0] == errors[1] == (pymysql.err.Error, ("Already closed",))


async def test_ping_reconnects_a_closed_writer_connection_to_the_new_writer(
    aurora_mysql: AuroraSimulator,
) -> None:
    sim = aurora_mysql
    conn = await _facade(sim, "default", failover_timeout=30)
    old = conn.instance.instance_id
    async with conn.cursor() as cur:
        await cur.execute("CREATE TABLE t (n INT)")
    conn.close()
    await sim.failover()  # the cluster endpoint's DNS may still name the old writer, now a replica
    await conn.ping()
    assert conn.instance.instance_id == sim.writer_id != old
    assert await _scalar(conn, "SELECT @@read_only") == 0
    async with conn.cursor() as cur:
        await cur.execute("INSERT INTO t VALUES (1)")
    await conn.commit()
    await conn.ensure_closed()
    assert registry.clusters() == []


READ_WRITE_SPLITTING = ("initial_connection", "failover", "host_monitoring", "read_write_splitting")


@pytest.mark.parametrize("how", ["strict_reader", "set_read_only"])
async def test_ping_reconnects_a_closed_reader_connection_to_a_reader(
    aurora_mysql: AuroraSimulator, how: str
) -> None:
    sim = aurora_mysql
    if how == "strict_reader":
        conn = await _facade(sim, "default", failover_mode="strict_reader")
    else:
        conn = await aurora_async.connect(
            sim.dsn("cluster"),
            engine="mysql",
            plugins=READ_WRITE_SPLITTING,
            cluster_instance_host_pattern=sim.instance_host_pattern,
        )
        await conn.set_read_only(True)
    try:
        assert conn.instance.instance_id in sim.reader_ids
        await conn.ensure_closed()
        await conn.ping()
        assert conn.instance.instance_id in sim.reader_ids
        assert await _scalar(conn, "SELECT @@read_only") == 1
        assert conn.read_only == (how == "set_read_only")
    finally:
        await conn.ensure_closed()
    assert registry.clusters() == []


@pytest.mark.parametrize("reconnect", [True, False])
async def test_with_failover_ping_on_a_lost_physical_connection_fails_over(
    aurora_mysql: AuroraSimulator, reconnect: bool
) -> None:
    conn = await _facade(aurora_mysql, "default")
    try:
        lost = conn.raw
        lost.terminate()  # as a cancelled query, the host monitor or the tracker would
        if reconnect:  # aiomysql's default: the ping reconnects (here: fails over) and returns
            await conn.ping()
        else:
            with pytest.raises(FailoverSuccessError):
                await conn.ping(reconnect=False)
        assert conn.raw is not lost and not conn.closed
        await conn.ping(reconnect=False)
    finally:
        await conn.ensure_closed()
    assert registry.clusters() == []


# -- connect timeout -----------------------------------------------------------------------------------


@contextmanager
def _full_backlog() -> Iterator[int]:
    """A port on loopback whose listen queue is full: a TCP connect to it gets no answer (its SYN is
    dropped) until it times out. Yields the port."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        while True:  # fill the queue (never accepted) until a connect is no longer answered
            filler = socket.socket()
            fillers.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@PLUGINS
async def test_a_connect_that_times_out_raises_what_aiomysql_raises(plugins: str) -> None:
    errors = []
    with _full_backlog() as port:
        options: dict[str, Any] = {"plugins": ()} if plugins == "none" else {}
        connects: list[Callable[[], Any]] = [
            lambda: aurora_async.connect(
                host="127.0.0.1", port=port, engine="mysql", connect_timeout=0.3, **options
            ),
            lambda: aiomysql.connect(host="127.0.0.1", port=port, connect_timeout=0.3),
        ]
        for connect in connects:
            with pytest.raises(pymysql.err.OperationalError) as raised:
                await connect()
            errors.append((*_error(raised), type(raised.value.__cause__)))
    assert errors[0] == errors[1]
    assert errors[0][1] == (2003, "Can't connect to MySQL server on '127.0.0.1'")
    assert registry.clusters() == []


# -- a connection the server closed while it was idle -----------------------------------------------------


async def test_a_connection_the_server_ended_while_idle_raises_what_aiomysql_raises(
    aurora_mysql: AuroraSimulator,
) -> None:
    sim = aurora_mysql
    async with _side_by_side(sim, "none") as (facade, raw):
        cursors = [await facade.cursor(), await raw.cursor()]
        for conn in (facade, raw):
            await _control(sim, f"KILL CONNECTION {conn.thread_id()}")
        await eventually(
            lambda: _gone(sim, facade.thread_id(), raw.thread_id()), what="both sessions ended on the server"
        )
        errors = []
        for conn, cur in zip((facade, raw), cursors, strict=True):
            with pytest.raises(pymysql.err.OperationalError) as raised:
                await cur.execute("SELECT 1")
            errors.append(raised.value.args[0])
            assert conn.closed
        assert set(errors) <= {2006, 2013}  # aiomysql's suite accepts either: lost before or during


async def _gone(sim: AuroraSimulator, *thread_ids: int) -> bool:
    ids = ", ".join(str(i) for i in thread_ids)
    left = await _control(sim, f"SELECT count(*) FROM information_schema.processlist WHERE id IN ({ids})")
    return int(left) == 0


@PLUGINS
async def test_a_connection_reset_while_idle_raises_a_connection_error(
    aurora_mysql: AuroraSimulator, plugins: str
) -> None:
    sim = aurora_mysql
    writer = sim.writer_id
    async with _side_by_side(sim, plugins, writer) as (facade, raw):
        cursors = [await facade.cursor(), await raw.cursor()]
        await sim.reset_connections(writer)

        async def both_see_it() -> bool:
            return bool(facade.raw.is_closed() and raw._writer.transport.is_closing())

        await eventually(both_see_it, what="both connections to see the reset")
        if plugins == "default":  # failover on: the statement was never sent, so re-running it is safe
            with pytest.raises(FailoverSuccessError) as failed_over:
                await cursors[0].execute("SELECT 1")
            assert failed_over.value.may_have_run is False
            assert isinstance(failed_over.value.__cause__, pymysql.err.OperationalError)
            assert failed_over.value.__cause__.args[0] == 2006
        else:
            with pytest.raises(pymysql.err.OperationalError) as raised:
                await cursors[0].execute("SELECT 1")
            assert raised.value.args[0] == 2006  # said before sending (aiomysql: 2013, after)
            assert facade.closed
        with pytest.raises(pymysql.err.OperationalError) as raised:
            await cursors[1].execute("SELECT 1")
        assert raised.value.args[0] == 2013


# -- a query cancelled midway ------------------------------------------------------------------------


async def _cancel_midway(sim: AuroraSimulator, conn: Any) -> None:
    """Cancel a query while the server runs it (aiomysql then closes the connection)."""
    cur = await conn.cursor()
    sql = f"SELECT SLEEP(30) /* {id(conn)} */"
    task = asyncio.create_task(cur.execute(sql))

    async def running() -> bool:
        count = await _control(
            sim, f"SELECT count(*) FROM information_schema.processlist WHERE info = '{sql}'"
        )
        return int(count) == 1

    await eventually(running, what="the query to run on the server")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cursor_after_a_cancelled_query_raises_as_aiomysql_does(
    aurora_mysql: AuroraSimulator,
) -> None:
    async with _side_by_side(aurora_mysql, "none") as (facade, raw):
        errors = []
        for conn in (facade, raw):
            await _cancel_midway(aurora_mysql, conn)
            assert conn.closed
            with pytest.raises(pymysql.err.InterfaceError) as raised:
                await conn.cursor()
            errors.append(_error(raised))
            with pytest.raises(pymysql.err.InterfaceError):
                conn.cursor(aiomysql.SSCursor)
        assert errors[0] == errors[1] == (pymysql.err.InterfaceError, ("Cancelled during execution",))
        await facade.ping()  # ... and ping() connects again, as aiomysql's
        assert await _scalar(facade, "SELECT 1") == 1


async def test_with_failover_a_cursor_after_a_cancelled_query_fails_over(
    aurora_mysql: AuroraSimulator,
) -> None:
    conn = await _facade(aurora_mysql, "default")
    try:
        await _cancel_midway(aurora_mysql, conn)
        assert not conn.closed  # it fails over at the next call
        with pytest.raises(FailoverSuccessError) as raised:
            await conn.cursor()
        assert raised.value.may_have_run is False
        assert isinstance(raised.value.__cause__, pymysql.err.InterfaceError)
        assert await _scalar(conn, "SELECT 1") == 1
    finally:
        await conn.ensure_closed()
    assert registry.clusters() == []


# -- cursors -------------------------------------------------------------------------------------------


@PLUGINS
async def test_a_cursor_s_arraysize_is_what_fetchmany_returns_by_default(
    aurora_mysql: AuroraSimulator, plugins: str
) -> None:
    async with _side_by_side(aurora_mysql, plugins) as (facade, raw):
        fetched = []
        for conn in (facade, raw):
            async with conn.cursor() as cur:
                assert cur.arraysize == 1
                cur.arraysize = 2
                await cur.execute("SELECT 1 UNION SELECT 2 UNION SELECT 3")
                fetched.append((cur.arraysize, await cur.fetchmany(), await cur.fetchmany()))
        assert fetched[0] == fetched[1] == (2, ((1,), (2,)), ((3,),))
