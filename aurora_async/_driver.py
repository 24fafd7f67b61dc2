"""What the core needs from a database driver, and which driver serves which engine.

The cluster, failover, host monitoring and the facades do not import asyncpg or aiomysql: they ask
the cluster's :class:`Driver` to open a physical connection, to classify an error and to probe an
instance. A physical connection of either driver offers ``is_closed()``, ``terminate()``,
``is_in_transaction()`` and ``add_termination_listener()`` (asyncpg's own; aurora_async's aiomysql
connection class adds them).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._auth import Authenticator
    from ._config import Config
    from ._dialects import Dialect


class Driver(Protocol):
    """One database driver as the core sees it."""

    engine: str
    # what opening a connection, or a probe query on one, raises when the instance cannot be used
    connect_errors: tuple[type[BaseException], ...]
    dialects: dict[str, type[Dialect]]

    async def open(
        self, config: Config, host: str, port: int, timeout: float, auth: Authenticator | None = None
    ) -> Any:
        """A physical connection to ``host:port`` within ``timeout`` seconds."""
        ...

    def is_connection_error(self, exc: BaseException, conn: Any) -> bool:
        """``exc`` means the physical connection is unusable (so failover should run)."""
        ...

    def is_read_only_error(self, exc: BaseException) -> bool:
        """``exc`` is a write refused by a read-only instance (a writer demoted under us)."""
        ...

    def may_have_taken_effect(self, exc: BaseException) -> bool:
        """False only when the statement that failed with ``exc`` surely changed nothing."""
        ...

    def is_login_error(self, exc: BaseException) -> bool: ...

    async def ping(self, conn: Any) -> None:
        """One cheap round trip (the host monitor bounds it with its own timeout)."""
        ...

    async def detect_dialect(self, conn: Any, timeout: float) -> Dialect:
        """The most specific dialect the server answers to."""
        ...

    def plain_dialect(self) -> Dialect:
        """The dialect with no topology (a connection without plugins uses it for its role)."""
        ...


def discard(conn: Any) -> None:
    """Drop a connection we no longer want, without waiting on a server that may be gone."""
    if conn is not None and not conn.is_closed():
        conn.terminate()


def discard_first(pair: tuple[Any, Any]) -> None:
    """:func:`discard` for a (connection, what it reached) result that lost a race."""
    discard(pair[0])


# TCP keepalive: the second line of defence behind host monitoring, for a peer that vanished while
# the connection was idle or waiting on a long query: probe after 30 s of silence, every 5 s, give up
# after 3 misses; and never wait more than 30 s for sent data to be acknowledged.
_KEEPALIVE = (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3), ("TCP_USER_TIMEOUT", 30_000))


def set_keepalive(transport: asyncio.BaseTransport | None) -> None:
    """Turn on TCP keepalive (and a user timeout) on a connection's socket, where the platform has them."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket, or a driver that hides its transport
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _KEEPALIVE:
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError:
        pass  # best effort: monitoring does not depend on it
