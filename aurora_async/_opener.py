"""Opening physical connections for a cluster: as a connection's own identity, or, for the cluster's
own work (topology monitor, writer search, host probes), as a borrowed one.

Background connections borrow a live identity (:meth:`Identities.for_background`): the strongest
TLS among the connections served, the login that last worked, the next when the server refuses one.
The opener remembers the TLS each background connection was opened with, so that the cluster can drop
those that a stronger identity, joining later, makes too weak.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from ._auth import Authenticator
from ._driver import Driver, RawConnection, discard
from ._identity import Identities, Identity
from ._tls import Tls


class Opener:
    """Opens a cluster's physical connections (see the module docstring)."""

    def __init__(self, driver: Driver, auth: Authenticator, identities: Identities) -> None:
        self.driver = driver
        self.auth = auth
        self.identities = identities
        self._background_tls: weakref.WeakKeyDictionary[Any, Tls] = weakref.WeakKeyDictionary()

    async def open_as(self, identity: Identity, host: str, port: int, timeout: float) -> RawConnection:
        """A physical connection to ``host:port`` opened as ``identity``, within ``timeout``."""
        try:
            conn = await self.driver.open(identity, host, port, timeout, self.auth)
        except Exception as exc:
            if self.driver.is_login_error(exc):
                self.identities.refused(identity)
            raise
        self.identities.logged_in(identity)
        return conn

    async def open_background(self, host: str, port: int, timeout: float) -> RawConnection:
        """A physical connection for the cluster's own work, with a borrowed identity: when the server
        refuses one login, the next is tried within the same ``timeout``. A connection that came out
        weaker than the strongest TLS served (a stronger identity joined meanwhile) is not kept.

        :raises: the driver's error: the last login refused, or why the host could not be reached.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        refused: BaseException | None = None
        candidates = self.identities.for_background()
        while candidates:
            identity = candidates.pop(0)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                conn = await self.open_as(identity, host, port, min(remaining, identity.connect_timeout))
            except self.driver.connect_errors as exc:
                if not self.driver.is_login_error(exc):
                    raise
                refused = exc
                continue
            if identity.tls < self.identities.strongest():
                discard(conn)
                candidates = self.identities.for_background()
                continue
            self._background_tls[conn] = identity.tls
            return conn
        if refused is not None:
            raise refused
        raise OSError(f"no connection identity left to open a connection to {host}:{port}")

    def too_weak(self, conn: RawConnection) -> bool:
        """Whether background connection ``conn`` has weaker TLS than a connection it now serves."""
        return self._background_tls.get(conn, Tls.NONE) < self.identities.strongest()
