"""OpenTelemetry (``enable_telemetry=True``) on the simulator: a failover shows up as metrics and as a
span tree in the SDK's in-memory reader and exporter, on both engines; the pool's connections as the
semantic conventions' ``db.client.connection.count``; and our spans compose with the asyncpg
instrumentation's query spans. A connection without the option records nothing."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aurora_async
from aurora_async import FailoverSuccessError
from aurora_async.testing import AuroraSimulator, in_memory_telemetry

from ._engine_ops import EngineOps

Otel = tuple[InMemoryMetricReader, InMemorySpanExporter]


@pytest.fixture(scope="module")
def otel() -> Otel:
    """The SDK, configured once for the process (OpenTelemetry's providers can be set only once)."""
    return in_memory_telemetry()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """The data points of metric ``name`` (cumulative: since the process started)."""
    data = reader.get_metrics_data()
    found: list[Any] = []
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def total(reader: InMemoryMetricReader, name: str, **attributes: Any) -> float:
    """The sum (counters) or count (histograms) of ``name``'s points that carry ``attributes``."""
    result = 0.0
    for point in points(reader, name):
        if all(point.attributes.get(k) == v for k, v in attributes.items()):
            result += point.value if hasattr(point, "value") else point.count
    return result


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_a_failover_is_metrics_and_a_span_tree(
    otel: Otel, sim: AuroraSimulator, ops: EngineOps
) -> None:
    reader, exporter = otel
    exporter.clear()
    cluster = sim.cluster_endpoint
    before = total(reader, "aurora_async.failover.completed", **{"aurora_async.cluster": cluster})
    old = sim.writer_id
    async with aurora_async.create_pool(
        sim.dsn("cluster"), min_size=2, max_size=3, enable_telemetry=True, **ops.options()
    ) as pool:
        conn = await pool.acquire()
        assert total(reader, "db.client.connection.count", **{"db.client.connection.state": "used"}) == 1
        assert total(reader, "db.client.connection.count", **{"db.client.connection.state": "idle"}) == 1
        await sim.failover()
        tracer = trace.get_tracer("the-app")
        with tracer.start_as_current_span("request") as request, pytest.raises(FailoverSuccessError):
            await ops.scalar(conn, "SELECT 1")
        new = await ops.host_id(conn)
        await pool.release(conn)
    assert new == sim.writer_id != old
    on_cluster = {"aurora_async.cluster": cluster, "db.system": sim.engine}
    assert (
        total(
            reader,
            "aurora_async.failover.started",
            **on_cluster,
            **{"aurora_async.failover.mode": "strict_writer"},
        )
        >= 1
    )
    succeeded = {"aurora_async.failover.outcome": "success", **on_cluster}
    assert total(reader, "aurora_async.failover.completed", **succeeded) >= before + 1
    assert total(reader, "aurora_async.failover.duration", **succeeded) >= 1
    assert total(reader, "aurora_async.writer.changes", **on_cluster) >= 1
    assert total(reader, "aurora_async.writer_search.duration", **on_cluster) >= 1
    assert total(reader, "aurora_async.topology.refreshes", **on_cluster) >= 1
    assert total(reader, "db.client.connection.count") == 0  # the pool is closed: nothing reported

    spans = exporter.get_finished_spans()
    failover = [s for s in by_name(spans, "aurora_async.failover") if s.parent is not None
                and s.parent.span_id == request.get_span_context().span_id]  # fmt: skip
    assert len(failover) == 1, [s.name for s in spans]
    assert failover[0].attributes is not None and failover[0].attributes["aurora_async.from_instance"] == old
    assert failover[0].attributes["aurora_async.to_instance"] == new
    searches = [s for s in by_name(spans, "aurora_async.writer_search")
                if s.parent is not None and s.parent.span_id == failover[0].context.span_id]  # fmt: skip
    assert len(searches) == 1 and searches[0].attributes is not None
    assert searches[0].attributes["aurora_async.writer"] == new
    assert by_name(spans, "aurora_async.connect")  # the pool's connections


async def test_telemetry_is_per_cluster_setting_and_off_by_default(
    otel: Otel, aurora_postgres: AuroraSimulator
) -> None:
    reader, exporter = otel
    sim = aurora_postgres
    exporter.clear()
    options = {"cluster_instance_host_pattern": sim.instance_host_pattern, "failover_timeout": 20}
    conn = await aurora_async.connect(sim.dsn("cluster"), **options)
    try:
        await sim.failover()
        with pytest.raises(FailoverSuccessError):
            await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    assert exporter.get_finished_spans() == ()
    assert (
        total(reader, "aurora_async.failover.started", **{"aurora_async.cluster": sim.cluster_endpoint}) == 0
    )


async def test_our_spans_compose_with_the_asyncpg_instrumentation(
    otel: Otel, aurora_postgres: AuroraSimulator
) -> None:
    """The instrumentation's query spans and ours share the application's trace: the failed query and
    the failover are siblings under the request, and the re-run query follows on the new writer."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    reader, exporter = otel
    sim = aurora_postgres
    exporter.clear()
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument()
    try:
        conn = await aurora_async.connect(
            sim.dsn("cluster"),
            enable_telemetry=True,
            cluster_instance_host_pattern=sim.instance_host_pattern,
            failover_timeout=20,
        )
        try:
            await sim.failover()
            with trace.get_tracer("the-app").start_as_current_span("request") as request:
                await aurora_async.retry_on_failover(lambda: conn.fetchval("SELECT 42"))()
        finally:
            await conn.close()
    finally:
        instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    under_request = [s for s in spans if s.parent is not None
                     and s.parent.span_id == request.get_span_context().span_id]  # fmt: skip
    names = [s.name for s in sorted(under_request, key=lambda s: s.start_time or 0)]
    queries = [n for n in names if n.startswith("SELECT")]
    assert len(queries) == 2 and "aurora_async.failover" in names, names
    assert names.index("aurora_async.failover") > names.index(queries[0])
    failed_query = next(s for s in under_request if s.name == queries[0])
    assert not failed_query.status.is_ok  # the instrumentation saw the lost connection
