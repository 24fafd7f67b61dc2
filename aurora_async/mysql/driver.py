"""The aiomysql boundary: open physical connections with a deadline, classify the driver's errors."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiomysql
import pymysql
from pymysql.charset import charset_by_name

from .._auth import IamSource
from .._credential_options import MYSQL_CLEAR_PASSWORD
from .._driver import Driver, connect_as, set_keepalive
from .._tls import mysql_tls
from .dialects import DIALECTS, MySqlDialect, detect_dialect
from .errors import FAILOVER_ERRORS

if TYPE_CHECKING:
    from .._auth import Authenticator, ClusterCredentials
    from .._identity import Identity

# client-side error numbers for a connection that failed or was lost (the incumbent's list):
# 2001/2002 socket/unix socket, 2003 cannot connect, 2004 cannot create socket, 2006 server gone,
# 2012 handshake error, 2013 lost during query, 2026 TLS error, 2055 lost (extended)
_CONNECTION_ERRNOS = frozenset({2001, 2002, 2003, 2004, 2006, 2012, 2013, 2026, 2055})
# server errors that end the session: 1053 shutdown in progress, 1927 connection killed
_SESSION_ENDED_ERRNOS = frozenset({1053, 1927})
_OPTION_PREVENTS_STATEMENT = 1290  # with "--read-only option": a replica refusing a write
_READ_ONLY_MODE = 1836
_ACCESS_DENIED = frozenset({1045, 1698})
_UNKNOWN_THREAD = 1094  # KILL of a connection id the server does not have
_CLIENT_SSL = 0x800  # the server's capability flag: it can switch to TLS
_CR_SSL_CONNECTION_ERROR = 2026
_CR_CONN_HOST_ERROR = 2003
_CR_SERVER_GONE_ERROR = 2006
_COM_QUERY = 0x03
_COM_RESET_CONNECTION = 0x1F  # MySQL 5.7.3+ / MariaDB 10.2.4+; PyMySQL has no name for it

CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, pymysql.err.MySQLError, TimeoutError)


class ServerGoneError(pymysql.err.OperationalError):  # type: ignore[misc]
    """``OperationalError`` 2006 ("MySQL server has gone away"), raised before a command was sent on a
    connection that the server had already closed: the command surely did not run."""


class MySQLConnection(aiomysql.Connection):  # type: ignore[misc]
    """aiomysql's ``Connection``, plus what aurora_async needs from every physical connection:
    ``is_closed()``, ``terminate()``, ``is_in_transaction()`` and ``add_termination_listener()``.

    It is a genuine ``aiomysql.Connection`` (what :func:`aurora_async.connect_raw` returns for a
    ``mysql://`` DSN)."""

    def __init__(self, *, cleartext_needs_tls: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._termination_listeners: list[Callable[[Any], None]] = []
        self._touched = True  # until connected: a command went to the server since the last reset
        # the session as it was opened: what reset_session() applies again
        opened: Any = self  # aiomysql's attributes carry no types
        self._opened_as: tuple[str, bool | None, str | None, str | None] = (
            opened._charset,
            opened.autocommit_mode,
            opened.sql_mode,
            opened.init_command,
        )
        # the password is an IAM token: it leaves only over TLS (in clear text, as Aurora asks)
        self._cleartext_needs_tls = cleartext_needs_tls

    def is_closed(self) -> bool:
        """Closed here, or its socket already closed by the peer (seen once the loop noticed)."""
        writer = self._writer
        return writer is None or writer.transport.is_closing()

    def was_closed(self) -> bool:
        """Closed on this side (``close()``, or by aiomysql when a query was cancelled midway or the
        connection was lost), as aiomysql's own checks see it; a socket that only the peer closed is
        not (yet)."""
        return self._writer is None

    def terminate(self) -> None:
        """Close at once: abort the socket (nothing left unsent keeps it open), no COM_QUIT."""
        writer = self._writer
        if writer is not None:
            writer.transport.abort()
        self.close()

    def close(self) -> None:
        """aiomysql's ``close()`` (it also runs when aiomysql itself sees the connection lost)."""
        was_open = self._writer is not None
        super().close()
        if was_open:
            listeners, self._termination_listeners = self._termination_listeners, []
            for listener in listeners:
                listener(self)

    def _ensure_alive(self) -> None:
        # a socket the peer already closed: say so before sending anything (aiomysql would write into
        # the closed transport and report the loss only when the reply does not come), with the error
        # aiomysql gives a connection lost under it, so that code written for aiomysql catches it
        if self._writer is not None and self._writer.transport.is_closing():
            self.close()
            raise ServerGoneError(
                _CR_SERVER_GONE_ERROR, "MySQL server has gone away (it closed the connection)"
            )
        super()._ensure_alive()

    async def _request_authentication(self) -> None:
        # aiomysql logs in over plain text when the server does not offer TLS, even with an SSLContext
        # given: the password (an IAM token) would cross the network in the clear. Refuse instead.
        if self._ssl_context is not None and not self.server_capabilities & _CLIENT_SSL:
            raise pymysql.err.OperationalError(
                _CR_SSL_CONNECTION_ERROR,
                f"TLS was asked for (ssl=) but the server at {self._host}:{self._port} does not offer it: "
                "not logging in over plain text",
            )
        if self._cleartext_needs_tls and self._ssl_context is None:
            raise pymysql.err.OperationalError(
                _CR_SSL_CONNECTION_ERROR,
                f"not sending the IAM token to {self._host}:{self._port}: this connection has no TLS "
                "(pass ssl=, or iam_allow_plaintext=True for local testing)",
            )
        await super()._request_authentication()

    async def _connect(self) -> None:
        await super()._connect()
        self._touched = False  # the session is as opened: nothing for reset_session() to undo

    async def _execute_command(self, command: int, sql: Any) -> None:
        self._touched = True  # every command the server sees passes here
        await super()._execute_command(command, sql)

    async def reset_session(self) -> None:
        """Put the session back as it was opened: ``COM_RESET_CONNECTION`` (rolls back, drops user
        variables, temporary tables, prepared statements, ``GET_LOCK`` locks and session settings;
        the current database stays), then the character set, ``sql_mode`` and autocommit this
        connection was opened with, sent at once behind it (one round trip for both), and its
        ``init_command`` again. Nothing is sent when no command went to the server since the
        connection opened or was last reset."""
        if not self._touched:
            return
        charset, autocommit, sql_mode, init_command = self._opened_as
        settings = [f"NAMES {self.escape(charset)}"]
        if sql_mode is not None:
            settings.append(f"sql_mode={sql_mode}")  # as aiomysql sends it at connect
        if autocommit is not None:
            settings.append(f"autocommit={int(bool(autocommit))}")
        try:
            await self._execute_command(_COM_RESET_CONNECTION, b"")
            await self._execute_command(_COM_QUERY, "SET " + ", ".join(settings))  # pipelined
            await self._read_ok_packet()  # the reset's answer
            self._next_seq_id = 1  # the SET's answer: its own command's first reply
            await self._read_query_result()
        except BaseException:
            self.close()  # a reply may still be on its way: the connection cannot be reused
            raise
        self._charset, self._encoding = charset, charset_by_name(charset).encoding
        self.autocommit_mode = autocommit
        if init_command is not None:
            await self.query(init_command)
            await self.commit()
        self._touched = False

    def is_in_transaction(self) -> bool:
        """The server's "in transaction" status flag, as of the last reply."""
        return bool(self.get_transaction_status())

    def add_termination_listener(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(connection)`` once, when the connection closes."""
        self._termination_listeners.append(callback)


def connect_kwargs(identity: Identity, host: str, port: int) -> dict[str, Any]:
    """Keyword arguments for ``aiomysql.Connection`` to reach ``host:port`` as ``identity``."""
    kwargs: dict[str, Any] = dict(identity.driver_kwargs)
    # no connect_timeout for aiomysql: our own deadline covers the whole connect (aiomysql's covers only
    # the TCP connect, through asyncio.wait_for, which on Python 3.11 can swallow a cancellation that
    # arrives as the connect completes: a monitor task stopped at that moment would live on)
    kwargs.update(host=host, port=port, connect_timeout=None)
    if identity.user is not None:
        kwargs["user"] = identity.user
    if identity.password is not None:
        kwargs["password"] = identity.password
    if isinstance(identity.credentials, IamSource):
        # what Aurora's AWSAuthenticationPlugin asks for: the token itself, at once (no hash of it
        # first, no extra round trip), and only over TLS unless the caller said otherwise
        kwargs["auth_plugin"] = MYSQL_CLEAR_PASSWORD
        kwargs["cleartext_needs_tls"] = not identity.credentials.allow_plaintext
    if identity.database is not None:
        kwargs["db"] = identity.database
    return kwargs


async def open_connection(
    identity: Identity, host: str, port: int, timeout: float, auth: Authenticator | ClusterCredentials
) -> MySQLConnection:
    """A :class:`MySQLConnection` to ``host:port`` as ``identity`` within ``timeout`` seconds (TCP
    connect, handshake, login and the session set-up together); when the identity has a credential
    source, the credentials come from ``auth``."""
    kwargs = connect_kwargs(identity, host, port)
    connect = functools.partial(_connect, timeout=timeout)
    return await connect_as(connect, kwargs, identity=identity, auth=auth, is_login_error=is_login_error)


async def _connect(kwargs: dict[str, Any], timeout: float) -> MySQLConnection:
    conn = MySQLConnection(**kwargs)
    try:
        async with asyncio.timeout(timeout):
            await conn._connect()
    except BaseException:
        conn.terminate()  # aiomysql leaves the socket open when cancelled mid-handshake
        raise
    if conn._writer is not None:
        set_keepalive(conn._writer.transport)
    return conn


def connect_timed_out(host: str, port: int) -> Exception:
    """What ``aiomysql.connect()`` raises when the server could not be reached in time: the
    application's connect raises it too (the library's own connects keep ``TimeoutError``)."""
    error: Exception = pymysql.err.OperationalError(
        _CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on {host!r}"
    )
    return error


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def is_connection_error(exc: BaseException, conn: Any) -> bool:
    """True when ``exc`` means the physical connection is unusable (so failover should run)."""
    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
        return True
    errno = _errno(exc)
    if errno is not None and (errno in _CONNECTION_ERRNOS or errno in _SESSION_ENDED_ERRNOS):
        return True
    if isinstance(exc, pymysql.err.InterfaceError):
        # "Not connected" / "Cancelled during execution": only when the connection really is closed
        return conn is not None and conn.is_closed()
    return False


def is_read_only_error(exc: BaseException) -> bool:
    errno = _errno(exc)
    if errno == _READ_ONLY_MODE:
        return True
    return errno == _OPTION_PREVENTS_STATEMENT and "read-only" in str(exc.args[1:]).lower()


def may_have_taken_effect(exc: BaseException) -> bool:
    """False only when the statement surely did not run: aiomysql refused to send it on a closed
    connection (``InterfaceError``, or :class:`ServerGoneError` when the server had closed it), or a
    read-only instance rejected it."""
    return not (isinstance(exc, pymysql.err.InterfaceError | ServerGoneError) or is_read_only_error(exc))


def is_login_error(exc: BaseException) -> bool:
    return _errno(exc) in _ACCESS_DENIED


async def _ping(conn: MySQLConnection) -> None:
    await conn.ping(reconnect=False)  # aiomysql would reconnect to the same, possibly dead, instance


def session_id(conn: MySQLConnection) -> int:
    """The server's connection id for ``conn``'s session."""
    return int(conn.server_thread_id[0])


async def _rows(conn: MySQLConnection, sql: str) -> list[Any]:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        rows: list[Any] = list(await cur.fetchall())
    if conn.get_transaction_status():  # autocommit off: leave no transaction open behind us
        await conn.rollback()
    return rows


async def end_session(conn: MySQLConnection, connection_id: int, age: float) -> bool:
    """``KILL CONNECTION`` ``connection_id``, opened ``age`` seconds ago, from ``conn`` (the same user
    may kill its own connections); False when no such session runs. Connection ids start again at a
    restart: a server surely up for less than ``age`` lost the session with its restart, and the id
    may now be someone else's."""
    uptime = await _rows(conn, "SHOW GLOBAL STATUS LIKE 'Uptime'")  # whole seconds, rounded down
    if uptime and int(uptime[0][1]) + 1 <= age:
        return False
    try:
        await _rows(conn, f"KILL CONNECTION {int(connection_id)}")
    except pymysql.err.MySQLError as exc:
        if _errno(exc) == _UNKNOWN_THREAD:
            return False
        raise
    return True


async def session_alive(conn: MySQLConnection, connection_id: int) -> bool:
    rows = await _rows(conn, f"SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = {int(connection_id)}")
    return bool(rows)


MYSQL = Driver(
    engine="mysql",
    schemes=("mysql",),
    default_port=3306,
    connect_name="aiomysql.connect()",
    connect_keywords=frozenset(inspect.signature(aiomysql.connect).parameters)
    - {"host", "port", "user", "password", "db", "loop", "connect_timeout"},
    keyword_aliases={"db": "database"},
    dsn_passthrough=False,
    dsn_parameters=frozenset(),
    # aiomysql keywords a mysql:// DSN may carry as query parameters (True: a true/false flag)
    dsn_keywords={
        "charset": False,
        "sql_mode": False,
        "init_command": False,
        "program_name": False,
        "autocommit": True,
        "local_infile": True,
        "unix_socket": False,
    },
    tls=lambda ssl, dsn: mysql_tls(ssl),
    connect_errors=CONNECT_ERRORS,
    dialects=DIALECTS,
    plain_dialect=MySqlDialect,
    open=open_connection,
    is_connection_error=is_connection_error,
    is_read_only_error=is_read_only_error,
    may_have_taken_effect=may_have_taken_effect,
    is_login_error=is_login_error,
    ping=_ping,
    session_id=session_id,
    end_session=end_session,
    session_alive=session_alive,
    detect_dialect=detect_dialect,
    failover_errors=FAILOVER_ERRORS,
    connect_timed_out=connect_timed_out,
)
