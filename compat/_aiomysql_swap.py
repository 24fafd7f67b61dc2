"""A pytest plugin for aiomysql's own test suite: ``aiomysql.connect()`` becomes ``aurora_async.connect()``.

Loaded with ``-p compat._aiomysql_swap``. ``AURORA_COMPAT_MODE`` says how: ``facade`` (the default
plugins) or ``facade-noplugins`` (``plugins=()``). The suite's own files are not changed: its fixtures
and tests call ``aiomysql.connect`` (the package attribute) or ``aiomysql.connection.connect``, and both
are replaced here, at import, by :func:`connect`. aiomysql's pool keeps its own reference to the
original (``aiomysql.pool.connect``): pools stay aiomysql's, as aurora_async has no MySQL pool.
"""

from __future__ import annotations

import os
from typing import Any

import aiomysql
import aiomysql.connection

import aurora_async

MODES = ("facade", "facade-noplugins")
_MODE = os.environ.get("AURORA_COMPAT_MODE", "facade")
if _MODE not in MODES:
    raise RuntimeError(f"AURORA_COMPAT_MODE must be one of {', '.join(MODES)}, not {_MODE!r}")


def connect(  # noqa: PLR0917 (aiomysql.connect()'s own positional parameters)
    host: str = "localhost",
    user: str | None = None,
    password: str = "",
    db: str | None = None,
    port: int = 3306,
    unix_socket: str | None = None,
    connect_timeout: float | None = None,
    loop: Any = None,
    **kwargs: Any,
) -> Any:
    """``aiomysql.connect()``'s signature, served by ``aurora_async.connect(engine="mysql", ...)``.

    ``loop`` is dropped (aurora_async runs on the running loop, as aiomysql does without it);
    ``unix_socket`` and ``connect_timeout`` are passed on only when given (``None`` is aiomysql's
    "not set"); every other argument is passed on as it is.
    """
    del loop
    if unix_socket is not None:
        kwargs["unix_socket"] = unix_socket
    if connect_timeout is not None:
        kwargs["connect_timeout"] = connect_timeout
    if _MODE == "facade-noplugins":
        kwargs["plugins"] = ()
    return aurora_async.connect(
        engine="mysql", host=host, port=port, user=user, password=password, db=db, **kwargs
    )


aiomysql.connect = connect
aiomysql.connection.connect = connect
