"""Dialect detection on the simulator's real servers.

A detection query may only conclude "not this dialect" when the catalog object it asks about does not
exist. Any other error (a privilege the user lacks, a statement timeout, a query cancelled) says nothing
about the cluster: it fails the connect, unchanged, and the next connect detects again. Before, such an
error silently made the cluster plain ``pg`` / ``mysql`` for its whole life (no topology, no failover).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomysql
import asyncpg
import pymysql
import pytest

import aurora_async
from aurora_async import AuroraConnection, AuroraMySQLConnection
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from tests.helpers import eventually, execute, fetchval

SINGLE = pytest.mark.aurora_simulator(instances=1, dns_delay=0)


def options(sim: AuroraSimulator, **extra: Any) -> dict[str, Any]:
    return {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 20, **extra}


async def dialect_of(sim: AuroraSimulator, **extra: Any) -> str:
    """The dialect a connect detects.

    A closed cluster's dialect is remembered for the next connect of the same identity (for
    ``topology_refresh`` seconds): a check made before breaking something uses ``cluster_id`` to be a
    cluster of its own, so that the connects after it detect again; one made after a failed connect
    uses the failed connect's identity, proving that the failure left nothing to adopt."""
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim, **extra)):
        (cluster,) = registry.clusters()
        assert cluster.dialect is not None
        code = cluster.dialect.code
    assert registry.clusters() == []
    return code


async def close(conn: AuroraConnection | AuroraMySQLConnection) -> None:
    if isinstance(conn, AuroraMySQLConnection):
        await conn.ensure_closed()
    else:
        await conn.close()


async def connect_fails(sim: AuroraSimulator, error: type[BaseException], **extra: Any) -> BaseException:
    """The connect's error; a connect that succeeds instead fails the test, naming what it detected."""
    try:
        conn = await aurora_async.connect(sim.dsn("cluster"), **options(sim, **extra))
    except error as exc:
        assert registry.clusters() == []  # nothing remembers a dialect: the next connect detects again
        return exc
    dialect = registry.clusters()[0].dialect
    await close(conn)
    pytest.fail(f"connected, with dialect {dialect.code if dialect else None}, instead of raising {error}")


# -- PostgreSQL -------------------------------------------------------------------------------------------


async def connect_and_close(sim: AuroraSimulator) -> None:
    await close(await aurora_async.connect(sim.dsn("cluster"), **options(sim)))


async def fetch_all(dsn: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return list(await conn.fetch(query, timeout=5))
    finally:
        await conn.close(timeout=5)


def pg_superuser(sim: AuroraSimulator) -> str:
    """The writer's server itself as the bootstrap superuser (what the tests use to change the catalog)."""
    return f"postgresql://postgres@{sim.server_endpoint(sim.writer_id)}/postgres"


@pytest.mark.aurora_simulator(instances=1, dns_delay=0, user="app")
@pytest.mark.parametrize(
    ("aurora_postgres", "function", "detected"),
    [
        ("aurora", "pg_catalog.aurora_replica_status()", "aurora-pg"),
        ("multi-az", "rds_tools.multi_az_db_cluster_source_dbi_resource_id()", "multi-az-pg"),
    ],
    indirect=["aurora_postgres"],
)
async def test_a_catalog_function_the_user_may_not_execute_fails_the_connect(
    aurora_postgres: AuroraSimulator, function: str, detected: str
) -> None:
    sim = aurora_postgres
    assert await dialect_of(sim, cluster_id="before") == detected
    await execute(pg_superuser(sim), f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
    raised = await connect_fails(sim, asyncpg.InsufficientPrivilegeError)
    assert "permission denied" in str(raised)
    await execute(pg_superuser(sim), f"GRANT EXECUTE ON FUNCTION {function} TO PUBLIC")
    assert await dialect_of(sim) == detected


@asynccontextmanager
async def pg_settings_locked(sim: AuroraSimulator) -> AsyncIterator[None]:
    """Every read of ``pg_catalog.pg_settings`` (the first detection query) waits while this lasts."""
    conn = await asyncpg.connect(pg_superuser(sim), timeout=5)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE pg_catalog.pg_settings IN ACCESS EXCLUSIVE MODE", timeout=5)
            yield
    finally:
        await conn.close(timeout=5)


@SINGLE
async def test_a_statement_timeout_during_detection_fails_the_connect(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    async with pg_settings_locked(sim):
        raised = await connect_fails(
            sim, asyncpg.QueryCanceledError, server_settings={"statement_timeout": "200"}
        )
        assert "statement timeout" in str(raised)
    assert await dialect_of(sim, server_settings={"statement_timeout": "5000"}) == "aurora-pg"


@SINGLE
async def test_a_query_cancelled_during_detection_fails_the_connect(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    waiting_sql = (
        "SELECT pid FROM pg_catalog.pg_stat_activity WHERE usename = 'postgres' AND wait_event_type = 'Lock' "
        "AND query LIKE '%rds.extensions%'"
    )
    async with pg_settings_locked(sim):
        connecting = asyncio.ensure_future(connect_and_close(sim))
        try:
            pid: list[int] = []

            async def detection_waits() -> bool:
                pid[:] = [r[0] for r in await fetch_all(pg_superuser(sim), waiting_sql)]
                return len(pid) == 1

            await eventually(detection_waits, timeout=10, what="the detection query to wait for the lock")
            assert await fetchval(pg_superuser(sim), f"SELECT pg_catalog.pg_cancel_backend({pid[0]})") is True
            with pytest.raises(asyncpg.QueryCanceledError, match="user request"):
                await asyncio.wait_for(connecting, 10)
        finally:
            connecting.cancel()
    assert registry.clusters() == []
    assert await dialect_of(sim) == "aurora-pg"


@pytest.mark.parametrize("aurora_postgres", ["none"], indirect=True)
@SINGLE
async def test_a_plain_server_is_still_plain_pg(aurora_postgres: AuroraSimulator) -> None:
    # no aurora_replica_status(), no rds_tools schema, no rds.extensions: every probe says "not me"
    assert await dialect_of(aurora_postgres) == "pg"


# -- MySQL ------------------------------------------------------------------------------------------------


@asynccontextmanager
async def mysql_root(sim: AuroraSimulator) -> AsyncIterator[Any]:
    """A cursor on the writer's server itself as MariaDB's root (what the tests use to break things)."""
    host, port = sim.server_endpoint(sim.writer_id).rsplit(":", 1)
    conn = await aiomysql.connect(
        host=host, port=int(port), user="root", db="mysql", autocommit=True, connect_timeout=5
    )
    try:
        async with conn.cursor() as cursor:
            yield cursor
    finally:
        conn.close()


@pytest.mark.parametrize("aurora_mysql", ["multi-az"], indirect=True)
@SINGLE
async def test_an_unreadable_catalog_table_is_a_warning_on_mysql(
    aurora_mysql: AuroraSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """MySQL answers "SELECT command denied" (1142) for a table of a schema the user has no privilege
    on whether or not the table exists (the plain-server test below gets it for a missing one): that
    answer cannot fail the connect, but it must not pass in silence either."""
    sim = aurora_mysql
    assert await dialect_of(sim, cluster_id="before") == "multi-az-mysql"
    async with mysql_root(sim) as root:
        await root.execute("REVOKE SELECT ON mysql.rds_topology FROM 'admin'@'%'")
    caplog.set_level(logging.WARNING, logger="aurora_async")
    assert await dialect_of(sim) == "mysql"
    (warning,) = [r.getMessage() for r in caplog.records if "mysql.rds_topology" in r.getMessage()]
    assert "GRANT SELECT ON mysql.rds_topology" in warning and "wrapper_dialect" in warning
    assert "1142" in warning or "denied" in warning
    async with mysql_root(sim) as root:
        await root.execute("GRANT SELECT ON mysql.rds_topology TO 'admin'@'%'")
    assert await dialect_of(sim, cluster_id="after") == "multi-az-mysql"


@pytest.mark.parametrize("aurora_mysql", ["multi-az"], indirect=True)
@SINGLE
async def test_a_statement_timeout_during_mysql_detection_fails_the_connect(
    aurora_mysql: AuroraSimulator,
) -> None:
    sim = aurora_mysql
    async with mysql_root(sim) as root:
        await root.execute("LOCK TABLES mysql.rds_topology WRITE")  # the Multi-AZ probe waits for it
        try:
            raised = await connect_fails(
                sim, pymysql.err.MySQLError, init_command="SET SESSION max_statement_time = 0.2"
            )
            assert raised.args[0] == pymysql.constants.ER.STATEMENT_TIMEOUT  # 1969
        finally:
            await root.execute("UNLOCK TABLES")
    assert await dialect_of(sim) == "multi-az-mysql"


@pytest.mark.parametrize("aurora_mysql", ["none"], indirect=True)
@SINGLE
async def test_a_plain_server_is_still_plain_mysql(aurora_mysql: AuroraSimulator) -> None:
    # no mysql.rds_topology (1142 for this user, who has no privilege in the mysql schema; 1146 for
    # root), no aurora_version: every probe says "not me"
    assert await dialect_of(aurora_mysql) == "mysql"
