"""What happens to a cluster, as typed events: the in-process stream an application reacts to, and what
OpenTelemetry metrics are made of.

Each cluster (one per cluster key and event loop, see ``_registry``) has one :class:`EventHub`. The
library's parts call :meth:`EventHub.emit` where something happens (a failover starts or ends, the writer
changes, a host is declared dead, a token is generated); the hub hands the event, synchronously and
without a task, to its listeners: the :class:`EventStream` objects applications hold, and the
OpenTelemetry recorder when ``enable_telemetry`` is on. A hub with no listener costs one attribute test
per event, and events are rare (failovers, refreshes, logins), never per query.

The hub outlives a cluster object: a stream opened on a connector or a pool keeps receiving the events
of its cluster across connect-close-connect, until the stream is closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Protocol

log = logging.getLogger("aurora_async.events")


def _now() -> float:
    return time.time()


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something that happened to a cluster. ``cluster``: the cluster as its first connection named it
    (``host:port``); ``engine``: ``"postgresql"`` or ``"mysql"``; ``at``: when, as ``time.time()``."""

    kind: ClassVar[str] = "event"
    cluster: str
    engine: str
    at: float = dataclasses.field(default_factory=_now)

    def as_dict(self) -> dict[str, Any]:
        """The event as plain values (for a log line, a JSON body, a message to a pager)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"kind": self.kind, **values}


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverStarted(Event):
    """A connection lost its instance (or, ``strict_writer``, met a read-only one) and fails over."""

    kind: ClassVar[str] = "failover_started"
    from_instance: str
    mode: str
    in_transaction: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverSucceeded(Event):
    """A connection failed over: it is now on ``to_instance`` (its call raised ``FailoverSuccessError``
    or ``TransactionResolutionUnknownError``). ``duration`` in seconds, from the failure seen."""

    kind: ClassVar[str] = "failover_succeeded"
    from_instance: str
    to_instance: str
    role: str
    mode: str
    in_transaction: bool
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverFailed(Event):
    """A failover found no instance in its role before ``failover_timeout``, or its login was refused:
    the connection is closed (its call raised ``FailoverFailedError``)."""

    kind: ClassVar[str] = "failover_failed"
    from_instance: str
    mode: str
    reason: str
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterSearchFinished(Event):
    """The cluster's one writer search ended: ``writer`` proved it is the writer (None: none did before
    the deadline). However many connections fail over together, there is one search."""

    kind: ClassVar[str] = "writer_search_finished"
    writer: str | None
    watched: int
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TopologyRefreshed(Event):
    """The topology was read (by the background refresh, a writer search or a first connection);
    ``changed``: instances or roles differ from what was known."""

    kind: ClassVar[str] = "topology_refreshed"
    writer: str | None
    readers: tuple[str, ...]
    changed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterChanged(Event):
    """The cluster has a new writer (a failover or switchover happened); connections on the old one
    that the tracker watches are being closed."""

    kind: ClassVar[str] = "writer_changed"
    previous: str
    writer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HostDown(Event):
    """Host monitoring declared ``instance`` dead (its probes failed for the whole window) and aborted
    ``aborted`` connections that were waiting on it."""

    kind: ClassVar[str] = "host_down"
    instance: str
    aborted: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HostUp(Event):
    """An instance declared dead answers host monitoring's probes again."""

    kind: ClassVar[str] = "host_up"
    instance: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IamTokenGenerated(Event):
    """An IAM authentication token was generated (tokens are cached; this is a fetch, not a login)."""

    kind: ClassVar[str] = "iam_token_generated"
    user: str
    host: str
    port: int
    region: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretFetched(Event):
    """A Secrets Manager secret was fetched (secrets are cached; this is a fetch, not a login)."""

    kind: ClassVar[str] = "secret_fetched"
    secret_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConnectionRetired(Event):
    """A pool dropped an idle connection at checkout: it was closed, or on an instance that no longer
    has its role (a demoted writer)."""

    kind: ClassVar[str] = "pool_connection_retired"
    instance: str
    reason: str


EVENT_TYPES: tuple[type[Event], ...] = (
    FailoverStarted,
    FailoverSucceeded,
    FailoverFailed,
    WriterSearchFinished,
    TopologyRefreshed,
    WriterChanged,
    HostDown,
    HostUp,
    IamTokenGenerated,
    SecretFetched,
    PoolConnectionRetired,
)

Listener = Callable[[Event], None]
Attributes = Mapping[str, str | int | float | bool]


class Span(Protocol):
    """What the library does with a span it opened: add what it learned on the way."""

    def set_attribute(self, key: str, value: str | int | float | bool) -> None: ...


class Telemetry(Protocol):
    """What the hub needs of a telemetry backend (``_otel.Recorder``): a listener, spans, pool gauges."""

    def record(self, event: Event) -> None: ...

    def span(self, name: str, attributes: Attributes) -> contextlib.AbstractContextManager[Span]: ...

    def watch_pool(self, pool: Any, cluster: str, engine: str) -> None: ...


class _NoSpan:
    """The span of work when telemetry is off: takes attributes and keeps nothing."""

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        pass


_NO_SPAN: contextlib.AbstractContextManager[Span] = contextlib.nullcontext(_NoSpan())


class EventHub:
    """The events of one cluster (see the module docstring)."""

    def __init__(self, cluster: str, engine: str, telemetry: Telemetry | None = None) -> None:
        self.cluster = cluster
        self.engine = engine
        self.telemetry = telemetry
        self._listeners: list[Listener] = []

    def __repr__(self) -> str:
        return f"<EventHub {self.cluster} listeners={len(self._listeners)}>"

    @property
    def wanted(self) -> bool:
        """Whether anyone listens (emitters may skip building an event nobody receives)."""
        return bool(self._listeners) or self.telemetry is not None

    def emit(self, kind: type[Event], /, **fields: Any) -> None:
        """Hand a ``kind`` event with ``fields`` to every listener (a listener's error is logged, never
        raised into the library's work)."""
        if not self.wanted:
            return
        event = kind(cluster=self.cluster, engine=self.engine, **fields)
        if self.telemetry is not None:
            self._deliver(self.telemetry.record, event)
        for listener in tuple(self._listeners):
            self._deliver(listener, event)

    def span(
        self, name: str, **attributes: str | int | float | bool
    ) -> contextlib.AbstractContextManager[Span]:
        """A trace span around library work (connect, failover, writer search) when telemetry is on;
        otherwise a context manager that does nothing."""
        if self.telemetry is None:
            return _NO_SPAN
        return self.telemetry.span(
            name, {"db.system": self.engine, "aurora_async.cluster": self.cluster, **attributes}
        )

    def watch_pool(self, pool: Any) -> None:
        """Report ``pool``'s connections as the pool metric while it lives (when telemetry is on)."""
        if self.telemetry is not None:
            self.telemetry.watch_pool(pool, self.cluster, self.engine)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    @staticmethod
    def _deliver(listener: Listener, event: Event) -> None:
        try:
            listener(event)
        except Exception:
            log.exception("an event listener failed on %s", event.kind)


class EventStream:
    """The events of one cluster as an async iterator (:func:`aurora_async.events`).

    ``async with aurora_async.events(pool) as stream: async for event in stream: ...``. It receives
    events from the moment it is made until it is closed (``async with`` exit or :meth:`aclose`); a
    consumer that falls behind by more than ``buffer`` events loses the oldest ones, counted in
    :attr:`dropped`, so a stalled consumer never holds up a failover.
    """

    def __init__(self, hub: EventHub, buffer: int) -> None:
        self._hub = hub
        self._buffer: collections.deque[Event] = collections.deque(maxlen=buffer)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0
        hub.subscribe(self._receive)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._buffer)} waiting"
        return f"<EventStream {self._hub.cluster} {state} dropped={self.dropped}>"

    def _receive(self, event: Event) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(event)
        self._ready.set()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()

    def pending(self) -> Iterator[Event]:
        """The events received and not yet consumed, without waiting (consumes them)."""
        while self._buffer:
            yield self._buffer.popleft()

    async def aclose(self) -> None:
        """Stop receiving; an ``async for`` on the stream ends once it has taken what was received."""
        if not self._closed:
            self._closed = True
            self._hub.unsubscribe(self._receive)
            self._ready.set()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
