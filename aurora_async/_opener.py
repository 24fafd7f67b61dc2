"""Opening physical connections for a cluster: as a connection's own identity, or, for the cluster's
own work (topology monitor, writer search, host probes), as a borrowed one.

Background connections borrow a live identity (:meth:`Identities.for_background`): the strongest
TLS among the connections served, the login that last worked, the next when the server refuses one.
The opener remembers the TLS each background connection was opened with, so that the cluster can drop
those that a stronger identity, joining later, makes too weak.

An application's own connect may wait for an instance that is resuming (Aurora Serverless v2 with
auto-pause scales an idle instance to zero; the first connection then waits while it resumes, about
15 s, longer after a day paused): see :meth:`Opener.open_as`'s ``resume_within``. The library's own
connections never wait for that: the writer search and host probes keep their own deadlines, so a
black-holed instance (which, behind a proxy, also accepts TCP and stays silent) slows none of them.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from ._auth import Authenticator, ClusterCredentials
from ._driver import Driver, RawConnection, discard
from ._events import EventHub
from ._identity import Identities, Identity
from ._tls import Tls

log = logging.getLogger("aurora_async.connect")

_TCP_CHECK = 1.0  # the longest a TCP-only connect may take to tell "silent" from "unreachable"


class Opener:
    """Opens a cluster's physical connections (see the module docstring)."""

    def __init__(
        self,
        driver: Driver,
        auth: Authenticator,
        identities: Identities,
        events: EventHub | None = None,
        region_of: Callable[[str, int, str | None], str | None] | None = None,
    ) -> None:
        self.driver = driver
        self.auth = auth
        # the credentials as this cluster's connections use them: fetches told to its events, IAM
        # tokens signed for the region of the instance connected to where the topology gives one
        self._supply = ClusterCredentials(auth, events, region_of)
        self.identities = identities
        self._background_tls: weakref.WeakKeyDictionary[Any, Tls] = weakref.WeakKeyDictionary()
        self._resuming_seen: set[tuple[str, int]] = set()  # endpoints already said to be resuming

    async def open_as(
        self, identity: Identity, host: str, port: int, timeout: float, *, resume_within: float = 0.0
    ) -> RawConnection:
        """A physical connection to ``host:port`` opened as ``identity``, within ``timeout``.

        With ``resume_within`` longer than ``timeout`` (an application's own connect: the
        ``resume_timeout`` option, bounded by its failover deadline), an attempt that times out is
        followed by a TCP-only connect (at most 1 s): a host that accepts TCP but did not answer the
        login may be an Aurora Serverless v2 instance resuming from auto-pause, which holds logins
        until it has resumed, so the connect is tried once more with what is left of
        ``resume_within`` (from the first attempt's start). A host that refuses or does not accept TCP
        fails as it would without it.

        :raises: the driver's error; ``TimeoutError`` when the host stays silent (until
            ``resume_within`` when it accepts TCP).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await self._open_as(identity, host, port, timeout)
        except TimeoutError:
            if started + resume_within - loop.time() <= 0:
                raise
            probe = min(_TCP_CHECK, timeout, started + resume_within - loop.time())
            if not await self.driver.accepts_tcp(host, port, probe):
                raise
        remaining = started + resume_within - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"{host}:{port} did not answer within {resume_within:g} s")
        if (host, port) not in self._resuming_seen:
            self._resuming_seen.add((host, port))
            log.warning(
                "instance %s:%s did not answer within connect_timeout (%g s) but accepts connections: "
                "waiting up to resume_timeout (%g s in all) for it to resume (Aurora Serverless v2 "
                "auto-pause)",
                host,
                port,
                timeout,
                resume_within,
            )
        return await self._open_as(identity, host, port, remaining)

    async def _open_as(self, identity: Identity, host: str, port: int, timeout: float) -> RawConnection:
        try:
            conn = await self.driver.open(identity, host, port, timeout, self._supply)
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
