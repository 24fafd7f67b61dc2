"""The checks of what ``connect()`` is given and where it leads before any login: the options as the
library parses them (``config``), what kind of endpoint the host is (``host``) and whether it resolves
(``dns``); also :func:`resolve`, the name lookup with a step's deadline that reaching instances uses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from .._config import Config, parse
from .._exceptions import ConfigurationError
from .._local_socket import is_local_socket
from .._rds_hosts import RdsUrlType, classify_host
from .._rds_proxy import behind_proxy
from ._report import Status
from ._state import Diagnosis
from ._text import pattern_text


def check_config(diagnosis: Diagnosis) -> Config | None:
    try:
        config = parse(diagnosis.dsn, **diagnosis.options)
    except ConfigurationError as exc:
        diagnosis.add(
            "config",
            Status.FAIL,
            str(exc),
            "change the DSN or option the message names to an accepted value",
        )
        return None
    options = config.options
    plugins = ",".join(options.plugins) or "none"
    via = f" via {config.identity.credentials.kind}" if config.identity.credentials else ""
    diagnosis.add(
        "config",
        Status.OK,
        f"{config.engine} {config.user or '?'}{via}@{config.host}:{config.port}/{config.database or ''}; "
        f"plugins {plugins}; failover_mode {options.failover_mode}",
        engine=config.engine,
        host=config.host,
        port=config.port,
        user=config.user,
        database=config.database,
        plugins=list(options.plugins),
        failover_mode=options.failover_mode,
        tls_settings=config.identity.tls.label,
    )
    return config


def check_host(diagnosis: Diagnosis, config: Config) -> None:
    host, options = config.host, config.options
    rds = classify_host(host)
    kind = rds.url_type
    pattern = options.cluster_instance_host_pattern
    details: dict[str, Any] = {"kind": kind.name.lower(), "endpoint_name": rds.name, "region": rds.region}
    if is_local_socket(host):
        diagnosis.add("host", Status.OK, "a local Unix socket: one server, no topology", kind="unix_socket")
        return
    if kind is RdsUrlType.RDS_PROXY or behind_proxy(options, host):
        if behind_proxy(options, host):
            diagnosis.add(
                "host",
                Status.INFO,
                "an RDS Proxy endpoint: failover is the proxy's job (aurora_async reconnects through "
                "the proxy only: no topology, no host monitoring)",
                details=details,
            )
        else:
            diagnosis.add(
                "host",
                Status.INFO,
                "an RDS Proxy endpoint, with rds_proxy=False: the instances are reached directly",
                details=details,
            )
        return
    if kind is RdsUrlType.RDS_GLOBAL_WRITER_CLUSTER:
        regional = options.global_cluster_instance_host_patterns
        if regional:
            diagnosis.add(
                "host",
                Status.OK,
                f"the global database writer endpoint of {rds.name!r}: failover follows the global "
                f"writer across regions ({', '.join(region for region, _ in regional)})",
                details=details,
            )
        else:
            diagnosis.add(
                "host",
                Status.WARN,
                f"the global database writer endpoint of {rds.name!r}: failover cannot reach the "
                "instances, which live in each region's own domain",
                "set global_cluster_instance_host_patterns='<region>:?.<id>.<region>.rds.amazonaws.com,...' "
                "for every region of the Global Database",
                details=details,
            )
        return
    if kind is RdsUrlType.RDS_AURORA_LIMITLESS_DB_SHARD_GROUP:
        diagnosis.add(
            "host",
            Status.WARN,
            f"an Aurora Limitless shard group endpoint ({rds.name!r}): aurora_async's topology and "
            "failover do not cover Limitless routers",
            "connect with plugins='' (a plain connection) to a shard group endpoint",
            details=details,
        )
        return
    where = f" in {rds.region}" if rds.region else ""
    found = {
        RdsUrlType.RDS_WRITER_CLUSTER: f"the cluster writer endpoint of {rds.name!r}{where}",
        RdsUrlType.RDS_READER_CLUSTER: f"the cluster reader endpoint of {rds.name!r}{where} "
        "(failover_mode defaults to reader_or_writer)",
        RdsUrlType.RDS_CUSTOM_CLUSTER: f"the custom endpoint {rds.name!r}{where}: connections stay on "
        "its members (custom_endpoint_members, else the RDS API)",
        RdsUrlType.RDS_INSTANCE: f"the endpoint of instance {rds.name!r}{where}: it always leads to that "
        "instance (new connections after a failover do not follow the writer unless moved)",
    }.get(kind)
    if found is not None:
        source = f"cluster_instance_host_pattern {pattern_text(config)!r}" if pattern else None
        instances = source or (f"instances at {rds.instance_template!r}" if rds.instance_template else "")
        status = Status.INFO if kind is RdsUrlType.RDS_INSTANCE else Status.OK
        diagnosis.add("host", status, f"{found}; {instances}".rstrip("; "), details=details)
        return
    what = "an IP address" if kind is RdsUrlType.IP_ADDRESS else "not an RDS host name"
    if pattern is not None:
        summary = f"{what}: instances through cluster_instance_host_pattern {pattern_text(config)!r}"
    else:
        summary = f"{what}: an Aurora cluster's instances need cluster_instance_host_pattern to be reached"
    diagnosis.add("host", Status.OK, summary, details=details)


async def check_dns(diagnosis: Diagnosis, config: Config) -> bool:
    """The given host's addresses; False when it does not resolve."""
    host = config.host
    if is_local_socket(host):
        diagnosis.add("dns", Status.SKIP, "a local Unix socket: no DNS")
        return True
    if classify_host(host).url_type is RdsUrlType.IP_ADDRESS:
        diagnosis.add("dns", Status.OK, f"{host} is an IP address: no DNS", addresses=[host])
        return True
    addresses, error = await resolve(diagnosis, host, config.port)
    if error is not None:
        diagnosis.add(
            "dns",
            Status.FAIL,
            f"{host} does not resolve: {error}",
            "check the host name; RDS endpoints of a private cluster resolve only inside its VPC "
            "(or through its DNS resolver)",
        )
        return False
    private = [a for a in addresses if _is_private(a)]
    note = (
        " (private: reachable from inside the VPC only)" if private and len(private) == len(addresses) else ""
    )
    diagnosis.add("dns", Status.OK, f"{host} resolves to {', '.join(addresses)}{note}", addresses=addresses)
    return True


async def resolve(diagnosis: Diagnosis, host: str, port: int) -> tuple[list[str], str | None]:
    """The addresses of ``host`` (asyncio's getaddrinfo, within the step's deadline), or the error."""
    if classify_host(host).url_type is RdsUrlType.IP_ADDRESS:
        return [host], None
    loop = asyncio.get_running_loop()
    try:
        infos = await diagnosis.step(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except TimeoutError:
        return [], f"no answer within {diagnosis.timeout:g} s"
    except OSError as exc:
        return [], str(exc.strerror or exc)
    return list(dict.fromkeys(str(info[4][0]) for info in infos)), None


def _is_private(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_private
    except ValueError:
        return False
