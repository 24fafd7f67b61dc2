"""A pytest plugin loaded into asyncpg's own test suite (``-p compat._asyncpg_swap``): the suite's
``connect()`` becomes ``aurora_async.connect()``; nothing else in the suite changes.

``AURORA_COMPAT_MODE`` chooses: ``raw`` (asyncpg itself), ``facade`` (the default plugins) or
``facade-noplugins`` (``plugins=()``). The suite reaches the server through ``PGHOST`` and friends,
which aurora_async reads as asyncpg does. The swap drops ``loop=``, which ``aurora_async.connect()``
does not take (it uses the running loop, as asyncpg does by default). With
the default plugins it adds ``cluster_instance_host_pattern`` from ``AURORA_COMPAT_PATTERN`` (the
simulated cluster's instances are reached by IP address, as on a cluster behind a custom domain).
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg.connection

import aurora_async

MODES = ("raw", "facade", "facade-noplugins")
MODE = os.environ.get("AURORA_COMPAT_MODE", "raw")
if MODE not in MODES:
    raise RuntimeError(f"AURORA_COMPAT_MODE={MODE!r}: expected one of {', '.join(MODES)}")


async def connect(dsn: str | None = None, *, loop: Any = None, **kwargs: Any) -> Any:
    """``asyncpg.connect()``'s signature, answered by ``aurora_async.connect()``."""
    if MODE == "facade-noplugins":
        kwargs["plugins"] = ()
    elif "AURORA_COMPAT_PATTERN" in os.environ:
        kwargs.setdefault("cluster_instance_host_pattern", os.environ["AURORA_COMPAT_PATTERN"])
    return await aurora_async.connect(dsn, **kwargs)


if MODE != "raw":
    # what asyncpg._testbase calls (asyncpg.connect stays asyncpg's: the facade opens its connections with it)
    asyncpg.connection.connect = connect
