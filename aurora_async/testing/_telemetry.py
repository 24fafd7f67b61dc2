"""``in_memory_telemetry()``: the OpenTelemetry SDK with an in-memory metric reader and span exporter,
for tests (and demos) that check what ``enable_telemetry=True`` records. Needs ``opentelemetry-sdk``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def in_memory_telemetry() -> tuple[InMemoryMetricReader, InMemorySpanExporter]:
    """Install the SDK as the process's meter and tracer provider, with a metric reader and a span
    exporter that keep everything in memory; returns them (``reader.get_metrics_data()``,
    ``exporter.get_finished_spans()``). OpenTelemetry lets a process set its providers once: call this
    once, before the first connection with ``enable_telemetry=True`` (a session-scoped fixture)."""
    from opentelemetry import metrics, trace  # noqa: PLC0415 - the SDK is a test dependency, not ours
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: PLC0415

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return reader, exporter
