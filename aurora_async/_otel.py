"""OpenTelemetry metrics and spans (``enable_telemetry=True``, ``pip install 'aurora_async[otel]'``).

Only the OpenTelemetry *API* is used: the application configures the SDK and its exporters (OTLP,
Prometheus, ...), and without an SDK every call here is a no-op. The :class:`Recorder` is an event
listener (``_events``): each cluster event becomes a measurement. Spans cover the library's own work,
connect, failover and the writer search; per-query spans belong to the driver's instrumentation
(``opentelemetry-instrumentation-asyncpg``), and compose with these: a failover span is a sibling of
the failed query's span under the application's span, and the writer search it waited for is its child.

Names follow the semantic conventions' style (dotted, lowercase, units in UCUM); the pool's connection
count is the conventions' own ``db.client.connection.count``. There is one recorder per process (held
by the cluster registry, as the aioboto3 session is), so instruments are created once.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._events import (
    Attributes,
    Event,
    FailoverFailed,
    FailoverStarted,
    FailoverSucceeded,
    HostDown,
    HostUp,
    IamTokenGenerated,
    PoolConnectionRetired,
    SecretFetched,
    Span,
    TopologyRefreshed,
    WriterChanged,
    WriterSearchFinished,
)
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Observation

SCOPE = "aurora_async"

# (name, kind, unit, description): the instruments, in one table so the docs can list them
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("aurora_async.failover.started", "counter", "{failover}", "Failovers started, per connection"),
    (
        "aurora_async.failover.completed",
        "counter",
        "{failover}",
        "Failovers ended; aurora_async.failover.outcome is success or failure",
    ),
    ("aurora_async.failover.duration", "histogram", "s", "From the failure seen to the connection usable"),
    (
        "aurora_async.writer_search.duration",
        "histogram",
        "s",
        "The cluster's writer search, one per failover",
    ),
    ("aurora_async.writer.changes", "counter", "{change}", "The cluster's writer changed"),
    (
        "aurora_async.topology.refreshes",
        "counter",
        "{refresh}",
        "Topology reads; aurora_async.topology.changed",
    ),
    (
        "aurora_async.host.verdicts",
        "counter",
        "{verdict}",
        "Host monitoring verdicts; aurora_async.host.state is down or up",
    ),
    (
        "aurora_async.host.aborted_connections",
        "counter",
        "{connection}",
        "Connections aborted on a dead host",
    ),
    ("aurora_async.iam.tokens", "counter", "{token}", "IAM authentication tokens generated"),
    ("aurora_async.secrets.fetches", "counter", "{fetch}", "Secrets Manager secrets fetched"),
    ("aurora_async.pool.retired", "counter", "{connection}", "Pool connections retired at checkout"),
    (
        "db.client.connection.count",
        "observable_up_down_counter",
        "{connection}",
        "Pool connections; db.client.connection.state is idle or used",
    ),
)

SPANS = ("aurora_async.connect", "aurora_async.failover", "aurora_async.writer_search")


class Recorder:
    """Turns events into OpenTelemetry measurements and opens the library's spans (module docstring)."""

    def __init__(self) -> None:
        from opentelemetry import metrics, trace  # noqa: PLC0415 - the optional 'otel' extra

        meter = metrics.get_meter(SCOPE, __version__)
        self._tracer = trace.get_tracer(SCOPE, __version__)
        made: dict[str, Any] = {}
        for name, kind, unit, description in METRICS:
            if kind == "counter":
                made[name] = meter.create_counter(name, unit=unit, description=description)
            elif kind == "histogram":
                made[name] = meter.create_histogram(name, unit=unit, description=description)
            else:
                made[name] = meter.create_observable_up_down_counter(
                    name, callbacks=[self._observe_pools], unit=unit, description=description
                )
        self._instruments = made
        self._pools: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
        self._pool_numbers = itertools.count(1)

    def __repr__(self) -> str:
        return f"<Recorder pools={len(self._pools)}>"

    def span(self, name: str, attributes: Attributes) -> contextlib.AbstractContextManager[Span]:
        return self._tracer.start_as_current_span(name, attributes=attributes)

    def watch_pool(self, pool: Any, cluster: str, engine: str) -> None:
        """Report ``pool``'s idle and used connections while it lives (``pool.stats()`` is read at each
        collection)."""
        name = f"{cluster}#{next(self._pool_numbers)}"
        self._pools[pool] = {"db.system": engine, "db.client.connection.pool.name": name}

    def _observe_pools(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation  # noqa: PLC0415

        for pool, attributes in list(self._pools.items()):
            stats = pool.stats()
            yield Observation(stats["idle"], {**attributes, "db.client.connection.state": "idle"})
            yield Observation(stats["in_use"], {**attributes, "db.client.connection.state": "used"})

    def record(self, event: Event) -> None:
        attributes: dict[str, Any] = {"db.system": event.engine, "aurora_async.cluster": event.cluster}
        add = self._add
        if isinstance(event, FailoverStarted):
            attributes["aurora_async.failover.mode"] = event.mode
            add("aurora_async.failover.started", 1, attributes)
        elif isinstance(event, FailoverSucceeded | FailoverFailed):
            outcome = "success" if isinstance(event, FailoverSucceeded) else "failure"
            attributes |= {"aurora_async.failover.mode": event.mode, "aurora_async.failover.outcome": outcome}
            self._instruments["aurora_async.failover.completed"].add(1, attributes)
            self._instruments["aurora_async.failover.duration"].record(event.duration, attributes)
        elif isinstance(event, WriterSearchFinished):
            attributes["aurora_async.writer_search.outcome"] = "found" if event.writer else "not_found"
            self._instruments["aurora_async.writer_search.duration"].record(event.duration, attributes)
        elif isinstance(event, WriterChanged):
            add("aurora_async.writer.changes", 1, attributes)
        elif isinstance(event, TopologyRefreshed):
            attributes["aurora_async.topology.changed"] = event.changed
            add("aurora_async.topology.refreshes", 1, attributes)
        elif isinstance(event, HostDown | HostUp):
            state = "down" if isinstance(event, HostDown) else "up"
            attributes |= {"aurora_async.instance": event.instance, "aurora_async.host.state": state}
            add("aurora_async.host.verdicts", 1, attributes)
            if isinstance(event, HostDown) and event.aborted:
                add("aurora_async.host.aborted_connections", event.aborted, attributes)
        elif isinstance(event, IamTokenGenerated):
            add("aurora_async.iam.tokens", 1, attributes)
        elif isinstance(event, SecretFetched):
            add("aurora_async.secrets.fetches", 1, attributes)
        elif isinstance(event, PoolConnectionRetired):
            attributes["aurora_async.pool.retire_reason"] = event.reason
            add("aurora_async.pool.retired", 1, attributes)

    def _add(self, name: str, value: int, attributes: dict[str, Any]) -> None:
        self._instruments[name].add(value, attributes)
