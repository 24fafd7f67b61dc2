"""Watching a cluster: the event stream, ``health()`` and OpenTelemetry through a black-holed writer.

    .venv/bin/python examples/observability.py [--engine mysql] [--otel]

A task the application owns reads ``aurora_async.events(pool)`` and prints each event as one line (where
an application would drain work, flip its readiness or page someone); ``aurora_async.health(pool)`` is
what a ``/healthz`` endpoint returns (``as_dict()`` for its body, 503 unless ``healthy``). Four workers
query through the pool while the writer's network goes silent, and a replica is promoted once health
says so: the stream tells the story (host down, failovers, the writer search, the writer change), health
goes from healthy to unhealthy and back, and once the old writer answers again it is no longer listed
as down. With ``--otel`` the pool has ``enable_telemetry=True`` and the example prints the metrics and
the span tree it recorded, read from the SDK's in-memory reader and exporter (an application would
configure an OTLP exporter instead; the SDK is in the test extra).
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aurora_async
from aurora_async import AuroraMySQLConnection, AuroraPool
from aurora_async.testing import AuroraSimulator, in_memory_telemetry


async def watch(stream: aurora_async.EventStream, seen: Counter[str]) -> None:
    """Print each event of the stream as one line (until the stream is closed)."""
    async for event in stream:
        seen[event.kind] += 1
        fields = {k: v for k, v in event.as_dict().items() if k not in ("kind", "cluster", "engine", "at")}
        shown = " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        print(f"event  {event.kind:<24} {shown}")


def show_health(pool: AuroraPool[Any]) -> aurora_async.Health:
    """What a /healthz endpoint would answer."""
    health = aurora_async.health(pool)
    state = "healthy" if health.healthy else "UNHEALTHY: " + "; ".join(health.problems)
    print(f"health {state} writer={health.writer} down={list(health.hosts_down)}")
    return health


async def query(pool: AuroraPool[Any]) -> None:
    async with pool.acquire() as conn:
        if isinstance(conn, AuroraMySQLConnection):
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
        else:
            await conn.fetchval("SELECT 1")


async def work(pool: AuroraPool[Any], stop: asyncio.Event, done: Counter[str]) -> None:
    while not stop.is_set():
        async for attempt in aurora_async.attempts_of(attempts=5, deadline=30):
            async with attempt:
                await query(pool)
        done["queries"] += 1
        await asyncio.sleep(0.01)


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - health() is a snapshot, polled as a /healthz would be
            await asyncio.sleep(0.05)


def print_otel(reader: InMemoryMetricReader, exporter: InMemorySpanExporter) -> None:
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name.startswith("aurora_async."):
                    points: Any = metric.data.data_points
                    total = sum(p.value if hasattr(p, "value") else p.count for p in points)
                    print(f"metric {metric.name} {total}")
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    for span in spans:
        parent = by_id.get(span.parent.span_id) if span.parent is not None else None
        if span.name == "aurora_async.writer_search" and parent is not None:
            writer = (span.attributes or {}).get("aurora_async.writer")
            print(f"span   {parent.name} > {span.name} (writer {writer})")
            break


async def main(engine: str, otel: bool) -> None:
    # the SDK is the application's choice (OTLP in production); here in memory, to print what it got
    sdk = in_memory_telemetry() if otel else None  # before the first connection
    async with AuroraSimulator(engine=engine, instances=3, dns_delay=2.0) as sim:
        options: dict[str, Any] = {
            "cluster_instance_host_pattern": sim.instance_host_pattern,
            "failover_timeout": 30,
            "enable_telemetry": otel,
        }
        seen: Counter[str] = Counter()
        done: Counter[str] = Counter()
        async with (
            aurora_async.create_pool(sim.dsn("cluster"), min_size=4, max_size=4, **options) as pool,
            aurora_async.events(pool) as stream,
        ):
            watcher = asyncio.create_task(watch(stream, seen))
            old = sim.writer_id
            show_health(pool)
            stop = asyncio.Event()
            workers = [asyncio.create_task(work(pool, stop, done)) for _ in range(4)]
            await asyncio.sleep(0.5)  # steady state
            print(f"-- black-holing the writer {old}; a replica is promoted once health says so")
            await sim.blackhole(old)
            await until(lambda: not aurora_async.health(pool).healthy)  # host monitoring: ~1.2 s
            show_health(pool)
            await sim.failover()
            await until(lambda: aurora_async.health(pool).healthy and aurora_async.health(pool).writer != old)
            show_health(pool)
            stop.set()
            await asyncio.gather(*workers)
            print(f"-- the old writer {old} comes back")
            await sim.restore(old)
            await until(lambda: not aurora_async.health(pool).hosts_down)  # its monitor saw it answer
            show_health(pool)
            await stream.aclose()
            await watcher
        kinds = " ".join(f"{kind}={n}" for kind, n in sorted(seen.items()))
        print(f"events: {kinds}; queries: {done['queries']}; dropped: {stream.dropped}")
        if sdk is not None:
            print_otel(*sdk)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["postgresql", "mysql"], default="postgresql")
    parser.add_argument(
        "--otel", action="store_true", help="enable_telemetry with the SDK's in-memory reader"
    )
    args = parser.parse_args()
    asyncio.run(main(args.engine, args.otel))
