"""PostgreSQL session settings changed with SQL survive failover: after it, the new server session has
what the old one had (the invariant, read from the server itself), per connection; what never took
effect (SET LOCAL, a rolled back or lost transaction, what RESET undid) is not set again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import aurora_async
from aurora_async import (
    AuroraConnection,
    FailoverFailedError,
    FailoverSuccessError,
    TransactionResolutionUnknownError,
)
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually

STATE = """SELECT current_setting('search_path') AS search_path,
                  current_setting('statement_timeout') AS statement_timeout,
                  current_setting('application_name') AS application_name,
                  current_setting('TimeZone') AS timezone,
                  current_setting('default_transaction_isolation') AS isolation,
                  current_user::text AS current_user,
                  coalesce(current_setting('myapp.tenant', true), '') AS tenant"""


def options(sim: AuroraSimulator) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 20}


@pytest.fixture
async def sim(aurora_postgres: AuroraSimulator) -> AsyncIterator[AuroraSimulator]:
    async with aurora_async.connect(aurora_postgres.dsn("cluster"), **options(aurora_postgres)) as admin:
        await admin.execute(
            "CREATE ROLE tenant_a; CREATE ROLE tenant_b; CREATE ROLE doomed;"
            "GRANT tenant_a, tenant_b, doomed TO CURRENT_USER"
        )
    yield aurora_postgres


@pytest.fixture
async def connect(sim: AuroraSimulator) -> AsyncIterator[Callable[[], Awaitable[AuroraConnection]]]:
    opened: list[AuroraConnection] = []

    async def new() -> AuroraConnection:
        conn: AuroraConnection = await aurora_async.connect(sim.dsn("cluster"), **options(sim))
        opened.append(conn)
        return conn

    yield new
    for conn in opened:
        await conn.close()


async def state(conn: AuroraConnection, *, uncached: bool = False) -> dict[str, str]:
    """The session's settings, read from the server (``uncached``: a query text asyncpg has not
    prepared on this connection: DISCARD ALL drops the server's side of its statement cache)."""
    row = await conn.fetchrow(STATE + (" -- uncached" if uncached else ""))
    assert row is not None
    return dict(row)


async def fail_over(sim: AuroraSimulator, *conns: AuroraConnection) -> None:
    """Fail the cluster over; each connection's next call fails over (FailoverSuccessError) onto a
    new server session."""
    pids = [conn.get_server_pid() for conn in conns]
    await sim.failover()
    for conn, pid in zip(conns, pids, strict=True):
        with pytest.raises(FailoverSuccessError):
            await conn.fetchval("SELECT 1")
        assert conn.get_server_pid() != pid


async def test_each_connection_gets_its_own_settings_back(
    sim: AuroraSimulator, connect: Callable[[], Awaitable[AuroraConnection]]
) -> None:
    a, b, plain = await connect(), await connect(), await connect()
    defaults = await state(plain)
    await a.execute("SET search_path = tenant_a, public")
    await a.execute("set statement_timeout to '7s';")
    await a.fetch("SET application_name = 'app-a'")  # fetch* are tracked too
    await a.execute("SET ROLE tenant_a")
    await a.execute("SET myapp.tenant = 'a'")
    await a.execute("SET TIME ZONE 'Asia/Tokyo'")
    # b: several statements in one string, comments, SET SESSION, SESSION CHARACTERISTICS
    await b.execute(
        "/* tenant b */ SET SESSION search_path TO tenant_b; SET statement_timeout = 9000;"
        " SET application_name TO 'app-b' -- named\n; SET ROLE tenant_b; SET myapp.tenant = 'b;x';"
        " SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    )
    before_a, before_b = await state(a), await state(b)
    assert before_a == {
        "search_path": "tenant_a, public",
        "statement_timeout": "7s",
        "application_name": "app-a",
        "timezone": "Asia/Tokyo",
        "isolation": defaults["isolation"],
        "current_user": "tenant_a",
        "tenant": "a",
    }
    assert before_b == {
        "search_path": "tenant_b",
        "statement_timeout": "9s",
        "application_name": "app-b",
        "timezone": defaults["timezone"],
        "isolation": "repeatable read",
        "current_user": "tenant_b",
        "tenant": "b;x",
    }
    await fail_over(sim, a, b, plain)
    assert await state(a) == before_a
    assert await state(b) == before_b
    assert await state(plain) == defaults  # nothing of the others


async def test_only_what_took_effect_is_set_again(
    sim: AuroraSimulator, connect: Callable[[], Awaitable[AuroraConnection]]
) -> None:
    conn = await connect()
    defaults = await state(conn)
    async with conn.transaction():  # committed: set again
        await conn.execute("SET search_path = committed, public")
        await conn.execute("SET LOCAL statement_timeout = '11s'")  # never
        async with conn.transaction():  # a nested block released with it
            await conn.execute("SET application_name = 'nested'")
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():  # a nested block rolled back
                await conn.execute("SET myapp.tenant = 'rolled back savepoint'")
                raise ZeroDivisionError
    with pytest.raises(ZeroDivisionError):
        async with conn.transaction():  # rolled back
            await conn.execute("SET TIME ZONE 'Asia/Tokyo'")
            raise ZeroDivisionError
    # plain statements: a committed transaction, a rolled back one, savepoints, a failed one
    await conn.execute("BEGIN; SET myapp.tenant = 'kept'")
    await conn.execute("SAVEPOINT s1; SET ROLE tenant_a; ROLLBACK TO SAVEPOINT s1")
    await conn.execute("SAVEPOINT s2; SET statement_timeout = '3s'; RELEASE s2")
    await conn.execute("COMMIT")
    await conn.execute("START TRANSACTION")
    await conn.execute("SET application_name = 'rolled back'")
    await conn.execute("ROLLBACK")
    await conn.execute("BEGIN")
    await conn.execute("SET application_name = 'failed'")
    with pytest.raises(Exception, match="division by zero"):
        await conn.execute("SELECT 1/0")
    assert await conn.execute("COMMIT") == "ROLLBACK"  # the server rolls a failed transaction back
    async with conn.transaction():
        await conn.execute("SET SESSION TIME ZONE 'UTC'")
        with pytest.raises(Exception, match="division by zero"):
            await conn.execute("SELECT 1/0")
        # the application swallows the error: the block's COMMIT rolls back
    before = await state(conn)
    assert before == {
        **defaults,
        "search_path": "committed, public",
        "application_name": "nested",
        "statement_timeout": "3s",
        "tenant": "kept",
    }
    await fail_over(sim, conn)
    assert await state(conn) == before


async def test_a_transaction_lost_in_a_failover_takes_its_settings_with_it(
    sim: AuroraSimulator, connect: Callable[[], Awaitable[AuroraConnection]]
) -> None:
    conn = await connect()
    await conn.execute("SET application_name = 'before'")
    with pytest.raises(TransactionResolutionUnknownError):
        async with conn.transaction():
            await conn.execute("SET search_path = pending")
            await sim.failover()
            await conn.execute("SET myapp.tenant = 'lost'")
    after = await state(conn)
    assert after["application_name"] == "before"
    assert after["search_path"] != "pending" and after["tenant"] == ""
    # a raw BEGIN whose transaction is lost
    await conn.execute("BEGIN; SET search_path = pending")
    await sim.failover()
    with pytest.raises(TransactionResolutionUnknownError):
        await conn.execute("COMMIT")
    after = await state(conn)
    assert after["application_name"] == "before" and after["search_path"] != "pending"


async def test_reset_reset_all_reset_and_discard_all(
    sim: AuroraSimulator, connect: Callable[[], Awaitable[AuroraConnection]]
) -> None:
    conn = await connect()
    defaults = await state(conn)
    await conn.execute(
        "SET ROLE tenant_a; SET search_path = x; SET statement_timeout = '5s'; SET myapp.tenant = 't'"
    )
    await conn.execute("RESET search_path; SET statement_timeout TO DEFAULT")
    before = await state(conn)
    assert before == {**defaults, "current_user": "tenant_a", "tenant": "t"}
    await fail_over(sim, conn)
    assert await state(conn) == before

    # RESET ALL: everything but the role, which the server keeps (as does asyncpg's reset())
    await conn.execute("SET application_name = 'app'")
    await conn.execute("RESET ALL")
    assert await state(conn) == {**defaults, "current_user": "tenant_a"}  # the placeholder stays, ''
    await fail_over(sim, conn)
    assert await state(conn) == {**defaults, "current_user": "tenant_a"}

    await conn.execute("SET application_name = 'app'")
    await conn.reset()  # what a pool does on release
    assert await state(conn) == {**defaults, "current_user": "tenant_a"}
    await fail_over(sim, conn)
    assert await state(conn) == {**defaults, "current_user": "tenant_a"}

    await conn.execute("SET application_name = 'app'")
    await conn.execute("DISCARD ALL")  # the role too
    assert await state(conn, uncached=True) == defaults
    await fail_over(sim, conn)
    assert await state(conn) == defaults


async def test_settings_that_cannot_be_set_again_close_the_connection(
    sim: AuroraSimulator, connect: Callable[[], Awaitable[AuroraConnection]]
) -> None:
    conn, admin = await connect(), await connect()
    await conn.execute("SET ROLE doomed")
    await admin.execute("DROP ROLE doomed")  # (PostgreSQL lets a role in use be dropped)
    closed: list[object] = []
    conn.add_termination_listener(closed.append)
    await sim.failover()
    with pytest.raises(FailoverFailedError, match="session settings"):
        await conn.fetchval("SELECT 1")
    assert conn.is_closed()

    async def told() -> bool:
        return closed == [conn]

    await eventually(told, what="the termination listener")
    with pytest.raises(FailoverSuccessError):
        await admin.fetchval("SELECT 1")  # the other connection carries on
    assert await admin.fetchval("SELECT current_user") != "doomed"


async def test_with_read_write_splitting_each_physical_connection_keeps_its_own(sim: AuroraSimulator) -> None:
    plugins = ("failover", "read_write_splitting")
    async with aurora_async.connect(sim.dsn("cluster"), plugins=plugins, **options(sim)) as conn:
        defaults = await state(conn)
        await conn.execute("SET myapp.tenant = 'on the writer'")
        await conn.set_read_only(True)
        assert (await state(conn))["tenant"] == ""  # a SET does not follow the switch
        await conn.execute("SET application_name = 'on the reader'")
        await conn.set_read_only(False)
        before = await state(conn)
        assert before == {**defaults, "tenant": "on the writer"}
        await fail_over(sim, conn)
        assert await state(conn) == before  # not the reader's application_name
