"""The cluster's single-flight writer search (``_routing.WriterSearch``), on the fake driver: however
many connections look for the writer at once, one search runs and one topology query round is made."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aurora_async._routing import POLL, NoInstanceFound, connect_to_writer
from aurora_async._topology import Topology

from .fake_driver import FakeCluster, FakeDialect, FakeRawConnection, elapse, fake_world, make_cluster

N = 25


@pytest.fixture
async def world() -> AsyncIterator[FakeCluster]:
    async with fake_world() as world:
        yield world


async def test_concurrent_searches_share_one_search_and_one_topology_round(world: FakeCluster) -> None:
    cluster, _ = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.kill("a")
    world.promote("b")
    for instance in world.instances.values():
        instance.query_delay = 0.005
    await elapse(0.1)  # the failure is seen after the last verification
    now = loop.time()
    results = await asyncio.gather(*(cluster.find_writer(now, now + 5.0) for _ in range(N)))
    assert cluster.stats["writer_searches"] == 1
    assert world.queries("topology") == 1  # only the winner reads the catalog
    assert world.queries("instance_id") == 1
    assert len({id(t) for t in results}) == 1  # every caller got the one search's result
    topology = results[0]
    assert topology.writer is not None and topology.writer.instance_id == "b"
    assert topology.verified_at >= now
    assert cluster.topology is topology
    # the winner's connection goes to the topology monitor; every other watcher closed its own
    monitoring = cluster.monitor.connection
    assert isinstance(monitoring, FakeRawConnection) and not monitoring.is_closed()
    assert monitoring.instance.instance_id == "b"
    assert world.open_connections() == [monitoring]
    await cluster.aclose()
    assert world.open_connections() == []


async def test_callers_that_arrive_while_the_search_runs_join_it(world: FakeCluster) -> None:
    cluster, _ = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.kill("a")  # the writer search waits until an instance answers as the writer
    world.claims = set()
    await elapse(0.1)
    now = loop.time()
    first = asyncio.ensure_future(cluster.find_writer(now, now + 5.0))
    await world.until(lambda: world.queries("is_writer") >= 6)  # b and c asked, more than once each
    later = loop.time()
    joiners = [asyncio.ensure_future(cluster.find_writer(later, later + 5.0)) for _ in range(N)]
    world.promote("c")
    results = await asyncio.gather(first, *joiners)
    assert cluster.stats["writer_searches"] == 1
    assert world.queries("topology") == 1
    assert {r.writer.instance_id for r in results if r.writer is not None} == {"c"}
    assert len({id(r) for r in results}) == 1
    await cluster.aclose()
    assert world.open_connections() == []


async def test_a_result_recent_enough_is_reused_a_newer_not_before_searches_again(world: FakeCluster) -> None:
    cluster, _ = make_cluster(world)
    world.dns = "c"  # the cluster endpoint names a reader: one watcher alone proves the writer
    loop = asyncio.get_running_loop()
    await elapse(0.1)
    now = loop.time()
    found = await cluster.find_writer(now, now + 5.0)
    assert cluster.stats["writer_searches"] == 1
    topology_reads = world.queries("topology")
    asked = world.queries("is_writer")

    # later callers whose not_before the found topology satisfies reuse it: no search, no query
    again = await asyncio.gather(*(cluster.find_writer(found.verified_at, now + 5.0) for _ in range(N)))
    assert all(t is found for t in again)
    assert cluster.stats["writer_searches"] == 1
    assert (world.queries("topology"), world.queries("is_writer")) == (topology_reads, asked)

    # a caller that saw a failure after the last verification needs a newer answer: a new search
    await elapse(0.5)
    newer = loop.time()
    assert newer > found.verified_at
    fresh = await cluster.find_writer(newer, newer + 5.0)
    assert cluster.stats["writer_searches"] == 2
    assert fresh.verified_at >= newer
    assert world.queries("topology") == topology_reads + 1
    await cluster.aclose()
    assert world.open_connections() == []


async def test_no_writer_before_the_deadline_fails_every_waiter_and_the_next_call_searches_again(
    world: FakeCluster,
) -> None:
    cluster, _ = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.claims = set()  # nobody answers as the writer
    await elapse(0.1)
    now = loop.time()
    outcomes = await asyncio.gather(
        *(cluster.find_writer(now, now + 1.0) for _ in range(N)), return_exceptions=True
    )
    assert all(isinstance(o, NoInstanceFound) for o in outcomes), outcomes
    assert cluster.stats["writer_searches"] == 1
    assert loop.time() == pytest.approx(now + 1.0, abs=0.05)  # at the deadline, not before
    assert world.queries("topology") == 0
    assert world.open_connections() == []  # the watchers closed their connections at the deadline

    world.promote("b")
    later = loop.time()
    found = await cluster.find_writer(later, later + 1.0)
    assert cluster.stats["writer_searches"] == 2
    assert found.writer is not None and found.writer.instance_id == "b"
    await cluster.aclose()
    assert world.open_connections() == []


async def test_a_waiter_with_a_later_deadline_outlives_a_search_that_gave_up(world: FakeCluster) -> None:
    cluster, _ = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.claims = set()
    await elapse(0.1)
    now = loop.time()
    short = asyncio.ensure_future(cluster.find_writer(now, now + 0.5))  # starts the search: its deadline
    long = asyncio.ensure_future(cluster.find_writer(now, now + 3.0))
    with pytest.raises(NoInstanceFound):
        await short
    world.promote("c")
    topology: Topology = await long  # a second search, within the long caller's deadline
    assert topology.writer is not None and topology.writer.instance_id == "c"
    assert cluster.stats["writer_searches"] == 2
    await cluster.aclose()
    assert world.open_connections() == []


async def test_connect_to_writer_from_many_tasks_one_search_one_connection_each(world: FakeCluster) -> None:
    cluster, config = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.kill("a")
    world.promote("c")
    await elapse(0.1)
    now = loop.time()
    placed = await asyncio.gather(
        *(connect_to_writer(cluster, config.identity, now, now + 5.0) for _ in range(N))
    )
    assert cluster.stats["writer_searches"] == 1
    assert world.queries("topology") == 1
    raws = [raw for raw, _ in placed]
    assert all(isinstance(raw, FakeRawConnection) and raw.instance.instance_id == "c" for raw in raws)
    assert {instance.instance_id for _, instance in placed} == {"c"}
    assert len({id(raw) for raw in raws}) == N  # each caller its own physical connection
    assert world.queries("is_reader") == N  # each checked its role once
    for raw in raws:
        raw.terminate()
    await cluster.aclose()
    assert world.open_connections() == []


class _InstanceIdFails(FakeDialect):
    """A dialect whose "which instance is this?" fails with an error no driver classifies (a bug, a
    catalog the user may not read through some other error class)."""

    async def instance_id(self, conn: Any, timeout: float) -> str:
        await conn.round_trip("instance_id", timeout)
        raise LookupError("unexpected")


async def test_watchers_failing_on_an_unexpected_error_do_not_search_back_to_back(
    world: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster, _ = make_cluster(world)
    cluster.dialect = _InstanceIdFails()
    world.claims = {"a", "b", "c"}  # every watcher gets as far as instance_id()
    for instance in world.instances.values():
        instance.query_delay = 0.002  # a search fails after 4 ms (is_writer, instance_id)
    loop = asyncio.get_running_loop()
    await elapse(0.1)
    now = loop.time()
    with pytest.raises(NoInstanceFound):
        await cluster.find_writer(now, now + 0.5)
    assert cluster.stats["writer_searches"] <= 0.5 / POLL  # at most one search per poll period
    # the error is named, once per endpoint watched, not hidden behind "no writer found"
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "writer check failed" in r.message]
    endpoints = [r.args[0] for r in warnings if isinstance(r.args, tuple)]
    assert len(endpoints) == len(set(endpoints)) >= 3  # the instances and the cluster endpoint
    assert all("LookupError('unexpected')" in r.getMessage() for r in warnings)
