"""Settling an outcome: before a failover says a transaction's outcome is unknown, its old server
session is made to end.

A connection cut off on the client side (host monitoring declared its instance dead, the network
reset it) can leave its server session alive: the server has not noticed, and the COMMIT the client
sent may still be on its way, or running. When the failover then lands on that same instance, as it
does when the instance was slow rather than dead, a read-back of the transaction on the new
connection could run before that COMMIT: it would find nothing, the application would re-run the
transaction, and the late COMMIT would apply it a second time.

So before raising ``TransactionResolutionUnknownError`` (or ``FailoverSuccessError`` for a statement
that may have run) for a connection that failed over to the instance it was on, the failover ends the
old session from the new connection (``pg_terminate_backend`` / ``KILL CONNECTION``, as the same
user) and waits until the server no longer lists it. From then on the outcome is fixed: reading back
tells the truth. On another instance there is nothing to settle: the old writer was restarted or
demoted, so a session of it cannot commit any more.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ._driver import Driver

log = logging.getLogger("aurora_async.failover")

_FIRST_POLL = 0.002  # seconds; a told session usually ends within a millisecond or two
_LONGEST_POLL = 0.05


@dataclass(frozen=True)
class ServerSession:
    """A physical connection's session on its server: the server's id for it (PostgreSQL's backend
    PID, MySQL's connection id) and when the connection was opened (the loop's clock)."""

    session_id: int
    opened_at: float


async def settle(driver: Driver, conn: Any, old: ServerSession, timeout: float) -> bool:
    """End session ``old`` from ``conn`` (a connection to the same server, as the same user) and wait
    until the server no longer lists it, within ``timeout`` seconds. Returns whether that is known:
    False when the time ran out or the server refused (a warning is logged: the outcome may still
    change)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            age = loop.time() - old.opened_at
            if not await driver.end_session(conn, old.session_id, age):
                return True  # gone already (or the server restarted since: gone with it)
            pause = _FIRST_POLL
            while await driver.session_alive(conn, old.session_id):
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LONGEST_POLL)
    except Exception as exc:  # a refusal or a timeout: the outcome stays open, and the log says so
        log.warning(
            "could not end the old server session %d before reporting an unknown outcome (%s): "
            "a read-back may not yet see a COMMIT that was on its way",
            old.session_id,
            type(exc).__name__ if isinstance(exc, TimeoutError) else exc,
        )
        return False
    return True
