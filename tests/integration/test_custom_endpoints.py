"""Custom endpoints on the simulator, both engines: connections made through one stay on its members
(at connect, failover and read/write splitting), while a connection through the writer endpoint on
the same cluster keeps following the writer; members given, or read from the simulator's RDS API
(real aioboto3 clients), refreshed while running, and a refusal of the API.

Which instance a session is on is read with SQL on the session itself, not taken from the library."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aioboto3
import pytest

import aurora_async
from aurora_async import CustomEndpointError, FailoverFailedError, FailoverSuccessError
from aurora_async._registry import registry
from aurora_async.testing import AuroraSimulator
from aurora_async.testing.pytest_plugin import _check_binaries
from tests.helpers import eventually

from ._engine_ops import Conn, EngineOps, engine_ops

pytestmark = pytest.mark.aurora_simulator(dns_delay=0.2)


@pytest.fixture(params=["postgresql", "mysql"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[AuroraSimulator]:
    _check_binaries(request.param, {})
    async with AuroraSimulator(engine=request.param, instances=3, dns_delay=0.2) as cluster:
        yield cluster


@pytest.fixture
def ops(sim: AuroraSimulator) -> EngineOps:
    return engine_ops(sim)


@pytest.fixture
def aws(sim: AuroraSimulator) -> Callable[..., dict[str, Any]]:
    """Options that read a custom endpoint's members from the simulator's RDS API, with one aioboto3
    session (dummy credentials: the API is on loopback)."""
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )

    def options(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "custom_endpoint": name,
            "custom_endpoint_region": "us-east-1",
            "custom_endpoint_api_endpoint": sim.rds_api.endpoint_url,
            "aws_session": session,
            **extra,
        }

    return options


async def _after_failover(ops: EngineOps, conn: Conn) -> str:
    """The instance the session is on, once its failover (if any) has run."""
    try:
        return await ops.host_id(conn)
    except FailoverSuccessError:
        return await ops.host_id(conn)


async def test_each_endpoint_keeps_its_own_members_through_a_failover(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """An ANY endpoint of 11 and 12: its connection follows the writer while the writer is a member,
    and refuses to follow it onto 13; the writer endpoint's connection on the same cluster does."""
    await sim.add_custom_endpoint("oltp", members=["11", "12"], kind="ANY")
    on_writer: Conn = await aurora_async.connect(sim.dsn("cluster"), **ops.options())
    on_custom: Conn = await aurora_async.connect(
        sim.dsn("oltp"), **ops.options(custom_endpoint="oltp", custom_endpoint_members="11,12")
    )
    try:
        assert len(registry.clusters()) == 1  # one cluster, two endpoints
        assert await ops.host_id(on_custom) == "11" == await ops.host_id(on_writer)
        await sim.failover(target="12")
        assert await _after_failover(ops, on_writer) == "12"
        assert await _after_failover(ops, on_custom) == "12"  # a member: followed
        await sim.failover(target="13")
        assert await _after_failover(ops, on_writer) == "13"
        with pytest.raises(FailoverFailedError, match="13, which is not a member of custom endpoint 'oltp'"):
            await _after_failover(ops, on_custom)
        assert on_custom.is_closed()
    finally:
        await ops.close(on_writer)
        await ops.close(on_custom)


async def test_a_reader_endpoint_fails_over_among_its_replicas_never_to_the_writer(
    sim: AuroraSimulator, ops: EngineOps, aws: Callable[..., dict[str, Any]]
) -> None:
    """A READER endpoint of 11 (the writer) and 12, members read from the RDS API: its connections
    are on 12 even when they dial the writer; after a failover to 13 they stay on 11 or 12."""
    await sim.add_custom_endpoint("analytics", members=["11", "12"], kind="READER")
    conns: list[Conn] = []
    try:
        for _ in range(4):
            conns.append(await aurora_async.connect(sim.dsn("cluster"), **ops.options(**aws("analytics"))))
        assert sim.rds_api.calls["DescribeDBClusterEndpoints"] == 1  # one read for every connect
        assert {await ops.host_id(c) for c in conns} == {"12"}  # not 11: the writer (the DSN's instance)
        assert all([await ops.is_reader(c) for c in conns])
        on_writer: Conn = await aurora_async.connect(sim.dsn("cluster"), **ops.options())
        conns.append(on_writer)
        await sim.failover(target="13")  # 12 is re-pointed (restarted), 11 rejoins as a replica
        # 11 is a reader now, and a member: the custom endpoint's sessions may go there, never to 13
        assert {await _after_failover(ops, c) for c in conns[:4]} <= {"11", "12"}
        assert await _after_failover(ops, on_writer) == "13"
    finally:
        for conn in conns:
            await ops.close(conn)


async def test_a_membership_change_is_picked_up_while_running(
    sim: AuroraSimulator, ops: EngineOps, aws: Callable[..., dict[str, Any]]
) -> None:
    await sim.add_custom_endpoint("oltp", members=["11", "12"], kind="ANY")
    conn: Conn = await aurora_async.connect(
        sim.dsn("oltp"), **ops.options(**aws("oltp", custom_endpoint_refresh=0.1))
    )
    try:
        assert await ops.host_id(conn) == "11"
        await sim.modify_custom_endpoint("oltp", members=["11", "13"])
        monitors = [m for c in registry.clusters() for m in c.custom_endpoints.values()]

        async def refreshed() -> bool:
            return any(m.membership is not None and "13" in m.membership.static for m in monitors)

        await eventually(refreshed, what="the refresh to see 13 join the endpoint")
        await sim.failover(target="13")
        assert await _after_failover(ops, conn) == "13"  # joined: followed
        await sim.failover(target="12")
        with pytest.raises(FailoverFailedError, match="12, which is not a member"):  # left: not followed
            await _after_failover(ops, conn)
    finally:
        await ops.close(conn)


async def test_a_refused_api_call_fails_the_connect_naming_the_permission(
    sim: AuroraSimulator, ops: EngineOps, aws: Callable[..., dict[str, Any]]
) -> None:
    await sim.add_custom_endpoint("oltp", members=["11"])
    sim.rds_api.deny = True
    with pytest.raises(CustomEndpointError, match="rds:DescribeDBClusterEndpoints") as caught:
        await aurora_async.connect(sim.dsn("oltp"), **ops.options(**aws("oltp")))
    assert caught.value.code == "AccessDenied"
    assert registry.clusters() == []  # the cluster was let go


async def test_read_write_splitting_picks_readers_among_the_members(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    await sim.add_custom_endpoint("two", members=["11", "12"])
    options = ops.options(
        custom_endpoint="two",
        custom_endpoint_members="11,12",
        plugins="initial_connection,failover,read_write_splitting",
        reader_host_selector_strategy="round_robin",
    )
    holder: Conn = await aurora_async.connect(sim.dsn("two"), **options)  # holds the cluster (its turns)
    try:
        seen = set()
        for _ in range(6):  # round robin over the readers allowed: a fresh choice each time
            conn: Conn = await aurora_async.connect(sim.dsn("two"), read_only=True, **options)
            seen.add(await ops.host_id(conn))
            await conn.set_read_only(False)
            assert await ops.host_id(conn) == "11"
            await ops.close(conn)
        assert seen == {"12"}  # never 13, a reader outside the endpoint
    finally:
        await ops.close(holder)


async def test_a_pool_through_a_reader_endpoint_keeps_its_replicas(
    sim: AuroraSimulator, ops: EngineOps
) -> None:
    """Pooled connections of a READER endpoint are on a member replica, and reused as such (not
    retired as "off the writer"); once that replica is promoted, an idle one is retired, and with no
    member replica left a new one is refused rather than placed elsewhere."""
    await sim.add_custom_endpoint("olap", members=["12"], kind="READER")
    options = ops.options(
        custom_endpoint="olap",
        custom_endpoint_members="12",
        custom_endpoint_type="READER",
        failover_timeout=2,
    )
    async with aurora_async.create_pool(sim.dsn("olap"), min_size=2, max_size=2, **options) as pool:
        for _ in range(4):
            async with pool.acquire() as conn:
                assert await ops.host_id(conn) == "12"
        assert pool.stats()["retired_by_failover"] == 0 and pool.stats()["opened"] == 2
        await sim.failover(target="12")

        async def promoted() -> bool:
            topology = registry.clusters()[0].topology
            return (
                topology is not None and topology.writer is not None and topology.writer.instance_id == "12"
            )

        await eventually(promoted, what="the library to see 12 promoted")
        with pytest.raises(FailoverFailedError):  # no member replica left: nowhere to go
            async with pool.acquire() as conn:
                await ops.host_id(conn)
        assert pool.stats()["retired_by_failover"] >= 1
