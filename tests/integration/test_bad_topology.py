"""Garbage in the catalog, an instance host pattern that leads nowhere, a wrong password: on the simulator.

The simulator keeps Aurora's topology as a JSON document in the comment of the role ``aurora_simulator``
(``aurora_async.testing.postgresql._catalog``); overwriting it on the writer (it replicates) feeds
garbage to the library's real topology SQL: unknown instance ids, no writer, two writers, NULL ids and
session ids, missing fields, no JSON at all.

What the library must do whatever the catalog says: a connection it hands out in ``strict_writer`` mode
is on the instance that really is the writer (not in recovery, writes succeed), or it raises a clear
error; it never settles on a replica. It only trusts an instance as the writer when the instance is out
of recovery *and* the catalog names it as the writer (``AuroraPgDialect.is_writer``), so:

- garbage the next failover replaces (Aurora rewrites its status at failover): the failover ends on the
  new writer;
- a catalog that keeps naming no reachable writer: ``FailoverFailedError`` at ``failover_timeout``,
  never a guess.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

import aurora_async
from aurora_async import AuroraConnection, FailoverFailedError, FailoverSuccessError, Role
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from aurora_async.testing._catalog import MASTER_SESSION_ID
from aurora_async.testing.postgresql._catalog import TOPOLOGY_ROLE, sql_literal
from tests.helpers import IS_READER_SQL, Forwarder, eventually, execute, fetchval

pytestmark = pytest.mark.aurora_simulator(instances=3, dns_delay=0.5)

FAILOVER_TIMEOUT = 3.0  # where a failover is expected to give up
MARGIN = 12.0  # generous: the machine may be busy
INSTANCE_ID_SQL = "SELECT pg_catalog.aurora_db_instance_identifier()"
CATALOG_SQL = (
    "SELECT pg_catalog.shobj_description(r.oid, 'pg_authid') FROM pg_catalog.pg_roles r "
    f"WHERE r.rolname = '{TOPOLOGY_ROLE}'"
)


def options(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {
        "cluster_instance_host_pattern": sim.instance_host_pattern,
        "failover_timeout": FAILOVER_TIMEOUT,
        **extra,
    }


# -- the catalog -----------------------------------------------------------------------------------------


async def read_catalog(sim: AuroraSimulator) -> str:
    return str(await fetchval(sim.dsn(sim.writer_id), CATALOG_SQL))


async def write_catalog(sim: AuroraSimulator, document: str | dict[str, Any]) -> None:
    """Replace the topology document on the writer and wait until every running replica has it."""
    text = document if isinstance(document, str) else json.dumps(document)
    await execute(sim.dsn(sim.writer_id), f"COMMENT ON ROLE {TOPOLOGY_ROLE} IS {sql_literal(text)}")
    for instance_id, state in sim.instances.items():
        if state.running:

            async def replicated(instance_id: str = instance_id) -> bool:
                return await fetchval(sim.dsn(instance_id), CATALOG_SQL) == text

            await eventually(replicated, timeout=10, what=f"the catalog to reach {instance_id}")


def rows_of(document: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(document)["instances"]
    return rows


def row(rows: list[dict[str, Any]], instance_id: str) -> dict[str, Any]:
    return next(r for r in rows if r["id"] == instance_id)


def not_the_writer(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "writer": False, "session_id": "2b5b3c9e-0000-4000-8000-000000000000"}


def as_writer(r: dict[str, Any], frozen_at: float | None) -> dict[str, Any]:
    return {**r, "writer": True, "session_id": MASTER_SESSION_ID, "frozen_at": frozen_at}


UNKNOWN_IDS = [
    {"id": "99", "session_id": "a", "frozen_at": None, "lag_ms": 5.0},  # 127.0.42.99: nothing listens
    {"id": "ghost", "session_id": "b"},  # 127.0.42.ghost: does not resolve
    {"id": "", "session_id": "c", "lag_ms": "NaN"},  # 127.0.42.: neither
    {"id": 12, "cpu": None},  # a number, and a second row for an instance that exists
]


def scenarios(document: str, writer: str, replica: str) -> dict[str, str]:
    """Garbage catalogs made from the real one: name -> JSON document (or not JSON)."""
    real = rows_of(document)
    now = time.time()
    no_writer = [r if r["id"] != writer else not_the_writer(r) for r in real]
    return {
        "unknown instance ids": json.dumps({"instances": real + UNKNOWN_IDS}),
        "a writer row with a NULL id, newer than the real one": json.dumps(
            {"instances": [*real, {"id": None, "session_id": MASTER_SESSION_ID, "frozen_at": now + 60}]}
        ),
        "two writer rows, the real writer's newer": json.dumps(
            {"instances": [as_writer(r, now - 30) if r["id"] == replica else r for r in real]}
        ),
        "two writer rows, a replica's newer": json.dumps(
            {"instances": [as_writer(r, now + 30) if r["id"] == replica else r for r in real]}
        ),
        "no writer row": json.dumps({"instances": no_writer}),
        "NULL session ids": json.dumps({"instances": [{**r, "session_id": None} for r in real]}),
        "rows with missing fields": json.dumps(
            {"instances": [{"id": writer}, {"id": replica}, {}, {"session_id": MASTER_SESSION_ID}]}
        ),
        "no instances": json.dumps({"instances": []}),
        "no instances key": "{}",
        "not JSON": "{garbage",
    }


# where the catalog still names the real writer (as the newest writer row)
NAMES_THE_WRITER = {
    "unknown instance ids",
    "a writer row with a NULL id, newer than the real one",
    "two writer rows, the real writer's newer",
}


async def assert_on_the_writer(conn: AuroraConnection, sim: AuroraSimulator, what: str) -> None:
    """The connection is on the instance that really is the writer: it is out of recovery, it is the
    simulator's writer, and a write commits there."""
    assert await conn.fetchval(IS_READER_SQL) is False, what
    assert await conn.fetchval(INSTANCE_ID_SQL) == sim.writer_id, what
    assert conn.role is Role.WRITER, what
    await conn.execute("CREATE TEMPORARY TABLE IF NOT EXISTS writes(x int)")  # refused in recovery
    await conn.execute("INSERT INTO writes VALUES (1)")


async def fetchval_after_failover(conn: AuroraConnection, query: str) -> Any:
    """The query's value, re-run once if the first attempt found the connection failed over."""
    try:
        return await conn.fetchval(query)
    except FailoverSuccessError:
        return await conn.fetchval(query)


# -- connect ---------------------------------------------------------------------------------------------


async def test_connect_lands_on_the_true_writer_whatever_the_catalog_says(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    writer, replica = sim.writer_id, sim.reader_ids[0]
    real = await read_catalog(sim)
    for name, document in scenarios(real, writer, replica).items():
        await write_catalog(sim, document)
        # each scenario is a first contact: its own cluster identity, so that nothing the previous
        # scenario's (closed) cluster learned is reused
        fresh = options(sim, cluster_id=name)
        if name == "not JSON":
            # the Aurora functions exist but fail: that is no answer to "is this Aurora?", so the
            # first contact fails with the catalog's error (it used to settle on plain PostgreSQL)
            with pytest.raises(asyncpg.InvalidTextRepresentationError):
                await aurora_async.connect(sim.dsn("cluster"), **fresh)
            assert registry.clusters() == [], name
            continue
        if name == "no writer row":
            # first contact through a replica's endpoint, and the catalog names no writer: nothing
            # to move to, and no guess: a clear error at failover_timeout
            started = time.monotonic()
            with pytest.raises(FailoverFailedError, match=f"led to a replica \\({replica}\\)"):
                await aurora_async.connect(sim.dsn(replica), **fresh)
            assert FAILOVER_TIMEOUT - 0.5 <= time.monotonic() - started < FAILOVER_TIMEOUT + MARGIN
            assert registry.clusters() == []
        async with aurora_async.connect(sim.dsn("cluster"), **fresh) as conn:
            await assert_on_the_writer(conn, sim, name)
            cluster = registry.clusters()[0]
            topology = cluster.topology
            assert topology is not None
            assert all(isinstance(i.instance_id, str) for i in topology.instances), name
            assert len({i.instance_id for i in topology.instances}) == len(topology.instances), name
            if name in NAMES_THE_WRITER:
                assert topology.writer is not None and topology.writer.instance_id == writer, name
            if name == "unknown instance ids":  # taken at face value, as readers
                assert {"99", "ghost", ""} <= {r.instance_id for r in topology.readers}
            # through a replica's own endpoint once the cluster is known: moved to the writer, the
            # catalog's (when it names it) or the cluster endpoint (when it names none; then the
            # cluster is known by its endpoint alone)
            async with aurora_async.connect(sim.dsn(replica), **fresh) as moved:
                await assert_on_the_writer(moved, sim, f"{name}, through {replica}")
            assert await conn.fetchval(INSTANCE_ID_SQL) == writer, name  # still usable, still there
        assert registry.clusters() == [], name
    await write_catalog(sim, real)


async def test_unknown_instance_ids_never_take_a_reader_connection(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    real = await read_catalog(sim)
    await write_catalog(sim, {"instances": rows_of(real) + UNKNOWN_IDS})
    reader_options = options(sim, failover_mode="strict_reader", failover_timeout=20)
    async with aurora_async.connect(sim.dsn("reader"), **reader_options) as conn:
        first = conn.instance.instance_id
        assert first in sim.reader_ids and await conn.fetchval(IS_READER_SQL) is True
        await sim.reset_connections(first)
        with pytest.raises(FailoverSuccessError):
            await conn.fetchval("SELECT 1")
        # the readers it could pick: 99, ghost, "" (unreachable) and the other real replica
        assert conn.instance.instance_id in sim.reader_ids and conn.instance.instance_id != first
        assert await conn.fetchval(INSTANCE_ID_SQL) == conn.instance.instance_id
        assert await conn.fetchval(IS_READER_SQL) is True


async def test_a_replica_in_the_newest_writer_row_does_not_hide_the_true_writer(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    writer, replica, other = sim.writer_id, *sim.reader_ids
    real = rows_of(await read_catalog(sim))
    wrong = [as_writer(r, time.time() + 30) if r["id"] == replica else r for r in real]
    await write_catalog(sim, {"instances": wrong})
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as conn:
        await assert_on_the_writer(conn, sim, "through the cluster endpoint")
        # through the third instance's endpoint: must move to the writer, which answers "yes, I am
        # the writer" (out of recovery, and the catalog has its MASTER_SESSION_ID row)
        async with aurora_async.connect(sim.dsn(other), **options(sim)) as moved:
            await assert_on_the_writer(moved, sim, f"through {other}")
        cluster = registry.clusters()[0]

        async def writer_known() -> bool:
            known = cluster.topology.writer if cluster.topology is not None else None
            return known is not None and known.instance_id == writer

        await eventually(writer_known, timeout=5, what="the verified writer to be the topology's writer")


# -- failover --------------------------------------------------------------------------------------------


async def test_failover_with_a_garbage_catalog(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    opts = options(sim, failover_timeout=20)
    # 1. unknown ids in the topology the cluster knows when the writer dies (its search watches them
    # too); the failover rewrites the catalog, as Aurora does: the connections follow the new writer
    real = rows_of(await read_catalog(sim))
    await write_catalog(sim, {"instances": real + UNKNOWN_IDS})
    pool: aurora_async.AuroraPool[Any] | None = None
    conn: AuroraConnection | None = None
    try:
        pool = await aurora_async.create_pool(sim.dsn("cluster"), min_size=2, max_size=2, **opts)
        conn = await aurora_async.connect(sim.dsn("cluster"), **opts)
        topology = registry.clusters()[0].topology
        assert topology is not None and {"99", "ghost", ""} <= {i.instance_id for i in topology.instances}
        report = await sim.failover()
        assert await fetchval_after_failover(conn, INSTANCE_ID_SQL) == report.new_writer
        await assert_on_the_writer(conn, sim, "after a failover from unknown ids")
        async with pool.acquire() as pooled:
            assert await fetchval_after_failover(pooled, INSTANCE_ID_SQL) == report.new_writer
            await assert_on_the_writer(pooled, sim, "pooled, after a failover from unknown ids")

        # 2. no writer row when the writer dies: until the failover's rewrite nothing passes as the
        # writer (the monitor, refreshing fast after the last failover, is searching in vain by then)
        real = rows_of(await read_catalog(sim))
        await write_catalog(sim, {"instances": [not_the_writer(r) for r in real]})
        report = await sim.failover()
        assert await fetchval_after_failover(conn, INSTANCE_ID_SQL) == report.new_writer
        await assert_on_the_writer(conn, sim, "after a failover from a catalog without a writer")

        # 3. a stale catalog that keeps naming the old writer (a replica now): no instance passes as
        # the writer, so the failover gives up at failover_timeout, never settling on a replica
        async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as doomed:
            await assert_on_the_writer(doomed, sim, "before the catalog goes stale")
            current = await read_catalog(sim)
            stale = [
                as_writer(r, None) if r["id"] == report.old_writer else not_the_writer(r)
                for r in rows_of(current)
            ]
            await write_catalog(sim, {"instances": stale})
            await sim.reset_connections(sim.writer_id)
            started = time.monotonic()
            with pytest.raises(FailoverFailedError, match="no writer could be reached"):
                await doomed.fetchval(INSTANCE_ID_SQL)
            assert FAILOVER_TIMEOUT - 0.5 <= time.monotonic() - started < FAILOVER_TIMEOUT + MARGIN
            assert doomed.is_closed()
            await write_catalog(sim, current)
        async with aurora_async.connect(sim.dsn("cluster"), **opts) as fresh:
            await assert_on_the_writer(fresh, sim, "once the catalog is right again")
    finally:
        if conn is not None:
            await conn.close()
        if pool is not None:
            await pool.close()
    assert registry.clusters() == []


# -- an instance host pattern that leads nowhere ---------------------------------------------------------


async def test_a_host_pattern_that_leads_nowhere_is_refused_at_connect(
    aurora_postgres: AuroraSimulator,
) -> None:
    """The first connection knows which instance it reached: the address the pattern gives for that
    instance must answer as it, or failover and host monitoring would dial nowhere for the whole
    failover_timeout. A pattern that does not resolve, leads to a closed port or to another instance is
    a ConfigurationError naming it, at connect, and leaves no cluster behind."""
    sim = aurora_postgres
    other = sim.reader_ids[0]
    async with Forwarder("127.0.43.11", sim.endpoint(other)) as port:  # instance 11's id, another's server
        cases = {
            "?.nowhere.invalid": "connecting failed (gaierror",
            "127.0.42.?:1": "connecting failed (ConnectionRefusedError",
            f"127.0.43.?:{port}": f"instance '{other}' answered",
        }
        for pattern, problem in cases.items():
            with pytest.raises(aurora_async.ConfigurationError) as raised:
                await aurora_async.connect(
                    sim.dsn("cluster"), **options(sim, cluster_instance_host_pattern=pattern)
                )
            message = str(raised.value)
            assert f"cluster_instance_host_pattern {pattern!r} leads nowhere" in message, message
            assert problem in message and "for instance '11'" in message, message
            assert registry.clusters() == []
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim)) as right:  # the simulator's own
        await assert_on_the_writer(right, sim, sim.instance_host_pattern)


async def test_a_failover_that_cannot_reach_the_writer_does_not_hammer_the_cluster(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    # instance 11 is reachable through the pattern (a forwarder), the other instances are not: the
    # writer search verifies the new writer through the cluster endpoint, then its address refuses
    async with Forwarder("127.0.43.11", sim.endpoint("11")) as port:
        conn = await aurora_async.connect(
            sim.dsn("cluster"),
            **options(sim, cluster_instance_host_pattern=f"127.0.43.?:{port}", plugins=("failover",)),
        )
        try:
            cluster = registry.clusters()[0]
            await sim.failover()
            before = cluster.stats["writer_searches"]
            with pytest.raises(FailoverFailedError):
                await conn.fetchval("SELECT 1")
            searches = cluster.stats["writer_searches"] - before
        finally:
            await conn.close()
    # each search verifies the writer through the cluster endpoint in milliseconds, then its instance
    # host refuses; pausing between searches as the searches' own probes do (up to
    # topology_high_refresh, 0.1 s) would make some 30 in 3 s
    assert searches <= 40, f"{searches} writer searches in a {FAILOVER_TIMEOUT:g} s failover"


# -- a wrong password ------------------------------------------------------------------------------------

RIGHT = "right-Pw-4d1f0c"
WRONG = "wrong-Pw-8e27b9"


def _texts(error: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(error))]
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


async def test_a_wrong_password_is_a_clear_error_without_the_password(
    aurora_postgres: AuroraSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = aurora_postgres
    caplog.set_level(logging.DEBUG, logger="aurora_async")
    await sim.set_password("app", RIGHT)

    def dsn(password: str) -> str:
        return f"postgresql://app:{quote(password, safe='')}@{sim.cluster_endpoint}/postgres"

    attempts: list[Callable[[], Awaitable[AuroraConnection]]] = [
        lambda: aurora_async.connect(dsn(WRONG), **options(sim)),
        lambda: aurora_async.connect(
            host=sim.cluster_endpoint.rsplit(":", 1)[0],
            port=sim.port,
            user="app",
            password=WRONG,
            database="postgres",
            **options(sim),
        ),
    ]
    for attempt in attempts:  # before any connection to the cluster
        with pytest.raises(asyncpg.InvalidPasswordError) as raised:
            await attempt()
        assert 'password authentication failed for user "app"' in str(raised.value)
        assert all(WRONG not in text for text in _texts(raised.value))
        assert registry.clusters() == []

    async with aurora_async.connect(dsn(RIGHT), **options(sim)) as right:
        await assert_on_the_writer(right, sim, "the right password")
        for attempt in attempts:  # and while the cluster is known: no failover, the same error
            with pytest.raises(asyncpg.InvalidPasswordError) as raised:
                await attempt()
            assert all(WRONG not in text and RIGHT not in text for text in _texts(raised.value))
        assert [c.refs for c in registry.clusters()] == [1]
        assert await right.fetchval(INSTANCE_ID_SQL) == sim.writer_id  # undisturbed
    assert registry.clusters() == []
    assert WRONG not in caplog.text and RIGHT not in caplog.text
