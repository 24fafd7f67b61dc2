"""Connections through an RDS Proxy (the simulator's ``proxy=True`` endpoint), both engines: in proxy
mode every connection, the library's own included, goes through the proxy, and a failover behind
it is survived through it; what the application sees depends on whether the proxy could keep its
connection (PostgreSQL: an idle one with no session state is moved to the new writer unnoticed).

"Direct" connections are counted from the fault proxy's listeners: every connection accepted at an
instance or cluster endpoint that the RDS Proxy did not open itself went around it.
"""

from __future__ import annotations

from typing import Any

import pytest

import aurora_async
from aurora_async import FailoverSuccessError, TransactionResolutionUnknownError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator

from ._engine_ops import Conn, EngineOps

pytestmark = pytest.mark.aurora_simulator(proxy=True)

PROXY_MODE = {"rds_proxy": True, "failover_timeout": 20}


async def direct_connections(sim: AuroraSimulator) -> int:
    status = await sim.proxy_status()
    accepted = sum(listener["accepted"] for listener in status["listeners"].values())
    return int(accepted - status["rds_proxies"]["proxy"]["backends"])


async def until_written(ops: EngineOps, conn: Conn, sql: str) -> int:
    """Run ``sql`` (a committed write), again after each FailoverSuccessError; how many there were."""
    failovers = 0
    while True:
        try:
            await ops.write(conn, sql)
            return failovers
        except FailoverSuccessError:
            failovers += 1
            assert failovers < 3, "the connection failed over again and again"


async def test_proxy_mode_reaches_the_cluster_through_the_proxy_only(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    conn: Conn = await aurora_async.connect(sim.dsn("proxy"), **PROXY_MODE)
    try:
        await ops.write(conn, "CREATE TABLE proxied(id int PRIMARY KEY)")
        await ops.write(conn, "INSERT INTO proxied VALUES (1)")
        old_writer = sim.writer_id
        [cluster] = registry.clusters()
        assert cluster.dialect is not None and not cluster.dialect.has_topology
        assert cluster.host_monitors == {}
        await sim.failover()
        failovers = await until_written(ops, conn, "INSERT INTO proxied VALUES (2)")
        assert failovers <= 1
        assert await ops.host_id(conn) == sim.writer_id != old_writer  # on the new writer, via the proxy
        assert await ops.scalar(conn, "SELECT count(*) FROM proxied") == 2
        assert cluster.topology is not None and len(cluster.topology.instances) == 1
        assert cluster.host_monitors == {}
        assert await direct_connections(sim) == 0  # neither the connection nor the library went around
    finally:
        await ops.close(conn)
    assert registry.clusters() == []


async def test_without_proxy_mode_the_instances_are_dialled_directly(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """``rds_proxy=False`` opts back into instance routing (for a proxy whose instances are reachable):
    the topology is read through the proxy and failover and probes dial the instances."""
    conn: Conn = await aurora_async.connect(
        sim.dsn("proxy"), **ops.options(rds_proxy=False, failover_timeout=20)
    )
    try:
        await sim.failover()
        await until_written(ops, conn, "CREATE TABLE routed(id int)")
        assert await ops.host_id(conn) == sim.writer_id
        assert await direct_connections(sim) > 0
    finally:
        await ops.close(conn)


@pytest.mark.parametrize("engine", ["postgresql"])
async def test_what_an_application_sees_behind_the_proxy_in_a_failover(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """Idle without session state: moved by the proxy, no error. Idle with asyncpg's named statements
    (pinned): closed by the proxy, so one FailoverSuccessError. In a transaction: the transaction is
    lost (TransactionResolutionUnknownError) and nothing of it is stored."""
    dsn = sim.dsn("proxy")
    moved = await aurora_async.connect(dsn, statement_cache_size=0, **PROXY_MODE)
    pinned = await aurora_async.connect(dsn, **PROXY_MODE)
    in_tx = await aurora_async.connect(dsn, statement_cache_size=0, **PROXY_MODE)
    conns: list[Any] = [moved, pinned, in_tx]
    try:
        await moved.execute("CREATE TABLE seen(who text PRIMARY KEY)")
        await moved.execute("INSERT INTO seen VALUES ('before')")
        assert await pinned.fetchval("SELECT 2") == 2  # its statement cache prepares a named statement
        tx = in_tx.transaction()
        await tx.start()
        await in_tx.execute("INSERT INTO seen VALUES ('lost')")
        await sim.failover()
        new_writer = sim.writer_id
        assert await moved.fetchval("SELECT pg_catalog.aurora_db_instance_identifier()") == new_writer
        with pytest.raises(FailoverSuccessError):
            await pinned.fetchval("SELECT 1")
        assert await pinned.fetchval("SELECT pg_catalog.aurora_db_instance_identifier()") == new_writer
        with pytest.raises(TransactionResolutionUnknownError):
            await in_tx.execute("INSERT INTO seen VALUES ('after')")
        with pytest.raises(TransactionResolutionUnknownError):
            await tx.commit()  # the transaction it belonged to is gone: nothing to commit
        await in_tx.execute("INSERT INTO seen VALUES ('after')")
        rows = {r["who"] for r in await moved.fetch("SELECT who FROM seen")}
        assert rows == {"before", "after"}
        status = (await sim.proxy_status())["rds_proxies"]["proxy"]
        assert status["reattached"] >= 1 and status["dropped"] >= 2, status
        assert await direct_connections(sim) == 0
    finally:
        for conn in conns:
            await conn.close()
