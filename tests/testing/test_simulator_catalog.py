"""The simulated cluster as plain asyncpg sees it: identities, roles, Aurora's catalog, endpoints."""

from __future__ import annotations

import functools

import asyncpg
import pytest

from aurora_async.testing import AuroraSimulator
from tests.helpers import (
    AURORA_DETECT_SQL,
    AURORA_HOST_ID_SQL,
    AURORA_REPLICA_STATUS_COLUMNS,
    AURORA_TOPOLOGY_SQL,
    AURORA_WRITER_ID_SQL,
    IS_READER_SQL,
    MULTI_AZ_DETECT_SQL,
    MULTI_AZ_HOST_ID_SQL,
    MULTI_AZ_TOPOLOGY_SQL,
    MULTI_AZ_WRITER_SQL,
    RDS_DETECT_SQL,
    connect,
    eventually,
    fetchval,
)


async def test_every_instance_reports_its_own_identity_and_role(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    assert sim.instance_ids == ["11", "12", "13"]
    assert sim.writer_id == "11"
    assert sim.reader_ids == ["12", "13"]
    for instance_id in sim.instance_ids:
        conn = await connect(sim.dsn(instance_id))
        try:
            row = await conn.fetchrow(AURORA_HOST_ID_SQL)
            assert row is not None
            assert tuple(row) == (instance_id, instance_id)
            assert await conn.fetchval(IS_READER_SQL) is (instance_id != sim.writer_id)
            writer_rows = await conn.fetch(AURORA_WRITER_ID_SQL)
            assert [r[0] for r in writer_rows] == ([instance_id] if instance_id == sim.writer_id else [])
            assert (
                str(await conn.fetchval("SELECT pg_catalog.inet_server_addr()"))
                == sim.endpoint(instance_id).rsplit(":", 1)[0]
            )
        finally:
            await conn.close()


async def test_replicas_refuse_writes_and_receive_the_writers(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    writer = await connect(sim.dsn(sim.writer_id))
    await writer.execute("CREATE TABLE items(id int PRIMARY KEY)")
    await writer.execute("INSERT INTO items SELECT generate_series(1, 50)")
    await writer.close()
    for reader_id in sim.reader_ids:
        conn = await connect(sim.dsn(reader_id))
        try:
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute("INSERT INTO items VALUES (1000)")
            assert await conn.fetchval("SHOW transaction_read_only") == "on"
            # synchronous replication guarantees one replica has it; the other follows quickly
            await eventually(
                functools.partial(_count_is, conn, 50), timeout=10, what=f"rows on replica {reader_id}"
            )
        finally:
            await conn.close()


async def _count_is(conn: asyncpg.Connection, expected: int) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM items") == expected)


async def test_aurora_topology_query_returns_the_real_shape(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    for target in ("cluster", "reader", *sim.instance_ids):
        conn = await connect(sim.dsn(target))
        try:
            rows = await conn.fetch(AURORA_TOPOLOGY_SQL)
        finally:
            await conn.close()
        assert sorted(r[0] for r in rows) == sim.instance_ids
        assert [r[0] for r in rows if r[1] is True] == [sim.writer_id]
        for row in rows:
            assert isinstance(row[2], float)  # CPU
            assert isinstance(row[3], float)  # COALESCE(REPLICA_LAG_IN_MSEC, 0)
            assert row[4] is not None and row[4].tzinfo is not None
            assert (row[3] == 0.0) is (row[0] == sim.writer_id)
    result = await fetchval(
        sim.dsn("cluster"),
        "SELECT pg_catalog.pg_get_function_result('pg_catalog.aurora_replica_status'::regproc)",
    )
    assert isinstance(result, str)
    columns = [c.strip().split(" ")[0] for c in result.removeprefix("TABLE(").removesuffix(")").split(",")]
    assert columns == AURORA_REPLICA_STATUS_COLUMNS
    assert await fetchval(sim.dsn("cluster"), "SELECT count(*) FROM aurora_replica_status()") == 3


async def test_dialect_detection_queries_see_aurora(aurora_postgres: AuroraSimulator) -> None:
    dsn = aurora_postgres.dsn("cluster")
    assert await fetchval(dsn, AURORA_DETECT_SQL) is True
    assert await fetchval(dsn, "SELECT 1 FROM pg_catalog.aurora_replica_status() LIMIT 1") == 1
    assert await fetchval(dsn, "SELECT 1 FROM pg_catalog.pg_proc LIMIT 1") == 1
    assert await fetchval(dsn, "SHOW rds.extensions") == (
        await fetchval(dsn, "SELECT setting FROM pg_settings WHERE name = 'rds.extensions'")
    )
    assert isinstance(await fetchval(dsn, "SELECT pg_catalog.aurora_version()"), str)
    # the replaced pg_settings view keeps the real rows and its update rule
    assert await fetchval(dsn, "SELECT setting FROM pg_settings WHERE name = 'port'") is not None
    conn = await connect(dsn)
    try:
        await conn.execute("UPDATE pg_settings SET setting = '42s' WHERE name = 'statement_timeout'")
        assert await conn.fetchval("SHOW statement_timeout") == "42s"
    finally:
        await conn.close()


async def test_catalog_works_for_unprivileged_users_and_empty_search_path() -> None:
    async with AuroraSimulator(instances=2, user="app", database="appdb") as sim:
        dsn = sim.dsn("cluster")
        assert dsn.endswith("/appdb") and "app@" in dsn
        conn = await connect(dsn)
        try:
            assert await conn.fetchval("SELECT current_user") == "app"
            assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
            await conn.execute("SET search_path = ''")
            rows = await conn.fetch(AURORA_TOPOLOGY_SQL)
            assert sorted(r[0] for r in rows) == ["11", "12"]
            assert await conn.fetchval(AURORA_DETECT_SQL) is True
            await conn.execute("CREATE TABLE public.mine(x int)")  # the app owns its database
        finally:
            await conn.close()


@pytest.mark.aurora_simulator(topology="multi-az", instances=3)
async def test_multi_az_topology_functions(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    ids: dict[str, str] = {}
    for instance_id in sim.instance_ids:
        conn = await connect(sim.dsn(instance_id))
        try:
            rows = await conn.fetch(MULTI_AZ_TOPOLOGY_SQL)
            assert len(rows) == 3
            assert {r["port"] for r in rows} == {sim.port}
            host_id = await conn.fetchrow(MULTI_AZ_HOST_ID_SQL)
            assert host_id is not None
            assert host_id[1] == instance_id  # the first label of the endpoint names the instance
            ids[instance_id] = host_id[0]
            assert host_id[0].startswith("db-")
            assert await conn.fetchval(MULTI_AZ_DETECT_SQL) is not None
            writer_rows = await conn.fetch(MULTI_AZ_WRITER_SQL)
            assert bool(writer_rows) is (instance_id != sim.writer_id)
            detect = await conn.fetchrow(RDS_DETECT_SQL)
            assert detect is not None
            assert tuple(detect) == (True, False)
            with pytest.raises(asyncpg.UndefinedFunctionError):
                await conn.fetchval("SELECT pg_catalog.aurora_replica_status()")
        finally:
            await conn.close()
    assert len(set(ids.values())) == 3
    # every reader names the writer's resource id as its source
    for reader_id in sim.reader_ids:
        assert await fetchval(sim.dsn(reader_id), MULTI_AZ_DETECT_SQL) == ids[sim.writer_id]
    # and after a failover the new writer is the source
    await sim.failover()
    for reader_id in sim.reader_ids:
        assert await fetchval(sim.dsn(reader_id), MULTI_AZ_DETECT_SQL) == ids[sim.writer_id]
    assert await fetchval(sim.dsn(sim.writer_id), MULTI_AZ_WRITER_SQL) is None


@pytest.mark.aurora_simulator(topology="none", instances=2)
async def test_plain_topology_has_no_aws_catalog(aurora_postgres: AuroraSimulator) -> None:
    dsn = aurora_postgres.dsn("cluster")
    assert await fetchval(dsn, AURORA_DETECT_SQL) is None
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await fetchval(dsn, "SELECT pg_catalog.aurora_replica_status()")
    assert await fetchval(aurora_postgres.dsn("12"), IS_READER_SQL) is True


async def test_reader_endpoint_spreads_over_replicas(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    seen = [await fetchval(sim.dsn("reader"), AURORA_HOST_ID_SQL) for _ in range(6)]
    assert set(seen) == set(sim.reader_ids)
    assert await fetchval(sim.dsn("cluster"), AURORA_HOST_ID_SQL) == sim.writer_id


@pytest.mark.aurora_simulator(instances=1)
async def test_single_instance_cluster(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    assert sim.instance_ids == ["11"] and sim.reader_ids == []
    # with no replica, Aurora's reader endpoint leads to the writer
    assert await fetchval(sim.dsn("reader"), AURORA_HOST_ID_SQL) == "11"
    conn = await connect(sim.dsn("cluster"))
    try:
        await conn.execute("CREATE TABLE t(x int)")
        await conn.execute("INSERT INTO t VALUES (1)")  # commits without any synchronous replica
    finally:
        await conn.close()


@pytest.mark.aurora_simulator(instances=5)
async def test_five_instances(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    assert sim.instance_ids == ["11", "12", "13", "14", "15"]
    conn = await connect(sim.dsn("15"))
    try:
        assert len(await conn.fetch(AURORA_TOPOLOGY_SQL)) == 5
    finally:
        await conn.close()
    assert sim.instance_host_pattern == f"127.0.42.?:{sim.port}"
    for instance_id in sim.instance_ids:
        host = sim.instance_host_pattern.split(":")[0].replace("?", instance_id)
        assert sim.endpoint(instance_id) == f"{host}:{sim.port}"
