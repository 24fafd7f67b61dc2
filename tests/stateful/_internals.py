"""The few private attributes of aurora_async that the stateful test reads, all in one place.

The invariants need to know which physical connections belong to the application (a connection's
current one and the other role's one kept by read/write splitting, every pooled connection), which
cluster an object holds, and whether a connection is failing over right now (to close it at that
moment). Nothing public says so. If one of these attributes is renamed, these functions fail loudly
(AttributeError) rather than letting an invariant pass unchecked.
"""

from __future__ import annotations

from typing import Any


def spare(conn: Any) -> tuple[Any, str] | None:
    """The other role's physical connection a read/write splitting connection keeps, if any, and the
    instance it is on."""
    kept = conn._spare
    return None if kept is None else (kept[0], str(kept[1].instance_id))


def pool_members(pool: Any) -> list[Any]:
    """Every connection facade a pool holds, idle or acquired."""
    return [*pool._idle, *pool._in_use]


def cluster_of(obj: Any) -> Any | None:
    """The ``Cluster`` a connection facade or a pool holds (None for a closed pool)."""
    return obj._cluster


def in_failover(conn: Any) -> bool:
    """Whether the connection is failing over now (its failover lock is held)."""
    return bool(conn._failover_lock.locked())
