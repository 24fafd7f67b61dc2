"""Connections through a local Unix socket: asyncpg's ``host='/var/run/postgresql'`` (a directory: the
socket is ``<dir>/.s.PGSQL.<port>``) and aiomysql's ``unix_socket='/run/mysqld/mysqld.sock'``.

That is how many applications reach a local server or a sidecar. The cluster logic does not apply: the
socket is the one address (see ``_single_address``): no topology, no host monitoring, and a failover
(the server restarted) reconnects through the same socket.
"""

from __future__ import annotations

from ._driver import Driver
from ._options import Options
from ._single_address import single_address


def is_local_socket(host: str) -> bool:
    """Whether ``host`` is a Unix socket path (asyncpg's rule: a host that starts with ``/``)."""
    return host.startswith("/")


def local_socket_mode(options: Options, host: str, driver: Driver) -> Options:
    """``options`` as they apply to ``host``: through a Unix socket, the single-address rules."""
    if not is_local_socket(host):
        return options
    return single_address(
        options,
        driver,
        why=f"{host} is a local Unix socket, the one way to this server",
        optout="connect through the cluster's TCP endpoint to use the cluster's instances",
        reads="open a second connection for reads",
    )
