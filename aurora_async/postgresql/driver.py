"""The asyncpg boundary: open physical connections with a deadline, classify the driver's errors."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

import asyncpg
from asyncpg.exceptions import InternalClientError

from .._auth import Authenticator, ClusterCredentials
from .._driver import Driver, connect_as, set_keepalive
from .._identity import Identity
from .._tls import postgres_tls
from .dialects import DIALECTS, PgDialect, detect_dialect
from .errors import FAILOVER_ERRORS

# SQLSTATE classes and codes that mean "this connection or its server is gone" (prefix match):
# 08 connection exception, 53 insufficient resources, 57P01-03 admin/crash shutdown and
# cannot-connect-now (a restarting or promoting instance), 58 system error.
_CONNECTION_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "58")
_LOGIN_SQLSTATES = ("28000", "28P01")
READ_ONLY_SQLSTATE = "25006"

# what opening a connection, or a probe query on one, raises when the instance cannot be used
CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def connect_kwargs(identity: Identity, host: str, port: int, timeout: float) -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.connect`` to reach ``host:port`` as ``identity``."""
    kwargs: dict[str, Any] = dict(identity.driver_kwargs)
    kwargs.update(host=host, port=port, timeout=timeout)
    if identity.dsn is not None:
        kwargs["dsn"] = identity.dsn
    for name in ("user", "password", "database"):
        value = getattr(identity, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


async def open_connection(
    identity: Identity, host: str, port: int, timeout: float, auth: Authenticator | ClusterCredentials
) -> asyncpg.Connection:
    """An asyncpg connection to ``host:port`` as ``identity``, within ``timeout`` seconds (asyncpg
    applies ``timeout`` to the TCP connect and the start-up handshake together). When the identity has
    a credential source, the user and password come from ``auth`` (IAM token or secret), refreshed once
    on a login failure."""
    kwargs = connect_kwargs(identity, host, port, timeout)
    connect = functools.partial(_connect, timeout=timeout)
    return await connect_as(connect, kwargs, identity=identity, auth=auth, is_login_error=is_login_error)


async def _connect(kwargs: dict[str, Any], timeout: float) -> asyncpg.Connection:
    async with asyncio.timeout(timeout + 1.0):  # belt and braces around asyncpg's own deadline
        conn: asyncpg.Connection = await asyncpg.connect(**kwargs)
    set_keepalive(getattr(conn, "_transport", None))
    return conn


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_connection_error(exc: BaseException, conn: asyncpg.Connection | None) -> bool:
    """True when ``exc`` means the physical connection is unusable (so failover should run).

    Query timeouts and SQL errors are not: the connection still works.
    """
    if isinstance(exc, (asyncpg.ConnectionDoesNotExistError, asyncpg.PostgresConnectionError, OSError)):
        return not isinstance(exc, TimeoutError)
    state = _sqlstate(exc)
    if state is not None:
        return state.startswith(_CONNECTION_SQLSTATES)
    if isinstance(exc, (asyncpg.InterfaceError, InternalClientError)):
        # "connection is closed", or asyncpg's InternalClientError for a query issued just as the
        # server's FATAL arrived: both only count when the connection really is closed
        return conn is not None and conn.is_closed()
    return False


def may_have_taken_effect(exc: BaseException) -> bool:
    """Whether the statement that failed with ``exc`` may have changed data. False only when it surely
    did not: asyncpg refused to send it because the connection was already closed ("connection is
    closed", or its protocol refusing a new query), or a read-only instance rejected it."""
    if isinstance(exc, InternalClientError) or is_read_only_error(exc):
        return False
    return type(exc) is not asyncpg.InterfaceError


def is_read_only_error(exc: BaseException) -> bool:
    return _sqlstate(exc) == READ_ONLY_SQLSTATE


def is_login_error(exc: BaseException) -> bool:
    state = _sqlstate(exc)
    return state is not None and state.startswith(_LOGIN_SQLSTATES)


async def _ping(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT 1")  # simple protocol: one round trip


def session_id(conn: asyncpg.Connection) -> int:
    """The backend PID of ``conn``'s session."""
    return int(conn.get_server_pid())


# a backend started after the one we want holds a reused PID: its start is too recent to be ours
_TERMINATE = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE pid = $1 AND backend_start <= statement_timestamp() - make_interval(secs => $2)"
)
_ALIVE = "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1)"


async def end_session(conn: asyncpg.Connection, pid: int, age: float) -> bool:
    """Terminate backend ``pid``, opened ``age`` seconds ago, from ``conn`` (the same user may signal
    its own backends); False when no such backend runs."""
    return await conn.fetchval(_TERMINATE, pid, age) is not None


async def session_alive(conn: asyncpg.Connection, pid: int) -> bool:
    return bool(await conn.fetchval(_ALIVE, pid))


# what asyncpg itself reads from a postgresql:// DSN's query (asyncpg 0.30-0.32); the rest it sends to
# the server as settings
_DSN_PARAMETERS = frozenset(
    {"host", "port", "dbname", "database", "user", "password", "passfile", "service", "sslmode", "sslcert"}
    | {"sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation", "ssl_min_protocol_version"}
    | {"ssl_max_protocol_version", "target_session_attrs", "krbsrvname", "gsslib"}
)

POSTGRESQL = Driver(
    engine="postgresql",
    schemes=("postgresql", "postgres"),
    default_port=5432,
    connect_name="asyncpg.connect()",
    connect_keywords=frozenset(inspect.signature(asyncpg.connect).parameters)
    - {"dsn", "host", "port", "user", "password", "database", "loop", "timeout", "target_session_attrs"},
    keyword_aliases={},
    dsn_passthrough=True,
    dsn_parameters=_DSN_PARAMETERS,
    dsn_keywords={},
    tls=postgres_tls,
    connect_errors=CONNECT_ERRORS,
    dialects=DIALECTS,
    plain_dialect=PgDialect,
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
    environment={
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "database": "PGDATABASE",
    },
)
