"""The front door to what the library sees: :func:`events` (a stream of typed events) and :func:`health`
(a snapshot for a health check), for a connection, a pool or a connector."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._connect import RawConnector
from ._events import EventStream
from ._exceptions import ConfigurationError
from ._health import Health, snapshot, unknown
from ._pool import AuroraPool
from ._registry import cluster_label, registry
from ._session import Session

if TYPE_CHECKING:
    from ._cluster import Cluster
    from ._config import Config

Target = Session | AuroraPool[Any] | RawConnector


def _config_of(target: Target) -> Config:
    if isinstance(target, Session | AuroraPool | RawConnector):
        return target._config
    raise ConfigurationError(
        f"events() and health() take a connection from aurora_async.connect(), a pool from "
        f"create_pool() or a raw_connector(); got {type(target).__name__}"
    )


def events(target: Target, *, buffer: int = 1000) -> EventStream:
    """The events of ``target``'s cluster from now on, as an async iterator.

    ``target`` is a connection (:func:`connect`), a pool (:func:`create_pool`) or a connector
    (:func:`raw_connector`; the stream may be opened before its first connection). Use it as
    ``async with aurora_async.events(pool) as stream: async for event in stream: ...`` in a task the
    application owns; the stream lasts until it is closed, across the cluster's failovers. Events are
    :class:`Event` subclasses (``FailoverStarted``, ``WriterChanged``, ``HostDown``, ...). A consumer
    more than ``buffer`` events behind loses the oldest (counted in ``stream.dropped``).

    :raises ConfigurationError: ``target`` is none of the above, or ``buffer`` is not positive.
    """
    config = _config_of(target)
    if not isinstance(buffer, int) or buffer < 1:
        raise ConfigurationError(f"buffer must be a positive integer, got {buffer!r}")
    return EventStream(registry.hub(config), buffer)


def health(target: Target) -> Health:
    """What the library knows about ``target``'s cluster right now (no I/O): the writer, the instances,
    hosts declared dead, the topology's age, a failover under way, and ``problems`` in words;
    ``health(pool).healthy`` is what a readiness check returns, ``.as_dict()`` its JSON body.

    :raises ConfigurationError: ``target`` is not a connection, pool or connector of this library.
    """
    config = _config_of(target)
    cluster: Cluster | None = target._cluster
    label = cluster_label(config)
    if target._closed:
        return unknown(label, config.engine, f"the {type(target).__name__} is closed")
    if cluster is None:
        return unknown(label, config.engine, "no connection has been made yet")
    return snapshot(cluster)
