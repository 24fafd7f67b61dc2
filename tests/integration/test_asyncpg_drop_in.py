"""The facade behaves as asyncpg does where an application can tell: each check runs the same steps on a
plain asyncpg connection and on an aurora_async one (with the default plugins and with ``plugins=()``)
against the same simulated writer, and compares what each saw: transaction rules, listeners and the
connection they are given, ``close(timeout=)``, what a new connection has prepared on the server, and
the error a lost connection raises."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

import aurora_async
from aurora_async import AuroraConnection, FailoverSuccessError
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually

PLUGINS = pytest.mark.parametrize("plugins", ["default", "none"])


async def facade(sim: AuroraSimulator, plugins: str = "default", **extra: Any) -> AuroraConnection:
    options: dict[str, Any] = {
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "failover_timeout": 20,
    }
    if plugins == "none":
        options["plugins"] = ()
    conn: AuroraConnection = await aurora_async.connect(
        sim.dsn("cluster"), engine="postgresql", **options, **extra
    )
    return conn


async def outcome(step: Awaitable[Any]) -> str:
    """What a step did, as an application sees it: its error's class and message, or "ok"."""
    try:
        await step
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


# -- transactions: asyncpg's state rules ---------------------------------------------------------------


async def _start_twice(conn: Any) -> list[str]:
    tr = conn.transaction()
    seen = [await outcome(tr.start()), await outcome(tr.start()), str(conn.is_in_transaction())]
    return [*seen, await outcome(tr.rollback()), str(conn.is_in_transaction())]


async def _restart_after_the_end(conn: Any) -> list[str]:
    seen = []
    for end in ("commit", "rollback"):
        tr = conn.transaction()
        seen += [await outcome(tr.start()), await outcome(getattr(tr, end)())]
        seen += [await outcome(tr.start()), await outcome(tr.commit()), await outcome(tr.rollback())]
        seen.append(str(conn.is_in_transaction()))
    return seen


async def _before_the_start(conn: Any) -> list[str]:
    tr = conn.transaction()
    return [await outcome(tr.commit()), await outcome(tr.rollback()), str(conn.is_in_transaction())]


async def _manual_end_inside_the_block(conn: Any) -> list[str]:
    seen = []
    for end in ("commit", "rollback"):
        tr = conn.transaction()

        async def block(tr: Any = tr, end: str = end) -> None:
            async with tr:
                await getattr(tr, end)()

        seen += [await outcome(block()), str(conn.is_in_transaction())]
    tr = conn.transaction()

    async def twice() -> None:
        async with tr, tr:
            pass

    return [*seen, await outcome(twice()), str(conn.is_in_transaction())]


async def _inside_a_manual_transaction(conn: Any) -> list[str]:
    await conn.execute("BEGIN")
    tr = conn.transaction()
    seen = [await outcome(tr.start()), await outcome(tr.start()), await outcome(tr.rollback())]
    await conn.execute("ROLLBACK")
    return [*seen, str(conn.is_in_transaction())]


async def _nested_with_another_isolation(conn: Any) -> list[str]:
    outer = conn.transaction(isolation="serializable")
    inner = conn.transaction(isolation="read_committed")
    seen = [await outcome(outer.start()), await outcome(inner.start()), await outcome(outer.rollback())]
    return [*seen, str(conn.is_in_transaction())]


SCENARIOS: list[Callable[[Any], Awaitable[list[str]]]] = [
    _start_twice,
    _restart_after_the_end,
    _before_the_start,
    _manual_end_inside_the_block,
    _inside_a_manual_transaction,
    _nested_with_another_isolation,
]


@PLUGINS
async def test_transaction_misuse_raises_what_asyncpg_raises(
    aurora_postgres: AuroraSimulator, plugins: str
) -> None:
    sim = aurora_postgres
    raw = await asyncpg.connect(sim.dsn("cluster"))
    conn = await facade(sim, plugins)
    try:
        seen: list[str] = []
        for scenario in SCENARIOS:
            expected = await scenario(raw)
            assert await scenario(conn) == expected, scenario.__name__
            seen += expected
        assert "InterfaceError: cannot start; the transaction is already started" in seen  # (it did check)
        assert "InterfaceError: cannot commit; the transaction is not yet started" in seen
        tr = conn.transaction(isolation="serializable", readonly=True)
        await outcome(tr.rollback())
        assert "state:new serializable readonly" in repr(tr)
        with pytest.raises(ValueError, match="isolation"):
            conn.transaction(isolation="snapshot")
        assert await conn.fetchval("SELECT 1") == 1  # usable after all of it, outside any transaction
        assert not conn.is_in_transaction()
    finally:
        await raw.close()
        await conn.close()


# -- listeners receive the connection they were registered on, across a failover -------------------------


async def test_log_and_notification_listeners_get_the_facade_and_follow_it_through_failover(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    conn = await facade(sim)
    logs: list[tuple[Any, str]] = []
    notes: list[tuple[Any, str, str]] = []

    def on_log(connection: Any, message: Any) -> None:
        logs.append((connection, message.message))

    async def on_note(connection: Any, pid: int, channel: str, payload: str) -> None:
        notes.append((connection, channel, payload))

    async def notify(payload: str) -> None:
        other = await asyncpg.connect(sim.dsn(sim.writer_id))
        try:
            await other.execute(f"NOTIFY jobs, '{payload}'")
        finally:
            await other.close()

    try:
        conn.add_log_listener(on_log)
        await conn.add_listener("jobs", on_note)
        await conn.execute("DO $$ BEGIN RAISE NOTICE 'before'; END $$")
        await notify("before")
        await eventually(
            lambda: _true(len(logs) == 1 and len(notes) == 1), what="the first log and notification"
        )
        assert logs == [(conn, "before")] and notes == [(conn, "jobs", "before")]

        await sim.failover()
        await eventually(lambda: _true(conn.raw.is_closed()), timeout=10, what="the old connection to drop")
        with pytest.raises(FailoverSuccessError):
            await conn.execute("SELECT 1")
        await conn.execute("DO $$ BEGIN RAISE NOTICE 'after'; END $$")
        await notify("after")
        await eventually(
            lambda: _true(len(logs) == 2 and len(notes) == 2), what="the second log and notification"
        )
        assert logs[1] == (conn, "after") and notes[1] == (conn, "jobs", "after")

        conn.remove_log_listener(on_log)
        await conn.remove_listener("jobs", on_note)
        await conn.execute("DO $$ BEGIN RAISE NOTICE 'removed'; END $$")
        assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
        assert len(logs) == 2
    finally:
        await conn.close()


async def _closed(conn: Any) -> bool:
    return bool(conn.is_closed())


async def _true(value: bool) -> bool:
    return value


async def test_termination_listeners_are_called_once_when_the_connection_ends_not_at_failover(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    survivor = await facade(sim)
    plain = await facade(sim, "none")
    raw = await asyncpg.connect(sim.dsn("cluster"))
    ended: list[Any] = []

    async def on_end_async(connection: Any) -> None:
        ended.append(("async", connection))

    try:
        for conn in (survivor, plain, raw):
            conn.add_termination_listener(lambda connection: ended.append(("sync", connection)))
        survivor.add_termination_listener(on_end_async)

        # the server ends every session: asyncpg's and the plugin-less facade's connections end with it
        killer = await asyncpg.connect(sim.dsn("cluster"))
        try:
            await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        finally:
            await killer.close()
        # once the server's goodbye reached the driver, asyncpg says "connection is closed" (a query
        # issued while that goodbye is being read meets asyncpg's InternalClientError instead, a race
        # of the driver's own that plain asyncpg shows as often: wait for the end to be seen)
        for conn in (plain, raw):
            await eventually(functools.partial(_closed, conn), what="the server's goodbye to arrive")
            with pytest.raises((asyncpg.InterfaceError, asyncpg.PostgresConnectionError)):
                await conn.execute("SELECT 1")
        with pytest.raises(FailoverSuccessError):
            await survivor.execute("SELECT 1")
        await eventually(lambda: _true(len(ended) == 2), what="the two ended connections' listeners")
        assert sorted(id(c) for _, c in ended) == sorted([id(plain), id(raw)])
        assert plain.is_closed() and raw.is_closed() and not survivor.is_closed()

        assert await survivor.fetchval("SELECT 1") == 1  # it failed over: not ended
        await survivor.close()
        await eventually(lambda: _true(len(ended) == 4), what="the closed connection's listeners")
        assert {kind for kind, c in ended[2:] if c is survivor} == {"sync", "async"}
        await survivor.close()
        assert len(ended) == 4  # once
    finally:
        for conn in (survivor, plain, raw):
            conn.terminate()


# -- close(timeout=), what a new connection has prepared, the error of a lost connection ------------------


@PLUGINS
async def test_close_with_a_timeout_that_runs_out_raises_timeout_error_as_asyncpg_does(
    aurora_postgres: AuroraSimulator, plugins: str
) -> None:
    sim = aurora_postgres
    raw = await asyncpg.connect(sim.dsn("cluster"))
    conn = await facade(sim, plugins)
    await sim.blackhole(sim.writer_id)  # the goodbye is never answered
    seen = []
    for connection in (raw, conn):
        async with asyncio.timeout(10):
            seen.append(await outcome(connection.close(timeout=0.3)))
        assert connection.is_closed()
    assert seen[0] == seen[1] == "TimeoutError: "


@PLUGINS
async def test_a_new_connection_has_nothing_of_ours_prepared(
    aurora_postgres: AuroraSimulator, plugins: str
) -> None:
    sim = aurora_postgres
    # (names differ: asyncpg numbers statements across all connections of the process)
    query = "SELECT statement FROM pg_prepared_statements ORDER BY statement"
    raw = await asyncpg.connect(sim.dsn("cluster"))
    conn = await facade(sim, plugins)
    try:
        expected = [tuple(r) for r in await raw.fetch(query)]  # the query itself, prepared to run
        assert [tuple(r) for r in await conn.fetch(query)] == expected
        if plugins == "default":
            await sim.failover()
            with pytest.raises(FailoverSuccessError):
                await conn.fetch(query)
            assert [tuple(r) for r in await conn.fetch(query)] == expected  # nor after a failover
    finally:
        await raw.close()
        await conn.close()


async def test_a_lost_connection_raises_asyncpgs_error_class_and_message_through_failover(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    suicide = "SELECT pg_terminate_backend(pg_backend_pid())"
    raw = await asyncpg.connect(sim.dsn("cluster"))
    with pytest.raises(asyncpg.ConnectionDoesNotExistError) as raw_error:
        await raw.execute(suicide)
    conn = await facade(sim)
    try:
        with pytest.raises(asyncpg.ConnectionDoesNotExistError) as error:  # existing except clauses catch it
            await conn.execute(suicide)
        assert isinstance(error.value, FailoverSuccessError)
        assert str(raw_error.value) in str(error.value)  # and its message quotes asyncpg's
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()
