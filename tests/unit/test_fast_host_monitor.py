"""Host monitoring (``_host_monitor.HostMonitor``) on the fake driver: unanswered probes in a row are
counted up to ``failure_detection_count``, then the host is declared dead and the connections on it
are aborted (idle ones, and calls that have run for ``failure_detection_time``); an answer resets the
count and revives a dead host; the monitor ends ``monitor_disposal_time`` after its last connection."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import pytest

from aurora_async._cluster import Cluster
from aurora_async._host_monitor import HostMonitor

from .fake_driver import FakeCluster, fake_world, make_cluster

INTERVAL = 0.1  # failure_detection_interval (minimum 0.05)
COUNT = 3  # failure_detection_count (minimum 1)
GRACE = 1.0  # failure_detection_time: calls younger than this are left alone
DISPOSAL = 0.5  # monitor_disposal_time (minimum 0.1)


class FakeMonitored:
    """A connection as a host monitor sees it: how long its call has run, and a way to abort it."""

    def __init__(self, monitor: HostMonitor, busy: float | None) -> None:
        self.monitor = monitor
        self.busy = busy
        self.aborts: list[int] = []  # the monitor's failed probes when each abort came

    def busy_for(self, now: float) -> float | None:
        return self.busy

    def abort_physical(self) -> bool:
        self.aborts.append(self.monitor.stats["failed_probes"])
        return True


@pytest.fixture
async def world() -> AsyncIterator[FakeCluster]:
    async with fake_world() as world:
        yield world


def _monitored_cluster(world: FakeCluster) -> Cluster:
    cluster, _ = make_cluster(
        world,
        plugins="failover,host_monitoring",
        failure_detection_interval=INTERVAL,
        failure_detection_count=COUNT,
        failure_detection_time=GRACE,
        monitor_disposal_time=DISPOSAL,
    )
    return cluster


def _monitor(cluster: Cluster, instance_id: str) -> HostMonitor:
    assert cluster.topology is not None
    instance = cluster.topology.get(instance_id)
    assert instance is not None
    return cluster.host_monitor(instance)


async def test_count_failures_in_a_row_declare_dead_and_abort_idle_and_long_calls(world: FakeCluster) -> None:
    cluster = _monitored_cluster(world)
    monitor, other = _monitor(cluster, "a"), _monitor(cluster, "b")
    long_call = FakeMonitored(monitor, busy=GRACE + 1.0)
    young_call = FakeMonitored(monitor, busy=GRACE / 2)
    idle = FakeMonitored(monitor, busy=None)
    elsewhere = FakeMonitored(other, busy=None)
    for conn in (long_call, young_call, idle):
        monitor.add(conn)
    other.add(elsewhere)
    await world.until(lambda: world["a"].opened == 1)  # the first probe connected
    world.kill("a")  # from now on every probe of a fails at once (connection refused)

    await world.until(lambda: monitor.dead)
    assert monitor.stats["failed_probes"] == COUNT
    assert long_call.aborts == [COUNT] and idle.aborts == [COUNT]  # aborted at the COUNT-th failure
    assert young_call.aborts == []  # a call younger than failure_detection_time is left alone
    assert elsewhere.aborts == [] and not other.dead
    assert cluster.down == {"a"}

    # still dead: each further failure aborts what qualifies by then
    young_call.busy = GRACE
    await world.until(lambda: monitor.stats["failed_probes"] == COUNT + 1)
    assert young_call.aborts == [COUNT + 1]

    # a dead host that answers again is revived
    world.restart("a")
    await world.until(lambda: not monitor.dead)
    assert cluster.down == set()
    assert monitor.stats["failed_probes"] == COUNT + 1
    await cluster.aclose()
    assert world.open_connections() == []


async def test_an_answer_between_failures_resets_the_count(world: FakeCluster) -> None:
    cluster = _monitored_cluster(world)
    monitor = _monitor(cluster, "a")
    conn = FakeMonitored(monitor, busy=None)
    # each probe is a connect or a ping: answer, fail, fail, answer, fail, fail, then answer again
    world["a"].script = deque([True, False, False, True, False, False])
    monitor.add(conn)
    await world.until(lambda: not world["a"].script and monitor.stats["probes"] == 7)
    assert monitor.stats["failed_probes"] == 4
    assert not monitor.dead and conn.aborts == [] and cluster.down == set()

    # COUNT failures in a row do declare it dead
    world["a"].script = deque([False] * COUNT)
    await world.until(lambda: monitor.dead)
    assert monitor.stats["failed_probes"] == 4 + COUNT
    assert conn.aborts == [4 + COUNT]
    await cluster.aclose()
    assert world.open_connections() == []


async def test_a_silent_host_is_declared_dead_within_the_detection_window(world: FakeCluster) -> None:
    cluster = _monitored_cluster(world)
    loop = asyncio.get_running_loop()
    monitor = _monitor(cluster, "a")
    conn = FakeMonitored(monitor, busy=None)
    monitor.add(conn)
    await world.until(lambda: world["a"].opened == 1)
    world.silence("a")  # probes time out: the first ping after one interval, the reconnect after
    first_failing_probe = loop.time() + INTERVAL
    await world.until(lambda: monitor.dead)
    assert loop.time() - first_failing_probe == pytest.approx(INTERVAL * COUNT, abs=0.01)
    assert monitor.stats["failed_probes"] < COUNT  # the window, not the count, decided
    assert conn.aborts != []
    await cluster.aclose()
    assert world.open_connections() == []


async def test_the_monitor_ends_its_disposal_time_after_its_last_connection(world: FakeCluster) -> None:
    cluster = _monitored_cluster(world)
    loop = asyncio.get_running_loop()
    monitor = _monitor(cluster, "a")
    one, two = FakeMonitored(monitor, busy=None), FakeMonitored(monitor, busy=None)
    monitor.add(one)
    monitor.add(two)
    await world.until(lambda: world["a"].opened == 1)
    assert monitor.running
    probe = world["a"].open_connections()
    assert len(probe) == 1

    monitor.remove(one)
    await world.until(lambda: monitor.stats["probes"] == 3)
    assert monitor.running  # one connection left: still probing

    monitor.remove(two)
    removed = loop.time()
    await world.until(lambda: not monitor.running)
    assert DISPOSAL <= loop.time() - removed <= DISPOSAL + INTERVAL + 0.01
    assert monitor.stats["probes"] <= 4  # at most the probe already due
    assert probe[0].is_closed() and world.open_connections() == []

    monitor.add(one)  # a connection again: a new task
    assert monitor.running
    await world.until(lambda: world["a"].opened == 2)
    await cluster.aclose()
    assert not monitor.running and world.open_connections() == []
