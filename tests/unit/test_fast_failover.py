"""Failover of one connection (``_failover``) on the fake driver: the outcome table, and what
``FailoverSession._failed`` makes of a failed call, through the asyncpg facade on a real ``Cluster``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pymysql
import pytest

from aurora_async._cluster import Cluster
from aurora_async._driver import Driver
from aurora_async._exceptions import (
    FailoverFailedError,
    FailoverSuccessError,
    TransactionResolutionUnknownError,
)
from aurora_async._failover import outcome
from aurora_async._topology import Instance, Role
from aurora_async.mysql.driver import MYSQL
from aurora_async.postgresql.connection import AuroraConnection
from aurora_async.postgresql.driver import POSTGRESQL

from .fake_driver import (
    PORT,
    FakeCluster,
    FakeConnectionLost,
    FakeRawConnection,
    FakeReadOnlyError,
    FakeSQLError,
    fake_world,
    make_cluster,
)

NEW = Instance("b", "b.fake.invalid", PORT, Role.WRITER)


# -- the outcome table -----------------------------------------------------------------------------


# what each driver raises when the connection under a call is lost: a failover error is one too
DRIVERS = pytest.mark.parametrize(
    ("driver", "connection_lost"),
    [(POSTGRESQL, asyncpg.ConnectionDoesNotExistError), (MYSQL, pymysql.err.OperationalError)],
    ids=["postgresql", "mysql"],
)


@DRIVERS
@pytest.mark.parametrize("may_have_run", [True, False])
def test_outside_a_transaction_the_statement_is_to_be_re_run(
    driver: Driver, connection_lost: type[Exception], may_have_run: bool
) -> None:
    error = outcome(driver, in_transaction=False, may_have_run=may_have_run, failed_from="a", now_on=NEW)
    assert isinstance(error, FailoverSuccessError) and isinstance(error, connection_lost)
    assert error.may_have_run is may_have_run
    assert "a" in str(error) and "now on b" in str(error)


@DRIVERS
@pytest.mark.parametrize("may_have_run", [True, False])
def test_inside_a_transaction_its_outcome_is_unknown(
    driver: Driver, connection_lost: type[Exception], may_have_run: bool
) -> None:
    error = outcome(driver, in_transaction=True, may_have_run=may_have_run, failed_from="a", now_on=NEW)
    assert isinstance(error, TransactionResolutionUnknownError)  # whether or not the statement ran
    assert isinstance(error, connection_lost) and not isinstance(error, FailoverSuccessError)
    assert "re-run the whole transaction" in str(error)


# -- FailoverSession._failed -----------------------------------------------------------------------


@pytest.fixture
async def world() -> AsyncIterator[FakeCluster]:
    async with fake_world() as world:
        yield world


async def _connect(world: FakeCluster, **options: Any) -> tuple[AuroraConnection, Cluster]:
    """An application connection on writer ``a`` (its cluster held by it alone)."""
    options.setdefault("plugins", "failover")
    options.setdefault("failover_timeout", 1.0)
    cluster, config = make_cluster(world, **options)
    raw = await cluster.opener.open_as(config.identity, world["a"].host, PORT, 1.0)
    assert cluster.topology is not None
    instance = cluster.topology.get("a")
    assert instance is not None
    return AuroraConnection(cluster, config, cast(Any, raw), instance), cluster


def _raw(conn: AuroraConnection) -> FakeRawConnection:
    raw = conn.raw
    assert isinstance(raw, FakeRawConnection)
    return raw


async def test_a_connection_error_outside_a_transaction_moves_the_session(world: FakeCluster) -> None:
    conn, cluster = await _connect(world)
    old = _raw(conn)
    world.kill("a")
    world.promote("b")
    with pytest.raises(FailoverSuccessError) as caught:
        await conn.execute("SELECT 1")
    assert isinstance(caught.value.__cause__, FakeConnectionLost)
    assert caught.value.may_have_run is False  # the connection was closed before the call was sent
    new = _raw(conn)
    assert new is not old and old.is_closed() and not new.is_closed()
    assert new.instance.instance_id == "b" and new.identity is conn._identity  # as its own identity
    assert conn.instance.instance_id == "b" and conn.instance.role is Role.WRITER
    assert cluster.load["a"] == 0 and cluster.load["b"] == 1
    assert await conn.execute("SELECT 1") == "SELECT"  # the same object works, on b
    assert new.executed == ["SELECT 1"]
    await conn.close()
    assert world.open_connections() == []


async def test_a_call_cut_in_flight_may_have_run(world: FakeCluster) -> None:
    conn, _ = await _connect(world)
    world.silence("a")
    call = asyncio.ensure_future(conn.execute("UPDATE t SET x = 1"))
    await world.until(lambda: world["a"].queries["execute"] == 1)
    world.kill("a")
    world.promote("b")
    with pytest.raises(FailoverSuccessError) as caught:
        await call
    assert caught.value.may_have_run is True
    assert conn.instance.instance_id == "b"
    await conn.close()
    assert world.open_connections() == []


async def test_a_connection_error_inside_a_transaction_leaves_its_outcome_unknown(world: FakeCluster) -> None:
    conn, _ = await _connect(world)
    await conn.execute("BEGIN")
    world.kill("a")
    world.promote("b")
    with pytest.raises(TransactionResolutionUnknownError) as caught:
        await conn.execute("INSERT INTO t VALUES (1)")
    assert isinstance(caught.value.__cause__, FakeConnectionLost)
    assert _raw(conn).instance.instance_id == "b" and not conn.is_in_transaction()
    await conn.close()
    assert world.open_connections() == []


async def test_an_ordinary_error_passes_through_untouched(world: FakeCluster) -> None:
    conn, cluster = await _connect(world)
    raw = _raw(conn)
    opened = world.opened()
    error = FakeSQLError('syntax error at or near "SELEC"')
    raw.failures.append(error)
    with pytest.raises(FakeSQLError) as caught:
        await conn.execute("SELEC 1")
    assert caught.value is error
    assert _raw(conn) is raw and not raw.is_closed()  # no reconnect
    assert world.opened() == opened and cluster.stats["writer_searches"] == 0
    await conn.close()
    assert world.open_connections() == []


async def test_strict_writer_fails_over_on_a_read_only_error(world: FakeCluster) -> None:
    conn, cluster = await _connect(world)
    old = _raw(conn)
    world.promote("b")  # a is demoted but still up: it refuses writes
    with pytest.raises(FailoverSuccessError) as caught:
        await conn.execute("INSERT INTO t VALUES (1)")
    assert isinstance(caught.value.__cause__, FakeReadOnlyError)
    assert caught.value.may_have_run is False  # a read-only refusal changed nothing
    assert old.is_closed() and _raw(conn).instance.instance_id == "b"
    assert cluster.stats["writer_searches"] == 1
    await conn.close()
    assert world.open_connections() == []


async def test_outside_strict_writer_a_read_only_error_passes_through(world: FakeCluster) -> None:
    conn, _ = await _connect(world, failover_mode="reader_or_writer")
    raw = _raw(conn)
    opened = world.opened()
    world.promote("b")
    with pytest.raises(FakeReadOnlyError):
        await conn.execute("INSERT INTO t VALUES (1)")
    assert _raw(conn) is raw and world.opened() == opened
    await conn.close()
    assert world.open_connections() == []


async def test_without_the_failover_plugin_a_connection_error_passes_through(world: FakeCluster) -> None:
    conn, cluster = await _connect(world, plugins="aurora_connection_tracker")
    raw = _raw(conn)
    opened = world.opened()
    world.kill("a")
    world.promote("b")
    with pytest.raises(FakeConnectionLost):
        await conn.execute("SELECT 1")
    assert _raw(conn) is raw and world.opened() == opened and cluster.stats["writer_searches"] == 0
    assert conn.is_closed()  # without failover, a closed physical connection is a closed connection
    await conn.close()
    assert world.open_connections() == []


async def test_two_calls_failing_at_once_reconnect_once(world: FakeCluster) -> None:
    conn, cluster = await _connect(world)
    world.silence("a")
    calls = [asyncio.ensure_future(conn.execute(f"SELECT {n}")) for n in (1, 2)]
    await world.until(lambda: world["a"].queries["execute"] == 2)
    world.kill("a")
    world.promote("b")
    errors = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(e, FailoverSuccessError) for e in errors), errors
    messages = sorted(str(e) for e in errors)
    assert sum("has changed instance" in m for m in messages) == 1
    assert cluster.stats["writer_searches"] == 1
    assert world["b"].queries["is_reader"] == 1  # one reconnect: one role check
    assert world["b"].opened == 2  # the search's connection (now the monitor's) and the session's
    assert _raw(conn).instance.instance_id == "b"
    await conn.close()
    assert world.open_connections() == []


async def test_close_during_failover_raises_the_drivers_closed_error(world: FakeCluster) -> None:
    conn, cluster = await _connect(world, failover_timeout=30.0)
    loop = asyncio.get_running_loop()
    world.kill("a")
    world.claims = set()  # no writer yet: the failover waits
    call = asyncio.ensure_future(conn.execute("SELECT 1"))
    await world.until(lambda: world.queries("is_writer") >= 4)  # the writer search is under way
    started = loop.time()
    await conn.close()
    with pytest.raises(asyncpg.InterfaceError, match="connection is closed"):
        await call
    assert loop.time() - started < 0.1  # at once, not at failover_timeout
    assert conn.is_closed() and cluster.closed
    assert world.open_connections() == []


async def test_no_instance_before_failover_timeout_fails_and_closes(world: FakeCluster) -> None:
    conn, cluster = await _connect(world, failover_timeout=1.0)
    loop = asyncio.get_running_loop()
    world.kill("a")
    world.claims = set()
    started = loop.time()
    with pytest.raises(FailoverFailedError) as caught:
        await conn.execute("SELECT 1")
    assert isinstance(caught.value.__cause__, FakeConnectionLost)
    assert loop.time() - started == pytest.approx(1.0, abs=0.05)
    assert conn.is_closed()
    assert cluster.closed  # its only connection let the cluster go
    await cluster.aclose()
    assert world.open_connections() == []
    with pytest.raises(FakeConnectionLost, match="connection is closed"):  # the driver's, as it is
        await conn.execute("SELECT 1")
    await conn.close()


async def test_every_call_of_a_lost_transaction_learns_its_outcome_is_unknown(world: FakeCluster) -> None:
    conn, _ = await _connect(world)
    await conn.execute("BEGIN")
    world.silence("a")
    calls = [asyncio.ensure_future(conn.execute(f"INSERT INTO t VALUES ({n})")) for n in (1, 2)]
    await world.until(lambda: world["a"].queries["execute"] == 3)
    world.kill("a")
    world.promote("b")
    errors = await asyncio.gather(*calls, return_exceptions=True)
    await conn.close()
    assert all(isinstance(e, TransactionResolutionUnknownError) for e in errors), errors
