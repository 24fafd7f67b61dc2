"""Connections that reach the database through one address only: an RDS Proxy endpoint, or a local
Unix socket. There is no instance to route to: the engine's plain dialect (no topology, no topology
monitor), no host monitoring, and a failover reconnects through that same address. A setting that
would route to the instances is a :class:`ConfigurationError` naming why."""

from __future__ import annotations

from dataclasses import replace

from ._driver import Driver
from ._exceptions import ConfigurationError
from ._options import Options
from ._plugins import Plugin


def single_address(options: Options, driver: Driver, *, why: str, optout: str, reads: str) -> Options:
    """``options`` for a connection through one address (``why`` says which; ``optout`` how to route
    to the instances instead, ``reads`` where read-only work goes)."""
    plain = driver.plain_dialect.code
    if options.wrapper_dialect not in (None, plain):
        raise ConfigurationError(
            f"wrapper_dialect={options.wrapper_dialect!r} reads the topology to reach the instances, "
            f"but {why}; leave it unset, or {optout}"
        )
    if options.cluster_instance_host_pattern is not None:
        raise ConfigurationError(f"cluster_instance_host_pattern leads to the instances, but {why}; {optout}")
    if options.has(Plugin.READ_WRITE_SPLITTING):
        raise ConfigurationError(
            f"read_write_splitting moves connections between instances, but {why}; {reads}, or {optout}"
        )
    plugins = tuple(p for p in options.plugins if p is not Plugin.HOST_MONITORING)
    return replace(options, wrapper_dialect=plain, plugins=plugins)
