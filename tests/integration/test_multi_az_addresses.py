"""RDS Multi-AZ DB clusters whose catalog lists instances by IP address, on the simulator.

Real RDS lists DNS names (``db-1.abc.us-east-1.rds.amazonaws.com``) and an instance is named by the first
label. An IP address has no such label: ``127.0.42.11`` and ``127.0.42.12`` would both be ``"127"``, and
the instances would collapse into one. With ``catalog_endpoints="addresses"`` the simulator lists each
instance's loopback address: the instances must stay distinct (named ``address:port``), the topology
and each connection's own ``instance_id()`` must agree, and a failover must land on the new writer.
"""

from __future__ import annotations

from typing import Any

import pytest

import aurora_async
from aurora_async import AuroraConnection, AuroraMySQLConnection, FailoverSuccessError, Role
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from tests.helpers import IS_READER_SQL, fetchval

ADDRESSES = pytest.mark.aurora_simulator(
    instances=3, topology="multi-az", catalog_endpoints="addresses", dns_delay=0.5
)


def options(sim: AuroraSimulator, pattern: bool) -> dict[str, Any]:
    """No pattern is needed: the catalog's addresses are reachable as listed (one given anyway is not
    applied to an address, which has no instance id to put in it)."""
    extra = {"cluster_instance_host_pattern": sim.instance_host_pattern} if pattern else {}
    return {"failover_timeout": 20, **extra}


def assert_distinct_instances(sim: AuroraSimulator, writer: str) -> None:
    (cluster,) = registry.clusters()
    topology = cluster.topology
    assert topology is not None
    assert {i.instance_id for i in topology.instances} == {sim.endpoint(i) for i in sim.instance_ids}
    assert all(i.endpoint == i.instance_id for i in topology.instances)  # named by address and port
    assert topology.writer is not None and topology.writer.instance_id == sim.endpoint(writer)


@ADDRESSES
async def test_the_catalog_lists_addresses(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    rows = await fetchval(
        sim.dsn(sim.writer_id),
        "SELECT array_agg(endpoint || ':' || port ORDER BY endpoint) FROM rds_tools.show_topology()",
    )
    assert rows == [sim.endpoint(i) for i in sim.instance_ids]


def test_catalog_endpoints_is_checked() -> None:
    with pytest.raises(ValueError, match="catalog_endpoints must be one of names, addresses"):
        AuroraSimulator(catalog_endpoints="ips")  # type: ignore[arg-type]


@ADDRESSES
@pytest.mark.parametrize("pattern", [False, True], ids=["no-pattern", "pattern"])
async def test_instances_listed_by_address_stay_distinct_through_a_failover(
    aurora_postgres: AuroraSimulator, pattern: bool
) -> None:
    sim = aurora_postgres
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim, pattern)) as conn:
        assert isinstance(conn, AuroraConnection)
        assert registry.clusters()[0].dialect.code == "multi-az-pg"  # type: ignore[union-attr]
        assert conn.instance.instance_id == sim.endpoint("11") and conn.role is Role.WRITER
        assert_distinct_instances(sim, "11")
        report = await sim.failover()
        with pytest.raises(FailoverSuccessError):
            await conn.fetchval("SELECT 1")
        assert report.new_writer is not None and report.new_writer != "11"
        assert conn.instance.instance_id == sim.endpoint(report.new_writer) and conn.role is Role.WRITER
        # really there: the server says which instance it is, and that it is not in recovery
        assert await conn.fetchval("SELECT current_setting('aurora_sim.instance_id')") == report.new_writer
        assert await conn.fetchval(IS_READER_SQL) is False
        assert_distinct_instances(sim, report.new_writer)


@ADDRESSES
async def test_mysql_instances_listed_by_address_stay_distinct_through_a_failover(
    aurora_mysql: AuroraSimulator,
) -> None:
    sim = aurora_mysql
    async with aurora_async.connect(sim.dsn("cluster"), **options(sim, pattern=False)) as conn:
        assert isinstance(conn, AuroraMySQLConnection)
        assert registry.clusters()[0].dialect.code == "multi-az-mysql"  # type: ignore[union-attr]
        assert conn.instance.instance_id == sim.endpoint("11") and conn.role is Role.WRITER
        assert_distinct_instances(sim, "11")
        report = await sim.failover()
        with pytest.raises(FailoverSuccessError):
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
        assert report.new_writer is not None and report.new_writer != "11"
        assert conn.instance.instance_id == sim.endpoint(report.new_writer) and conn.role is Role.WRITER
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@server_id, @@read_only")
            assert await cur.fetchone() == (int(report.new_writer), 0)
        assert_distinct_instances(sim, report.new_writer)
