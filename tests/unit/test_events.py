"""The event hub and stream, socket-free: delivery, a stalled consumer, a failing listener, the end of a
stream, and that a failover on the fake driver tells every listener the same story."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

import aurora_async
from aurora_async._events import EVENT_TYPES, EventHub, EventStream
from aurora_async._health import snapshot


def test_a_hub_without_listeners_builds_no_event() -> None:
    hub = EventHub("db:5432", "postgresql")
    assert not hub.wanted
    hub.emit(aurora_async.HostUp, instance="i-1")  # nothing to deliver to: no event made, no error
    assert hub.span("aurora_async.failover") is hub.span("aurora_async.connect")  # one shared no-op


async def test_a_stream_gets_events_in_order_with_their_cluster_and_time() -> None:
    hub = EventHub("db:5432", "mysql")
    async with EventStream(hub, 10) as stream:
        hub.emit(aurora_async.HostDown, instance="i-1", aborted=2)
        hub.emit(aurora_async.HostUp, instance="i-1")
        first, second = await anext(stream), await anext(stream)
    assert isinstance(first, aurora_async.HostDown) and isinstance(second, aurora_async.HostUp)
    assert first.as_dict() == {
        "kind": "host_down", "cluster": "db:5432", "engine": "mysql", "at": first.at,
        "instance": "i-1", "aborted": 2,
    }  # fmt: skip
    assert first.at <= second.at


async def test_a_stalled_consumer_loses_the_oldest_and_says_how_many() -> None:
    hub = EventHub("db:5432", "postgresql")
    stream = EventStream(hub, 3)
    for n in range(5):
        hub.emit(aurora_async.HostUp, instance=f"i-{n}")
    assert stream.dropped == 2
    assert [e.instance for e in stream.pending() if isinstance(e, aurora_async.HostUp)] == [
        "i-2",
        "i-3",
        "i-4",
    ]
    await stream.aclose()


async def test_a_closed_stream_ends_after_what_it_received_and_hears_no_more() -> None:
    hub = EventHub("db:5432", "postgresql")
    stream = EventStream(hub, 10)
    hub.emit(aurora_async.HostUp, instance="i-1")
    await stream.aclose()
    hub.emit(aurora_async.HostUp, instance="i-2")
    assert [e async for e in stream] != [] and not hub.wanted
    assert [e async for e in stream] == []


async def test_a_waiting_consumer_wakes_on_the_next_event_and_on_close() -> None:
    hub = EventHub("db:5432", "postgresql")
    stream = EventStream(hub, 10)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    assert not waiting.done()
    hub.emit(aurora_async.HostUp, instance="i-1")
    assert isinstance(await asyncio.wait_for(waiting, 5), aurora_async.HostUp)
    ending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(ending, 5)


def test_a_failing_listener_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    hub = EventHub("db:5432", "postgresql")
    heard: list[Any] = []

    def broken(event: Any) -> None:
        raise RuntimeError("boom")

    hub.subscribe(broken)
    hub.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="aurora_async.events"):
        hub.emit(aurora_async.HostUp, instance="i-1")
    assert len(heard) == 1 and "listener failed" in caplog.text


def test_every_event_type_is_public_and_documented() -> None:
    for kind in EVENT_TYPES:
        assert getattr(aurora_async, kind.__name__) is kind
        assert kind.__doc__ and len(kind.__doc__) > 30, kind
        assert kind.kind != aurora_async.Event.kind


class _Recorder:
    """A telemetry backend that keeps what it is given (the hub's side of ``_otel.Recorder``)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.spans: list[tuple[str, dict[str, Any]]] = []

    def record(self, event: Any) -> None:
        self.events.append(event)

    def span(self, name: str, attributes: Any) -> contextlib.AbstractContextManager[Any]:
        self.spans.append((name, dict(attributes)))
        return contextlib.nullcontext()

    def watch_pool(self, pool: Any, cluster: str, engine: str) -> None:
        pass


def test_telemetry_hears_every_event_and_spans_carry_the_cluster() -> None:
    recorder = _Recorder()
    hub = EventHub("db:5432", "postgresql", recorder)
    assert hub.wanted
    hub.emit(aurora_async.HostUp, instance="i-1")
    with hub.span("aurora_async.failover", **{"aurora_async.from_instance": "i-1"}):
        pass
    assert [e.kind for e in recorder.events] == ["host_up"]
    assert recorder.spans == [
        ("aurora_async.failover", {
            "db.system": "postgresql", "aurora_async.cluster": "db:5432", "aurora_async.from_instance": "i-1",
        })
    ]  # fmt: skip


async def test_a_failover_on_the_fake_driver_is_told_once_per_connection_and_once_per_search() -> None:
    from tests.unit.fake_driver import FakeCluster, make_cluster

    world = FakeCluster(["a", "b", "c"], writer="a")
    cluster, config = make_cluster(world)
    heard: list[Any] = []
    cluster.events.subscribe(heard.append)
    world.kill("a")
    world.promote("b")
    loop = asyncio.get_running_loop()
    topology = await cluster.find_writer(loop.time(), loop.time() + 5)
    assert topology.writer is not None and topology.writer.instance_id == "b"
    kinds = [e.kind for e in heard]
    assert kinds.count("writer_search_finished") == 1 and "writer_changed" in kinds
    changed = next(e for e in heard if isinstance(e, aurora_async.WriterChanged))
    assert (changed.previous, changed.writer) == ("a", "b")
    health = snapshot(cluster)
    assert health.writer == "b" and health.healthy, health.problems
    await cluster.aclose()
