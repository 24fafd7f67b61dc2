"""Loopback addresses and ports for a simulated cluster.

Every instance and endpoint gets its own address in ``127.0.0.0/8`` (all of it is loopback on Linux);
all client-facing proxies share one port, and all servers share another, so that
``cluster_instance_host_pattern`` can be written as ``127.0.42.?:PORT``.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable

from .._errors import SimulatorError

WRITER_ENDPOINT_OCTET = 1
READER_ENDPOINT_OCTET = 2
PROXY_ENDPOINT_OCTET = 3  # the simulated RDS Proxy endpoint, with proxy=True
FIRST_INSTANCE_OCTET = 11
# a blue/green deployment's green cluster: its endpoints and its instance ids (blue's instances stay
# below, at most 32 of them; custom endpoints use 4 to 10)
GLOBAL_ENDPOINT_OCTET = 100  # a Global Database's global writer endpoint, on the primary's prefix
GREEN_WRITER_ENDPOINT_OCTET = 101
GREEN_READER_ENDPOINT_OCTET = 102
GREEN_FIRST_INSTANCE_OCTET = 111
LAST_INSTANCE_OCTET = 254


def check_prefix(prefix: str) -> str:
    """Validate an address prefix such as ``"127.0.42."`` (three octets of a loopback address)."""
    if not prefix.endswith("."):
        prefix += "."
    try:
        network = ipaddress.ip_address(prefix + "1")
    except ValueError:
        raise ValueError(f"address_prefix must be three octets like '127.0.42.', not {prefix!r}") from None
    if not network.is_loopback or network.version != 4:
        raise ValueError(f"address_prefix must be an IPv4 loopback prefix (127.x.y.), not {prefix!r}")
    return prefix


def _bindable(host: str, port: int) -> OSError | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as exc:
            return exc
    return None


def ensure_free(hosts: Iterable[str], port: int) -> None:
    """Raise :class:`SimulatorError` naming the first ``host:port`` that cannot be listened on."""
    for host in hosts:
        error = _bindable(host, port)
        if error is not None:
            if error.errno == errno.EADDRINUSE:
                raise SimulatorError(f"address {host}:{port} is already in use")
            raise SimulatorError(f"cannot listen on {host}:{port}: {error}")


def pick_port(hosts: list[str], requested: int | None, *, avoid: Iterable[int] = ()) -> int:
    """A port free on every one of ``hosts``: ``requested`` (checked) or one chosen by the kernel."""
    if requested is not None:
        if not 0 < requested < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {requested}")
        ensure_free(hosts, requested)
        return requested
    avoided = set(avoid)
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((hosts[0], 0))
            port: int = sock.getsockname()[1]
        if port in avoided:
            continue
        try:
            ensure_free(hosts, port)
        except SimulatorError:
            continue
        return port
    raise SimulatorError(f"could not find a port free on all of {', '.join(hosts)}")
