"""What one simulator run starts and must stop: its temporary directory, the fault proxy process and
the database servers, and the order in which they are brought up."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from .._catalog import EndpointStyle, TopologyMode
from .._cluster_protocol import DatabaseCluster
from .._errors import SimulatorError
from .._process import OsUser
from ..mysql._cluster import MariaDbCluster
from ..mysql._server import MariaDbBinaries
from ..postgresql._cluster import PostgresCluster
from ..postgresql._server import PgBinaries
from ..proxy._client import ProxyProcess
from ._blue_green import GREEN_ENDPOINT_LISTENERS
from ._control_plane import ControlPlane
from ._failover import FailoverDelays
from ._global_database import GLOBAL_ENDPOINT_LISTENER, SECONDARY_ENDPOINT_LISTENERS
from ._instances import Instance
from ._network import (
    FIRST_INSTANCE_OCTET,
    GLOBAL_ENDPOINT_OCTET,
    GREEN_FIRST_INSTANCE_OCTET,
    GREEN_READER_ENDPOINT_OCTET,
    GREEN_WRITER_ENDPOINT_OCTET,
    LAST_INSTANCE_OCTET,
    PROXY_ENDPOINT_OCTET,
    READER_ENDPOINT_OCTET,
    WRITER_ENDPOINT_OCTET,
    ensure_free,
    pick_port,
)
from ._tempdirs import make_root, sweep_stale_dirs
from ._timeline import Timeline

RDS_PROXY_REATTACH_TIMEOUT = 30.0  # how long the RDS Proxy endpoint waits for a writer for a client


def _address(prefix: str, octet: int) -> str:
    return f"{prefix}{octet}"


class Deployment:
    """The temporary directory, fault proxy and database servers of one simulator run. :meth:`start`
    brings them up and returns the control plane over them; :meth:`close` stops and deletes whatever
    was started, also after a start that failed half-way."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.proxy: ProxyProcess | None = None
        self.cluster: DatabaseCluster | None = None
        self.green: DatabaseCluster | None = None  # a blue/green deployment's second cluster
        self._options: dict[str, Any] = {}  # how the cluster was made: a green one is made alike
        self._binaries: MariaDbBinaries | PgBinaries | None = None

    async def start(
        self,
        *,
        engine: str,
        size: int,
        topology: TopologyMode,
        catalog_endpoints: EndpointStyle,
        dns_delay: float,
        delays: FailoverDelays,
        prefix: str,
        requested_port: int | None,
        user: str,
        password: str | None,
        database: str,
        max_connections: int,
        tls: bool,
        pg_bin_dir: str | os.PathLike[str] | None,
        server_user_name: str | None,
        base_dir: Path,
        timeline: Timeline,
        rds_proxy: bool = False,
        region: str = "us-east-1",
    ) -> ControlPlane:
        started = time.monotonic()
        server_user = OsUser.for_servers(
            server_user_name, default="mysql" if engine == "mysql" else "postgres"
        )
        binaries = MariaDbBinaries.find() if engine == "mysql" else PgBinaries.find(pg_bin_dir)
        sweep_stale_dirs(base_dir)
        self.root = root = make_root(base_dir, server_user)

        ids = [str(FIRST_INSTANCE_OCTET + k) for k in range(size)]
        instances = {
            instance_id: Instance(instance_id, prefix + instance_id, "writer" if k == 0 else "reader")
            for k, instance_id in enumerate(ids)
        }
        instance_hosts = [i.address for i in instances.values()]
        endpoint_hosts = [_address(prefix, WRITER_ENDPOINT_OCTET), _address(prefix, READER_ENDPOINT_OCTET)]
        if rds_proxy:
            endpoint_hosts.append(_address(prefix, PROXY_ENDPOINT_OCTET))
        port = pick_port(endpoint_hosts + instance_hosts, requested_port)
        backend_port = pick_port(instance_hosts, None, avoid={port})

        self.proxy = proxy = ProxyProcess(root / "proxy.log")
        options: dict[str, Any] = {
            "root": root,
            "user": server_user,
            "topology": topology,
            "cluster_tag": uuid.uuid4().hex[:8],
            "backend_port": backend_port,
            "max_connections": max_connections,
            "database": database,
            "db_user": user,
            "password": password,
            "region": region,
        }
        tls_addresses = [
            _address(prefix, octet)
            for octet in (
                WRITER_ENDPOINT_OCTET,
                READER_ENDPOINT_OCTET,
                *range(FIRST_INSTANCE_OCTET, LAST_INSTANCE_OCTET + 1),  # green's addresses too
            )
        ]
        options |= {"tls": tls, "tls_addresses": tls_addresses}
        self._options, self._binaries = options, binaries
        cluster = self._make_cluster(options)
        self.cluster = cluster
        control = ControlPlane(
            cluster=cluster,
            proxy=proxy,
            timeline=timeline,
            instances=instances,
            prefix=prefix,
            port=port,
            tag=cluster.cluster_tag,
            dns_delay=dns_delay,
            delays=delays,
            endpoints=catalog_endpoints,
            rds_proxy=rds_proxy,
            region=region,
        )
        writer = (ids[0], instances[ids[0]].address)
        replicas = [(i, instances[i].address) for i in ids[1:]]
        await asyncio.gather(proxy.start(), cluster.create(writer, replicas, control.rows()))
        for inst in instances.values():
            await control.register(inst)
        await proxy.call("listen", name="cluster", host=endpoint_hosts[0], port=port, targets=ids[:1])
        await proxy.call(
            "listen", name="reader", host=endpoint_hosts[1], port=port, targets=ids[1:] or ids[:1]
        )
        if rds_proxy:
            await proxy.call(
                "rds_proxy",
                name="proxy",
                host=endpoint_hosts[2],
                port=port,
                protocol=engine,
                reattach_timeout=RDS_PROXY_REATTACH_TIMEOUT,
            )
            await control.route_rds_proxy()
            if password is not None:
                await proxy.call("rds_proxy_secret", name="proxy", user=user, password=password)
        timeline.record(
            "cluster started",
            f"{size} instance(s), writer {ids[0]}, in {time.monotonic() - started:.2f} s",
        )
        return control

    def _make_cluster(self, options: dict[str, Any]) -> DatabaseCluster:
        if isinstance(self._binaries, MariaDbBinaries):
            return MariaDbCluster(binaries=self._binaries, **options)
        assert self._binaries is not None
        return PostgresCluster(binaries=self._binaries, **options)

    def _second_cluster(
        self,
        first: ControlPlane,
        *,
        name: str,
        prefix: str,
        size: int,
        endpoints: tuple[str, str],
        listeners: tuple[str, str],
        region: str | None,
        extra: dict[str, Any],
    ) -> ControlPlane:
        """A second cluster beside ``first`` (on its proxy, client port and timeline): ``size``
        instances with ids from ``GREEN_FIRST_INSTANCE_OCTET`` on ``prefix``, a directory ``name`` of
        its own (templates, bootstrap files, instance directories; ``first``'s certificate shared),
        cluster endpoints at ``endpoints`` named ``listeners``. Its servers are not made yet."""
        if self.green is not None:
            raise SimulatorError("this simulator has a second cluster already (blue/green or global)")
        ids = [str(GREEN_FIRST_INSTANCE_OCTET + k) for k in range(size)]
        instances = {
            instance_id: Instance(instance_id, prefix + instance_id, "writer" if k == 0 else "reader")
            for k, instance_id in enumerate(ids)
        }
        hosts = [i.address for i in instances.values()]
        ensure_free([*endpoints, *hosts], first.port)
        assert self.root is not None
        server_user: OsUser = self._options["user"]
        root = self.root / name
        root.mkdir(mode=0o755)
        server_user.chown(root)
        if self._options["tls"]:  # the certificate covers the second cluster's addresses: share it
            shutil.copytree(self.root / "tls", root / "tls")
            for path in (root / "tls", *(root / "tls").iterdir()):
                server_user.chown(path)
        options = self._options | {
            "root": root,
            "cluster_tag": uuid.uuid4().hex[:8],
            "backend_port": pick_port(hosts, None, avoid={first.port}),
            "region": region,
            **extra,
        }
        self.green = cluster = self._make_cluster(options)
        second = ControlPlane(
            cluster=cluster,
            proxy=first.proxy,
            timeline=first.timeline,
            instances=instances,
            prefix=prefix,
            port=first.port,
            tag=cluster.cluster_tag,
            dns_delay=first.dns_delay,
            delays=first.delays,
            endpoints=first.endpoints,
            region=region,
        )
        second.endpoint_listeners = listeners
        return second

    async def _listen(self, second: ControlPlane, endpoints: tuple[str, str]) -> None:
        """The second cluster's instance endpoints and cluster endpoints on the proxy."""
        ids = second.instance_ids
        for inst in second.instances.values():
            await second.register(inst)
        for name, host, targets in zip(
            second.endpoint_listeners, endpoints, (ids[:1], ids[1:] or ids[:1]), strict=True
        ):
            await second.proxy.call("listen", name=name, host=host, port=second.port, targets=targets)

    async def start_green(self, blue: ControlPlane, size: int) -> tuple[ControlPlane, tuple[str, str]]:
        """The green cluster of a blue/green deployment: ``size`` instances beside ``blue``'s, on the
        same address prefix, with cluster endpoints of their own (returned: its writer and reader
        endpoint addresses)."""
        prefix = blue.prefix
        endpoints = (
            _address(prefix, GREEN_WRITER_ENDPOINT_OCTET),
            _address(prefix, GREEN_READER_ENDPOINT_OCTET),
        )
        extra: dict[str, Any] = {}
        if isinstance(self._binaries, MariaDbBinaries):
            extra["gtid_domain"] = 1  # green's own transactions, apart from blue's it replicates
        green = self._second_cluster(
            blue,
            name="green",
            prefix=prefix,
            size=size,
            endpoints=endpoints,
            listeners=GREEN_ENDPOINT_LISTENERS,
            region=blue.region,
            extra=extra,
        )
        ids = green.instance_ids
        writer = (ids[0], green.instances[ids[0]].address)
        await green.cluster.create(writer, [(i, green.instances[i].address) for i in ids[1:]], green.rows())
        await self._listen(green, endpoints)
        return green, endpoints

    async def start_global_secondary(
        self, primary: ControlPlane, size: int, region: str, prefix: str
    ) -> tuple[ControlPlane, tuple[str, str], str]:
        """The secondary region's cluster of a Global Database (its servers are made by the engine's
        replication, from the primary's writer): ``size`` instances on ``prefix`` (its own "domain"),
        its cluster endpoints there, and the global writer endpoint on the primary's prefix. Returns
        its control plane, its writer and reader endpoint addresses and the global endpoint's."""
        if self._options["tls"]:
            raise SimulatorError("Global Databases are not simulated with tls=True yet")
        endpoints = (_address(prefix, WRITER_ENDPOINT_OCTET), _address(prefix, READER_ENDPOINT_OCTET))
        global_host = _address(primary.prefix, GLOBAL_ENDPOINT_OCTET)
        ensure_free([global_host], primary.port)
        secondary = self._second_cluster(
            primary,
            name="secondary",
            prefix=prefix,
            size=size,
            endpoints=endpoints,
            listeners=SECONDARY_ENDPOINT_LISTENERS,
            region=region,
            extra={},
        )
        await self._listen(secondary, endpoints)
        await primary.proxy.call(
            "listen",
            name=GLOBAL_ENDPOINT_LISTENER,
            host=global_host,
            port=primary.port,
            targets=[primary.writer_id],
        )
        return secondary, endpoints, global_host

    async def close(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()
        if self.green is not None:
            await self.green.close()
        if self.cluster is not None:
            await self.cluster.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def pids(self) -> list[int]:
        """PIDs of the running database servers and of the fault proxy process."""
        pids = self.cluster.pids() if self.cluster is not None else []
        if self.green is not None:
            pids += self.green.pids()
        if self.proxy is not None and self.proxy.pid is not None:
            pids.append(self.proxy.pid)
        return pids
