"""The connection tracker (``aurora_connection_tracker``): which writer connections sit on which instance.

When the writer changes, the physical connections still open to the old writer are terminated, so
their next use fails over instead of silently running on a demoted, read-only instance.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

log = logging.getLogger("aurora_async.tracker")


class Tracker:
    def __init__(self) -> None:
        self._on: dict[str, weakref.WeakSet[Any]] = {}

    def add(self, instance_id: str, conn: Any) -> None:
        self._on.setdefault(instance_id, weakref.WeakSet()).add(conn)

    def remove(self, instance_id: str, conn: Any) -> None:
        tracked = self._on.get(instance_id)
        if tracked is not None:
            tracked.discard(conn)

    def count(self, instance_id: str) -> int:
        return len(self._on.get(instance_id, ()))

    def close_all_on(self, instance_id: str) -> int:
        """Terminate every tracked connection to ``instance_id``; returns how many were open."""
        closed = 0
        for conn in list(self._on.pop(instance_id, ())):
            if not conn.is_closed():
                conn.terminate()
                closed += 1
        if closed:
            log.info("closed %d connection(s) to the old writer %s", closed, instance_id)
        return closed
