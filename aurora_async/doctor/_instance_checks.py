"""The ``instance_pattern`` check: every instance of the topology reached at the address it is given (the
instance host pattern, or what the catalog lists), asked which instance answers, and timed; a pattern
that leads nowhere or to the wrong instance fails with the pattern that would work."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from .._config import Config
from .._dialect import Dialect, HostBuilder
from .._driver import discard
from .._topology import Instance
from ._endpoint_checks import resolve
from ._report import InstanceReport, Status
from ._state import Diagnosis
from ._text import connect_failure, pattern_text

_PATTERN_EXAMPLE = "'?.abcdefgh.us-east-1.rds.amazonaws.com' or '10.0.0.?:5432'"


async def check_instances(
    diagnosis: Diagnosis,
    config: Config,
    dialect: Dialect,
    instances: list[Instance],
    *,
    build: HostBuilder | None,
    source: str,
) -> None:
    """Reach every instance at the address the topology gives it (``build``, from ``source``) and ask
    who answers."""
    if build is None:
        diagnosis.instances = [
            InstanceReport(i.instance_id, i.role.value, i.host or "?", i.port) for i in instances
        ]
        diagnosis.add(
            "instance_pattern",
            Status.FAIL,
            f"no address for the instances: {config.host!r} is an IP address or custom domain, and "
            "the catalog names instances by id only",
            "set cluster_instance_host_pattern to the instances' address with '?' for the instance id, "
            f"e.g. {_PATTERN_EXAMPLE}",
        )
        return
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(reach(diagnosis, config, dialect, i)) for i in instances]
    diagnosis.instances = [task.result() for task in tasks]
    wrong = [i for i in diagnosis.instances if i.answered_as is not None and not i.reached]
    silent = [i for i in diagnosis.instances if i.answered_as is None]
    reached = [i for i in diagnosis.instances if i.reached]
    if wrong:
        first = wrong[0]
        diagnosis.add(
            "instance_pattern",
            Status.FAIL,
            f"{source} leads to the wrong instance: {first.endpoint}, the address of "
            f"{first.instance_id!r}, answered as {first.answered_as!r}",
            "set cluster_instance_host_pattern so that '?' becomes each instance's id in that instance's "
            "own address; failover and host monitoring dial these addresses",
            wrong=[i.instance_id for i in wrong],
        )
    elif silent and not reached:
        first = silent[0]
        diagnosis.add(
            "instance_pattern",
            Status.FAIL,
            f"{source} leads nowhere: {first.instance_id!r} at {first.endpoint}: {first.error}",
            await nowhere_fix(diagnosis, config, dialect, first),
            unreachable=[i.instance_id for i in silent],
        )
    elif silent:
        names = ", ".join(f"{i.instance_id} at {i.endpoint} ({i.error})" for i in silent)
        diagnosis.add(
            "instance_pattern",
            Status.WARN,
            f"{source}: {len(reached)} instance(s) answer as themselves, but not {names}",
            "check that the instance is available and reachable from here (security group, network ACL): "
            "a failover to it would fail",
            unreachable=[i.instance_id for i in silent],
        )
    else:
        diagnosis.add(
            "instance_pattern",
            Status.OK,
            f"{source}: every instance answers as itself",
            pattern=pattern_text(config) if config.options.cluster_instance_host_pattern else None,
        )


async def reach(diagnosis: Diagnosis, config: Config, dialect: Dialect, instance: Instance) -> InstanceReport:
    """Resolve, connect to, identify and time one instance."""
    base = InstanceReport(instance.instance_id, instance.role.value, instance.host, instance.port)
    addresses, error = await resolve(diagnosis, instance.host, instance.port)
    if error is not None:
        return _with(base, error=f"does not resolve: {error}")
    answered, rtt, error = await answers_as(diagnosis, config, dialect, instance.host, instance.port)
    return _with(base, addresses=tuple(addresses), answered_as=answered, rtt_ms=rtt, error=error)


async def answers_as(
    diagnosis: Diagnosis, config: Config, dialect: Dialect, host: str, port: int
) -> tuple[str | None, float | None, str | None]:
    """(instance id that answered at ``host:port``, best SELECT 1 in ms, error)."""
    driver = config.driver
    try:
        conn = await diagnosis.step(
            driver.open(config.identity, host, port, diagnosis.timeout, diagnosis.auth)
        )
    except diagnosis.errors(config) as exc:
        return None, None, connect_failure(config, exc, diagnosis.timeout)
    try:
        answered = await diagnosis.step(dialect.instance_id(conn, diagnosis.timeout))
        rtt = await round_trip(diagnosis, config, conn)
    except diagnosis.errors(config) as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    finally:
        discard(conn)
    return answered, rtt, None


async def nowhere_fix(
    diagnosis: Diagnosis, config: Config, dialect: Dialect, instance: InstanceReport
) -> str:
    """The fix for a pattern that reaches no instance: a better port when one works, else the rule."""
    pattern = config.options.cluster_instance_host_pattern
    if pattern is not None and pattern.port is not None and pattern.port != config.port:
        answered, _, _ = await answers_as(diagnosis, config, dialect, instance.host, config.port)
        if answered == instance.instance_id:
            return (
                f"the pattern's port {pattern.port} is wrong: set cluster_instance_host_pattern to "
                f"'{pattern.template}:{config.port}' (or leave the port out: it defaults to the "
                "endpoint's)"
            )
    return (
        "set cluster_instance_host_pattern to the address each instance answers at, with '?' for its id, "
        f"e.g. {_PATTERN_EXAMPLE} (the port defaults to the endpoint's)"
    )


async def round_trip(diagnosis: Diagnosis, config: Config, conn: Any) -> float | None:
    """The best of three ``SELECT 1`` round trips on ``conn``, in milliseconds."""
    loop = asyncio.get_running_loop()
    best: float | None = None
    for _ in range(3):
        started = loop.time()
        try:
            await diagnosis.step(_select_one(config.engine, conn, diagnosis.timeout))
        except diagnosis.errors(config):
            return best
        took = (loop.time() - started) * 1000
        best = took if best is None else min(best, took)
    return round(best, 2) if best is not None else None


async def _select_one(engine: str, conn: Any, timeout: float) -> None:
    if engine == "mysql":
        from ..mysql.dialects import fetch_rows  # noqa: PLC0415 - engine modules load with their driver

        await fetch_rows(conn, "SELECT 1", timeout)
    else:
        await conn.execute("SELECT 1", timeout=timeout)  # simple protocol: one round trip, nothing prepared


def _with(base: InstanceReport, **changes: Any) -> InstanceReport:
    return replace(base, **changes)
