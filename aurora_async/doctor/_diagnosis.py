"""``diagnose()``: the doctor's checks, run in order against a real cluster with the library's own parts
(its configuration parser, host classification, credentials code, driver records and dialects); a check
that needs what an earlier one could not give is skipped.

Each network step has its own deadline (``timeout``). Secrets (the DSN's password, IAM tokens, a
secret's password) are collected as they appear and masked in the finished report.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._access_checks import check_credentials, check_login, check_tls
from ._cluster_checks import check_blue_green, check_dialect, check_topology
from ._endpoint_checks import check_config, check_dns, check_host
from ._global_checks import check_global_database
from ._instance_checks import check_instances
from ._report import Report, Status
from ._state import Diagnosis


async def diagnose(dsn: str | None = None, *, timeout: float = 5.0, **options: Any) -> Report:
    """Check what ``aurora_async.connect(dsn, **options)`` would meet on a real cluster: the options,
    the endpoint, DNS, credentials, login, TLS, the dialect, the topology and every instance's address.

    :param timeout: the deadline of each network step, in seconds.
    :returns: the :class:`Report` (secrets masked); it never raises for what it finds.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    diagnosis = Diagnosis(dsn, options, float(timeout))
    try:
        await _run(diagnosis)
    finally:
        await diagnosis.close()
    report = Report(
        target=_masked_dsn(dsn, options),
        engine=diagnosis.config.engine if diagnosis.config is not None else None,
        checks=tuple(diagnosis.checks),
        dialect=diagnosis.dialect.code if diagnosis.dialect is not None else None,
        instances=tuple(diagnosis.instances),
        elapsed=loop.time() - started,
    )
    return report.redacted(diagnosis.secrets)


async def _run(diagnosis: Diagnosis) -> None:
    config = check_config(diagnosis)
    if config is None:
        return
    diagnosis.config = config
    check_host(diagnosis, config)
    resolves = await check_dns(diagnosis, config)
    credentials_ok = await check_credentials(diagnosis, config)
    if not resolves:
        diagnosis.add("login", Status.SKIP, "not tried: the host does not resolve")
        diagnosis.add("tls", Status.SKIP, "not checked: the host does not resolve")
    else:
        if credentials_ok:
            diagnosis.conn = await check_login(diagnosis, config)
        else:
            diagnosis.add("login", Status.SKIP, "not tried: no credentials")
        await check_tls(diagnosis, config, diagnosis.conn)
    if diagnosis.conn is None:
        for name in ("dialect", "topology", "instance_pattern", "global_database", "blue_green"):
            diagnosis.add(name, Status.SKIP, "not checked: no connection")
        return
    dialect = await check_dialect(diagnosis, config, diagnosis.conn)
    if dialect is None:
        for name in ("topology", "instance_pattern", "global_database", "blue_green"):
            diagnosis.add(name, Status.SKIP, "not checked: no dialect")
        return
    diagnosis.dialect = dialect
    topology = await check_topology(diagnosis, config, diagnosis.conn, dialect)
    if topology is not None:
        instances, build, source = topology
        await check_instances(diagnosis, config, dialect, instances, build=build, source=source)
        check_global_database(diagnosis, config, instances)
    else:
        diagnosis.add("global_database", Status.SKIP, "not checked: no topology")
    await check_blue_green(diagnosis, config, diagnosis.conn, dialect)


def _masked_dsn(dsn: str | None, options: dict[str, Any]) -> str:
    """The DSN with its password as ``***`` (or the host and port options when there is no DSN)."""
    if not isinstance(dsn, str):
        host, port = options.get("host", "?"), options.get("port")
        return f"{host}:{port}" if port else str(host)
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<a DSN that is not a valid URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))
