"""What the core needs from a database driver: the engine's facts, its connections and its errors.

The cluster, failover, host monitoring and the facades do not import asyncpg or aiomysql: they ask
the cluster's :class:`Driver` to open a physical connection, to classify an error and to probe an
instance. A physical connection of either driver offers ``is_closed()``, ``terminate()``,
``is_in_transaction()`` and ``add_termination_listener()`` (asyncpg's own; aurora_async's aiomysql
connection class adds them).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._exceptions import FailoverError

if TYPE_CHECKING:
    from ._auth import Authenticator, ClusterCredentials, Credentials
    from ._dialect import Dialect
    from ._identity import Identity
    from ._tls import Tls

T = TypeVar("T")
E = TypeVar("E", bound="FailoverError")


class RawConnection(Protocol):
    """What the core asks of any driver's physical connection: asyncpg's own methods, which
    aurora_async's aiomysql connection class adds to aiomysql's."""

    def is_closed(self) -> bool: ...

    def terminate(self) -> None: ...

    def is_in_transaction(self) -> bool: ...

    def add_termination_listener(self, callback: Any) -> None: ...


async def accepts_tcp(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` completes a TCP handshake within ``timeout`` (closed at once, nothing
    sent): tells a host that accepts connections but does not answer a login (an Aurora Serverless
    v2 instance resuming) from one that cannot be reached at all."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
    except (OSError, TimeoutError):
        return False
    transport.abort()
    return True


@dataclass(frozen=True)
class Driver:
    """One database driver as the core sees it: the engine's facts (port, the driver's keywords, TLS),
    what it raises and the functions that use it."""

    engine: str
    schemes: tuple[str, ...]  # the DSN schemes that name the engine
    default_port: int
    connect_name: str  # how errors name the driver's connect function
    # the driver's connect() keywords that aurora_async accepts and passes on (host, port, user,
    # password, database and timeout it handles itself); aliases name the same thing differently
    connect_keywords: frozenset[str]
    keyword_aliases: Mapping[str, str]  # driver's name -> aurora_async's (aiomysql's db= is database=)
    # DSN query parameters: with ``dsn_passthrough`` the driver reads the DSN itself (these are the ones
    # it reads; the rest it sends to the server as settings); without, only ``dsn_keywords`` are accepted,
    # and they become connect() keywords (the value says whether it is a true/false flag)
    dsn_passthrough: bool
    dsn_parameters: frozenset[str]
    dsn_keywords: Mapping[str, bool]
    tls: Callable[[Any, str | None], Tls]  # (ssl= argument, the DSN passed on) -> what TLS that gives
    # what opening a connection, or a probe query on one, raises when the instance cannot be used
    connect_errors: tuple[type[BaseException], ...]
    dialects: Mapping[str, type[Dialect]]  # by wrapper_dialect code
    plain_dialect: type[Dialect]  # no topology: a connection without plugins uses it for its role
    # (identity, host, port, timeout, authenticator) -> a physical connection within timeout, opened
    # with the identity's settings (its credentials from the authenticator when it has a source)
    open: Callable[[Identity, str, int, float, Authenticator | ClusterCredentials], Awaitable[RawConnection]]
    # (error, connection or None) -> the physical connection is unusable (so failover should run)
    is_connection_error: Callable[[BaseException, Any], bool]
    is_read_only_error: Callable[[BaseException], bool]  # a write refused by a read-only instance
    may_have_taken_effect: Callable[[BaseException], bool]  # False only when it surely changed nothing
    is_login_error: Callable[[BaseException], bool]
    ping: Callable[[Any], Awaitable[None]]  # one cheap round trip (callers bound it)
    session_id: Callable[[Any], int]  # the server's id for a connection's session (PID, connection id)
    # (connection, id, age in seconds) -> told session ``id`` of the same server, opened ``age`` seconds
    # ago, to end (False: no such session, or it began after ``age`` ago and so is someone else's)
    end_session: Callable[[Any, int, float], Awaitable[bool]]
    session_alive: Callable[[Any, int], Awaitable[bool]]  # (connection, id) -> the server still lists it
    detect_dialect: Callable[[Any, float], Awaitable[Dialect]]  # the most specific one that answers
    # (host, port, timeout) -> whether host:port completes a TCP handshake within timeout (no login)
    accepts_tcp: Callable[[str, int, float], Awaitable[bool]] = accepts_tcp
    # each failover error as this driver's connections raise it: a subclass that is also the driver's
    # own connection-lost error, so code written for the driver handles it as it handled a lost connection
    failover_errors: Mapping[type[FailoverError], type[FailoverError]] = field(default_factory=dict)
    # environment variables the driver reads for what neither the DSN nor a keyword gives
    # (asyncpg's PGHOST, PGPORT, ...): name -> variable
    environment: Mapping[str, str] = field(default_factory=dict)
    # (host, port) -> what the application's connect() raises when it timed out, as the driver's own
    # connect would (the library's own connects keep TimeoutError); None: TimeoutError itself
    connect_timed_out: Callable[[str, int], Exception] | None = None

    def failover_error(self, kind: type[E], message: str, **kwargs: Any) -> E:
        """A failover error of ``kind`` (``FailoverSuccessError``, ...) as this driver raises it."""
        cls: type[E] = self.failover_errors.get(kind, kind)  # type: ignore[assignment]
        return cls(message, **kwargs)


async def connect_as(
    connect: Callable[[dict[str, Any]], Awaitable[T]],
    kwargs: dict[str, Any],
    *,
    identity: Identity,
    auth: Authenticator | ClusterCredentials,
    is_login_error: Callable[[BaseException], bool],
) -> T:
    """``connect(kwargs)`` (which hold ``host`` and ``port``); when ``identity`` has a credential source,
    as the user and with the password ``auth`` supplies for it (IAM token or secret), refreshed once
    on a login failure."""
    source = identity.credentials
    if source is None:
        return await connect(kwargs)

    async def with_credentials(credentials: Credentials) -> T:
        attempt = dict(kwargs)
        if credentials.user:
            attempt["user"] = credentials.user
        attempt["password"] = credentials.password
        return await connect(attempt)

    return await auth.connect(source, kwargs["host"], kwargs["port"], with_credentials, is_login_error)


def discard(conn: RawConnection | None) -> None:
    """Drop a connection we no longer want, without waiting on a server that may be gone. Also one
    that looks closed: its peer may have closed the socket while the driver's object still holds it
    (aiomysql's then warns "Unclosed connection" when collected); terminating twice is harmless."""
    if conn is not None:
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
