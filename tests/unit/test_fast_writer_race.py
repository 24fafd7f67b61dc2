"""The writer race during a failover, on the fake driver: two instances may both answer as the writer
for a moment (the old one not yet demoted, the new one promoted). The writer search takes the first
verified answer (``_routing.WriterSearch._search``). A connection trusts a writer that a search proved
since its own call began, moments ago (no role check of its own); else it checks the role on its own
connection (``connect_in_role``) and searches again when the instance is no longer the writer. Every
connection a loser opened is closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from aurora_async import AuroraConnection, FailoverSuccessError
from aurora_async._routing import connect_to_writer
from aurora_async._topology import Role

from .fake_driver import FakeCluster, FakeRawConnection, elapse, fake_world, ids, make_cluster


@pytest.fixture
async def world() -> AsyncIterator[FakeCluster]:
    async with fake_world() as world:
        for instance in world.instances.values():
            instance.connect_delay = 0.01
            instance.query_delay = 0.01
        yield world


def _demote(world: FakeCluster, instance_id: str) -> None:
    world.claims.discard(instance_id)
    world.note()


async def test_the_new_writer_answering_first_wins_and_the_old_writers_connections_close(
    world: FakeCluster,
) -> None:
    cluster, config = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.claims = {"a", "b"}  # overlap: b promoted, a not yet demoted
    world["a"].query_delay = 0.05  # ... and slower to answer
    await elapse(0.1)
    now = loop.time()
    raw, instance = await connect_to_writer(cluster, config.identity, now, now + 5.0)
    assert isinstance(raw, FakeRawConnection)
    assert (raw.instance.instance_id, instance.instance_id, instance.role) == ("b", "b", Role.WRITER)
    assert cluster.stats["writer_searches"] == 1
    assert cluster.topology is not None and cluster.topology.writer == instance
    assert world["a"].opened >= 1 and world["a"].open_connections() == []  # the loser's watcher closed
    assert world.open_connections() == [cluster.monitor.connection, raw]
    raw.terminate()
    await cluster.aclose()
    assert world.open_connections() == []


async def test_an_old_writer_demoted_right_after_the_search_proved_it_fails_over_at_the_first_write(
    world: FakeCluster,
) -> None:
    """The search proves a at now + 0.04 (connect, is_writer, instance_id, topology); a is demoted at
    now + 0.045, before the connection to it is made. A writer that a search proved since the call
    began is trusted without a role check of the connection's own (one query less per connection in a
    failover storm): the connection lands on a, and its first write, refused as read-only (so it surely
    did not run), fails over to b."""
    cluster, config = make_cluster(world, plugins="failover", failover_timeout=1.0)
    loop = asyncio.get_running_loop()
    world.claims = {"a", "b"}
    world["b"].query_delay = 0.02  # the old writer answers first
    await elapse(0.1)
    now = loop.time()
    loop.call_at(now + 0.045, _demote, world, "a")
    raw, instance = await connect_to_writer(cluster, config.identity, now, now + 5.0)
    assert isinstance(raw, FakeRawConnection)
    assert (raw.instance.instance_id, instance.instance_id) == ("a", "a")
    assert world["a"].queries["is_reader"] == 0  # no role check of its own
    conn = AuroraConnection(cluster, config, cast(Any, raw), instance)
    with pytest.raises(FailoverSuccessError) as caught:
        await conn.execute("INSERT INTO t VALUES (1)")
    assert caught.value.may_have_run is False
    assert isinstance(conn.raw, FakeRawConnection) and conn.raw.instance.instance_id == "b"
    assert raw.is_closed()
    await conn.close()
    assert world.open_connections() == []


async def test_an_old_writer_still_writer_at_the_role_check_keeps_the_connection(world: FakeCluster) -> None:
    """What the code decides while both claim: the first verified answer. The connection lands on the
    old writer; its demotion later fails it over again (not here)."""
    cluster, config = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.claims = {"a", "b"}
    world["b"].query_delay = 0.02
    await elapse(0.1)
    now = loop.time()
    raw, instance = await connect_to_writer(cluster, config.identity, now, now + 5.0)
    assert isinstance(raw, FakeRawConnection)
    assert (raw.instance.instance_id, instance.instance_id) == ("a", "a")
    assert cluster.stats["writer_searches"] == 1
    assert world["b"].open_connections() == []
    raw.terminate()
    await cluster.aclose()
    assert world.open_connections() == []


async def test_the_instance_that_proves_it_is_the_writer_wins_over_stale_catalog_rows(
    world: FakeCluster,
) -> None:
    cluster, _ = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.kill("a")
    world.promote("b")
    world.catalog_writer = "a"  # the catalog still names the old writer
    await elapse(0.1)
    now = loop.time()
    topology = await cluster.find_writer(now, now + 5.0)
    assert topology.writer is not None and topology.writer.instance_id == "b"
    assert [i.instance_id for i in topology.instances if i.role is Role.WRITER] == ["b"]
    assert sorted(ids(topology.readers)) == ["a", "c"]
    await cluster.aclose()
    assert world.open_connections() == []


async def test_the_cluster_endpoint_and_the_instance_it_names_race_one_wins(world: FakeCluster) -> None:
    cluster, _ = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.kill("a")
    world.promote("b")
    world.dns = "b"  # the cluster endpoint already names the new writer: two watchers reach b
    await elapse(0.1)
    now = loop.time()
    topology = await cluster.find_writer(now, now + 5.0)
    assert topology.writer is not None and topology.writer.instance_id == "b"
    assert cluster.stats["writer_searches"] == 1
    # both watchers of b proved it (each reads the catalog once); one connection won, one was closed
    assert 1 <= world.queries("topology") <= 2
    assert world.open_connections() == [cluster.monitor.connection]
    await cluster.aclose()
    assert world.open_connections() == []


async def test_a_silent_instance_does_not_delay_the_search(world: FakeCluster) -> None:
    cluster, _ = make_cluster(world)
    loop = asyncio.get_running_loop()
    world.silence("a")  # black-holed: its connects never answer
    world.promote("c")
    await elapse(0.1)
    now = loop.time()
    topology = await cluster.find_writer(now, now + 30.0)
    assert topology.writer is not None and topology.writer.instance_id == "c"
    assert loop.time() - now < 0.1  # c's round trips, not a's connect timeout
    assert world["a"].connect_attempts >= 1 and world["a"].opened == 0
    assert world.open_connections() == [cluster.monitor.connection]
    await cluster.aclose()
    assert world.open_connections() == []
