"""The checks of the cluster behind the login connection: its dialect (detected or forced), its topology
(which instance is the writer, which are readers, and which one the endpoint reached) and whether it
carries Blue/Green deployment metadata."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .._blue_green import SOURCE, phase_of
from .._config import Config
from .._dialect import Dialect, HostBuilder, host_builder
from .._local_socket import is_local_socket
from .._rds_hosts import RdsUrlType, classify_host
from .._rds_proxy import behind_proxy
from .._topology import Instance, Role
from ._instance_checks import round_trip
from ._report import InstanceReport, Status
from ._state import Diagnosis
from ._text import pattern_text

DIALECT_NAMES = {
    "aurora-pg": "Aurora PostgreSQL",
    "multi-az-pg": "RDS Multi-AZ DB cluster, PostgreSQL",
    "rds-pg": "RDS for PostgreSQL",
    "pg": "PostgreSQL",
    "aurora-mysql": "Aurora MySQL",
    "multi-az-mysql": "RDS Multi-AZ DB cluster, MySQL",
    "rds-mysql": "RDS for MySQL",
    "mysql": "MySQL",
}


@dataclass(frozen=True)
class _Reached:
    """The instance the login connection reached through the endpoint."""

    instance_id: str
    role: Role


async def check_dialect(diagnosis: Diagnosis, config: Config, conn: Any) -> Dialect | None:
    driver, forced = config.driver, config.options.wrapper_dialect
    try:
        if forced:
            dialect = driver.dialects[forced]()
        else:
            dialect = await diagnosis.step(driver.detect_dialect(conn, diagnosis.timeout))
    except diagnosis.errors(config) as exc:
        notes = " ".join(getattr(exc, "__notes__", ()))
        diagnosis.add(
            "dialect",
            Status.FAIL,
            f"detection failed: {type(exc).__name__}: {exc} {notes}".strip(),
            "grant the user read access to the catalog the message names, or set wrapper_dialect",
        )
        return None
    name = DIALECT_NAMES.get(dialect.code, dialect.code)
    how = "wrapper_dialect" if forced else "detected"
    single = is_local_socket(config.host) or behind_proxy(config.options, config.host)
    cluster_host = classify_host(config.host).url_type.is_rds_cluster
    if cluster_host and not dialect.has_topology and not single:
        diagnosis.add(
            "dialect",
            Status.WARN,
            f"{dialect.code} ({name}, {how}) through a cluster endpoint: no topology, so failover "
            "cannot find the other instances",
            "let the user read the cluster's catalog (aurora_replica_status(), rds_tools), or set "
            "wrapper_dialect to the cluster's dialect",
            code=dialect.code,
        )
    else:
        diagnosis.add("dialect", Status.OK, f"{dialect.code} ({name}, {how})", code=dialect.code)
    return dialect


async def check_topology(
    diagnosis: Diagnosis, config: Config, conn: Any, dialect: Dialect
) -> tuple[list[Instance], HostBuilder | None, str] | None:
    """The topology check; returns the instances, how addresses were built, and what built them."""
    timeout = diagnosis.timeout
    try:
        is_reader = await diagnosis.step(dialect.is_reader(conn, timeout))
        reached = _Reached(
            await diagnosis.step(dialect.instance_id(conn, timeout)),
            Role.READER if is_reader else Role.WRITER,
        )
    except diagnosis.errors(config) as exc:
        diagnosis.add(
            "topology",
            Status.FAIL,
            f"could not ask the instance who it is: {exc}",
            "check the user's privileges",
        )
        return None
    if is_local_socket(config.host) or behind_proxy(config.options, config.host) or not dialect.has_topology:
        why = (
            "through an RDS Proxy: the proxy routes to the writer"
            if behind_proxy(config.options, config.host)
            else "a local Unix socket"
            if is_local_socket(config.host)
            else f"{dialect.code} has no topology"
        )
        rtt = await round_trip(diagnosis, config, conn)
        diagnosis.instances = [
            InstanceReport(
                reached.instance_id,
                reached.role.value,
                config.host,
                config.port,
                (),
                reached.instance_id,
                rtt,
            )
        ]
        diagnosis.add(
            "topology",
            Status.INFO,
            f"one instance, {reached.role.value} ({why})",
            reached=reached.instance_id,
        )
        diagnosis.add("instance_pattern", Status.SKIP, f"no instances to reach directly ({why})")
        return None
    pattern = config.options.cluster_instance_host_pattern
    template = pattern.template if pattern is not None else classify_host(config.host).instance_template
    build: HostBuilder | None = host_builder(pattern, config.host, config.port)
    if pattern is not None:
        source = f"cluster_instance_host_pattern {pattern_text(config)!r}"
    elif template is not None:
        source = f"the pattern {template!r} derived from the RDS host name"
    else:
        source = "the endpoint list of the catalog"
    if dialect.ids_only and template is None:
        build = None
    try:
        instances = await diagnosis.step(dialect.topology(conn, timeout, build or _listed_only(config)))
    except diagnosis.errors(config) as exc:
        diagnosis.add(
            "topology",
            Status.FAIL,
            f"could not read the topology: {exc}",
            "check the user may read the cluster's catalog",
        )
        return None
    if not instances:
        diagnosis.add(
            "topology",
            Status.FAIL,
            "the catalog names no writer: the topology is unusable",
            "retry when no failover is under way; if it persists, check the user may read the catalog",
        )
        return None
    writer = next((i.instance_id for i in instances if i.role is Role.WRITER), None)
    readers = [i.instance_id for i in instances if i.role is Role.READER]
    role_note = ""
    kind = classify_host(config.host).url_type
    if kind is RdsUrlType.RDS_WRITER_CLUSTER and reached.role is Role.READER:
        role_note = " (the writer endpoint led to a replica: stale DNS after a failover? connect() moves)"
    diagnosis.add(
        "topology",
        Status.OK,
        f"{len(instances)} instance(s): writer {writer}, readers {', '.join(readers) or 'none'}; "
        f"{config.host}:{config.port} reached {reached.instance_id} ({reached.role.value}){role_note}",
        writer=writer,
        readers=readers,
        reached=reached.instance_id,
    )
    return instances, build, source


async def check_blue_green(diagnosis: Diagnosis, config: Config, conn: Any, dialect: Dialect) -> None:
    """An Aurora cluster's blue/green deployment as its metadata gives it (what the ``bg`` plugin
    reads); elsewhere, whether the server has such metadata at all."""
    multi_az = dialect.code.startswith("multi-az")
    try:
        hosts = await diagnosis.step(dialect.blue_green(conn, diagnosis.timeout))
        found = (
            []
            if hosts is not None
            else await diagnosis.step(_blue_green_metadata(config.engine, conn, diagnosis.timeout))
        )
    except diagnosis.errors(config) as exc:
        diagnosis.add("blue_green", Status.INFO, f"could not tell: {type(exc).__name__}: {exc}")
        return
    if hosts:
        phase = phase_of(hosts)
        sides = Counter("source" if h.role == SOURCE else "target" for h in hosts)
        diagnosis.add(
            "blue_green",
            Status.INFO,
            f"Blue/Green deployment ({phase.value}): {sides['source']} source and {sides['target']} "
            "target hosts; connections with the bg plugin (plugins=...,bg) ride through its switchover",
            present=True,
            phase=phase.value,
        )
        return
    if not found:
        diagnosis.add("blue_green", Status.INFO, "no Blue/Green deployment", present=False)
        return
    note = " (also the Multi-AZ cluster's own topology catalog)" if multi_az else ""
    diagnosis.add(
        "blue_green",
        Status.INFO,
        f"Blue/Green metadata present: {', '.join(found)}{note}; the bg plugin follows deployments of "
        "Aurora clusters only, so here a switchover looks like a failover",
        present=True,
        sources=found,
    )


async def _blue_green_metadata(engine: str, conn: Any, timeout: float) -> list[str]:
    """Which Blue/Green metadata the server has (the AWS wrapper's existence checks)."""
    if engine == "mysql":
        from ..mysql.dialects import fetch_rows  # noqa: PLC0415

        rows = await fetch_rows(
            conn,
            "SELECT 1 AS tmp FROM information_schema.tables WHERE table_schema = 'mysql' AND "
            "table_name = 'rds_topology'",
            timeout,
        )
        return ["mysql.rds_topology"] if rows else []
    import asyncpg  # noqa: PLC0415

    found = []
    for name in ("pg_catalog.get_blue_green_fast_switchover_metadata", "rds_tools.show_topology"):
        try:
            await conn.fetchval(f"SELECT '{name}'::regproc", timeout=timeout)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == "42725":  # "more than one function named": it exists (overloaded)
                found.append(name)
            elif exc.sqlstate not in ("42883", "3F000", "42704"):
                raise
        else:
            found.append(name)
    return found


def _listed_only(config: Config) -> HostBuilder:
    """Addresses for a topology read without any pattern: what the catalog lists, else nothing."""

    def build(
        instance_id: str, endpoint: str | None, row_port: int | None, region: str | None = None
    ) -> tuple[str, int]:
        return endpoint or "", row_port or config.port

    return build
