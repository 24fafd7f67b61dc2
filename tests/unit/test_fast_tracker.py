"""The connection tracker (``_tracker.Tracker``, the ``aurora_connection_tracker`` plugin) on the fake
driver: which writer connections sit on which instance, and closing those left on a demoted writer."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from aurora_async._config import Config
from aurora_async._exceptions import FailoverSuccessError
from aurora_async._tracker import Tracker
from aurora_async.postgresql.connection import AuroraConnection

from .fake_driver import PORT, FakeCluster, FakeRawConnection, fake_world, make_cluster


@pytest.fixture
async def world() -> AsyncIterator[FakeCluster]:
    async with fake_world() as world:
        yield world


async def _raws(world: FakeCluster, config: Config, instance_id: str, n: int) -> list[FakeRawConnection]:
    return [
        await world.open(config.identity, world[instance_id].host, PORT, 1.0, cast(Any, None))
        for _ in range(n)
    ]


async def test_add_remove_count(world: FakeCluster) -> None:
    _, config = make_cluster(world)
    on_a, on_b = await _raws(world, config, "a", 3), await _raws(world, config, "b", 1)
    tracker = Tracker()
    for raw in on_a:
        tracker.add("a", raw)
    tracker.add("a", on_a[0])  # the same connection twice: once
    tracker.add("b", on_b[0])
    assert (tracker.count("a"), tracker.count("b"), tracker.count("c")) == (3, 1, 0)
    tracker.remove("a", on_a[1])
    tracker.remove("a", on_a[1])  # twice: no error
    tracker.remove("c", on_a[2])  # an instance it never saw: no error
    tracker.remove("b", on_a[2])  # a connection not tracked there: no change
    assert (tracker.count("a"), tracker.count("b")) == (2, 1)
    for raw in world.open_connections():
        raw.terminate()


async def test_close_all_on_terminates_the_open_ones_on_that_instance_only(world: FakeCluster) -> None:
    _, config = make_cluster(world)
    on_a, on_b = await _raws(world, config, "a", 3), await _raws(world, config, "b", 2)
    tracker = Tracker()
    for raw in on_a:
        tracker.add("a", raw)
    for raw in on_b:
        tracker.add("b", raw)
    on_a[0].terminate()  # closed already (the application closed it, or it failed)
    assert world["a"].closed == 1
    assert tracker.close_all_on("a") == 2  # the ones that were open
    assert all(raw.is_closed() for raw in on_a) and world["a"].closed == 3  # none terminated twice
    assert tracker.count("a") == 0 and tracker.close_all_on("a") == 0
    assert tracker.count("b") == 2 and not any(raw.is_closed() for raw in on_b)
    assert tracker.close_all_on("c") == 0
    for raw in on_b:
        raw.terminate()
    assert world.open_connections() == []


async def test_a_dropped_connection_is_not_kept(world: FakeCluster) -> None:
    _, config = make_cluster(world)
    tracker = Tracker()
    kept, dropped = await _raws(world, config, "a", 2)
    tracker.add("a", kept)
    tracker.add("a", dropped)
    world["a"].connections.remove(dropped)  # the fake's own reference
    del dropped
    gc.collect()
    assert tracker.count("a") == 1
    kept.terminate()


async def test_a_writer_change_closes_the_tracked_connections_on_the_old_writer(world: FakeCluster) -> None:
    cluster, config = make_cluster(world)
    on_a, on_b = await _raws(world, config, "a", 2), await _raws(world, config, "b", 1)
    for raw in on_a:
        cluster.tracker.add("a", raw)
    cluster.tracker.add("b", on_b[0])
    cluster.publish(world.catalog(), verified=True)  # the same writer: nothing closed
    assert not any(raw.is_closed() for raw in on_a)
    world.promote("b")
    cluster.publish(world.catalog(), verified=True)
    assert all(raw.is_closed() for raw in on_a) and not on_b[0].is_closed()
    assert cluster.tracker.count("a") == 0 and cluster.tracker.count("b") == 1
    on_b[0].terminate()
    assert world.open_connections() == []


async def test_a_tracked_session_left_on_a_demoted_writer_fails_over_at_its_next_call(
    world: FakeCluster,
) -> None:
    cluster, config = make_cluster(world, plugins="failover,aurora_connection_tracker")
    raw = await cluster.opener.open_as(config.identity, world["a"].host, PORT, 1.0)
    assert cluster.topology is not None
    a = cluster.topology.get("a")
    assert a is not None
    conn = AuroraConnection(cluster, config, cast(Any, raw), a)
    assert cluster.tracker.count("a") == 1
    world.promote("b")  # a demoted, still up: without the tracker the session would stay on a reader
    cluster.publish(world.catalog(), verified=True)  # what the topology monitor does
    assert raw.is_closed()
    with pytest.raises(FailoverSuccessError) as caught:
        await conn.execute("INSERT INTO t VALUES (1)")
    assert caught.value.may_have_run is False
    assert conn.instance.instance_id == "b"
    assert (cluster.tracker.count("a"), cluster.tracker.count("b")) == (0, 1)
    await conn.close()
    assert cluster.tracker.count("b") == 0
    assert world.open_connections() == []
