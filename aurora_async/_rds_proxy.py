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
from ._options import Options
from ._rds_hosts import RdsUrlType, classify_host
from ._single_address import single_address


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
    options = single_address(
        options,
        driver,
        why="behind an RDS Proxy, aurora_async reaches the cluster through the proxy only",
        optout="set rds_proxy=False to route to the instances directly",
        reads="connect to the proxy's read-only endpoint for reads",
    )
    return replace(options, rds_proxy=True)
