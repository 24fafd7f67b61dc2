"""Connections through a local Unix socket (asyncpg's ``host='/dir'``, aiomysql's ``unix_socket=``): the
facade works as the driver does, with the single-address rules (no topology, no host monitoring), and a
lost connection is replaced through the same socket."""

from __future__ import annotations

from typing import Any

import pytest

import aurora_async
from aurora_async import ConfigurationError, FailoverSuccessError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator


def socket_options(sim: AuroraSimulator, engine: str) -> dict[str, Any]:
    """How an application reaches the writer's server through its Unix socket."""
    cluster: Any = sim._running().cluster
    server: Any = cluster.server(sim.writer_id)
    if engine == "postgresql":
        return {"host": str(server.sockdir), "port": server.port, "user": "postgres", "database": "postgres"}
    return {"engine": "mysql", "unix_socket": str(server.socket), "user": "root", "password": ""}


async def scalar(conn: Any, engine: str, sql: str) -> Any:
    if engine == "postgresql":
        return await conn.fetchval(sql)
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
        return row[0]


@pytest.mark.parametrize("plugins", ["default", "none"])
async def test_a_unix_socket_connection_works_and_reconnects_through_the_same_socket(
    sim: AuroraSimulator, engine: str, plugins: str
) -> None:
    options = socket_options(sim, engine)
    if plugins == "none":
        options["plugins"] = ()
    conn = await aurora_async.connect(**options)
    try:
        me = "pg_backend_pid()" if engine == "postgresql" else "CONNECTION_ID()"
        first = await scalar(conn, engine, f"SELECT {me}")
        if engine == "postgresql":  # a Unix socket has no server address
            assert await conn.fetchval("SELECT inet_server_addr()") is None
        [cluster] = registry.clusters()
        if plugins == "default":  # (without plugins no dialect is detected at all)
            assert cluster.dialect is not None and not cluster.dialect.has_topology
        assert cluster.host_monitors == {}

        # the server ends the session (a restart would too): through the same socket again
        kill = f"SELECT pg_terminate_backend({first})" if engine == "postgresql" else f"KILL {first}"
        other = await aurora_async.connect(**socket_options(sim, engine), plugins=())
        try:
            await scalar(other, engine, kill) if engine == "postgresql" else await _execute(other, kill)
        finally:
            await _close(other, engine)
        assert cluster.host_monitors == {}
        if plugins == "default":
            with pytest.raises(FailoverSuccessError):
                await scalar(conn, engine, "SELECT 1")
            second = await scalar(conn, engine, f"SELECT {me}")
            assert second != first
        else:
            with pytest.raises(Exception) as lost:
                await scalar(conn, engine, "SELECT 1")
            assert not isinstance(lost.value, FailoverSuccessError)
            assert conn.is_closed()
    finally:
        await _close(conn, engine)


async def _execute(conn: Any, sql: str) -> None:
    async with conn.cursor() as cur:
        await cur.execute(sql)


async def _close(conn: Any, engine: str) -> None:
    if engine == "postgresql":
        await conn.close()
    elif not conn.closed:
        await conn.ensure_closed()


async def test_settings_that_route_to_instances_are_refused_through_a_unix_socket(
    sim: AuroraSimulator, engine: str
) -> None:
    options = socket_options(sim, engine)
    with pytest.raises(ConfigurationError, match="local Unix socket"):
        await aurora_async.connect(**options, cluster_instance_host_pattern=sim.instance_host_pattern)
    with pytest.raises(ConfigurationError, match="read_write_splitting"):
        await aurora_async.connect(**options, plugins=("failover", "read_write_splitting"))
    assert registry.clusters() == []  # refused before any connection was made


async def test_mysql_takes_unix_socket_none_as_aiomysql_does(aurora_mysql: AuroraSimulator) -> None:
    sim = aurora_mysql
    conn = await aurora_async.connect(
        sim.dsn("cluster"), unix_socket=None, cluster_instance_host_pattern=sim.instance_host_pattern
    )
    try:
        assert await scalar(conn, "mysql", "SELECT 1") == 1
    finally:
        await conn.ensure_closed()
    with pytest.raises(ConfigurationError, match="unix_socket must be an absolute path"):
        await aurora_async.connect(sim.dsn("cluster"), unix_socket="relative.sock")
