"""Connections through an RDS Proxy: the proxy is the one address the cluster is reached through.

An application puts RDS Proxy in front of Aurora for connection multiplexing, IAM enforcement or
because the instances are not reachable from where it runs. Behind it, aurora_async must not go
around it: a connection whose host is an RDS Proxy endpoint (``<name>.proxy-<id>.<region>...``, or
any host with ``rds_proxy=True``) runs in *proxy mode*: no topology is read and no topology monitor
or host probe runs (the dialect is the engine's plain one), and a failover reconnects through the
proxy itself, which RDS Proxy points at the new writer. A connection error still surfaces as
:class:`FailoverSuccessError` or :class:`TransactionResolutionUnknownError` once the new connection
is made. ``rds_proxy=False`` opts back into instance routing for a proxy whose instances are
reachable. IAM tokens are signed for the proxy's host, as RDS Proxy checks them.
"""

from __future__ import annotations

from dataclasses import replace

from ._driver import Driver
from ._exceptions import ConfigurationError
from ._options import Options
from ._plugins import Plugin
from ._rds_hosts import RdsUrlType, classify_host


def behind_proxy(options: Options, host: str) -> bool:
    """Whether connections to ``host`` go through an RDS Proxy (``rds_proxy``, else by host name)."""
    if options.rds_proxy is not None:
        return options.rds_proxy
    return classify_host(host).url_type is RdsUrlType.RDS_PROXY


def proxy_mode(options: Options, host: str, driver: Driver) -> Options:
    """``options`` as they apply to ``host``: in proxy mode, the engine's plain dialect and no host
    monitoring; a setting that would route around the proxy is a :class:`ConfigurationError`."""
    if not behind_proxy(options, host):
        return options
    plain = driver.plain_dialect.code
    why = "behind an RDS Proxy, aurora_async reaches the cluster through the proxy only"
    optout = "set rds_proxy=False to route to the instances directly"
    if options.wrapper_dialect not in (None, plain):
        raise ConfigurationError(
            f"wrapper_dialect={options.wrapper_dialect!r} reads the topology to reach the instances, "
            f"but {why}; leave it unset, or {optout}"
        )
    if options.cluster_instance_host_pattern is not None:
        raise ConfigurationError(f"cluster_instance_host_pattern leads to the instances, but {why}; {optout}")
    if options.has(Plugin.READ_WRITE_SPLITTING):
        raise ConfigurationError(
            f"read_write_splitting moves connections between instances, but {why}; connect to the "
            f"proxy's read-only endpoint for reads, or {optout}"
        )
    plugins = tuple(p for p in options.plugins if p is not Plugin.HOST_MONITORING)
    return replace(options, rds_proxy=True, wrapper_dialect=plain, plugins=plugins)
