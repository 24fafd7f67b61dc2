"""``connect()``: check the arguments, then build a :class:`DataApiConnection` on an aiobotocore
``rds-data`` client (no request is sent until the first statement)."""

from __future__ import annotations

import math
import random
import re
from contextlib import AsyncExitStack
from typing import Any

from .._concurrency import AwaitableContext, Backoff
from .._exceptions import ConfigurationError
from ._connection import DataApiConnection, Engine
from ._requests import Requester
from ._values import take_records

_ARN = re.compile(r"arn:aws[a-z-]*:(?P<service>[a-z-]+):(?P<region>[a-z0-9-]*):\d{12}:(?P<rest>.+)")


async def _close(conn: DataApiConnection, exc: BaseException | None) -> None:
    await conn.close()


def connect(
    *,
    resource_arn: str,
    secret_arn: str,
    database: str | None = None,
    region: str | None = None,
    engine: Engine | None = None,
    endpoint_url: str | None = None,
    aws_session: Any = None,
    retry_timeout: float = 60.0,
    request_timeout: float = 70.0,
    connect_timeout: float = 10.0,
    max_concurrency: int = 10,
    resend_reads: bool = False,
) -> AwaitableContext[DataApiConnection]:
    """A :class:`DataApiConnection` to an Aurora cluster's Data API: ``await connect(...)`` or
    ``async with connect(...) as conn``. No request is sent until the first statement.

    :param resource_arn: the cluster's ARN (``arn:aws:rds:<region>:<account>:cluster:<name>``).
    :param secret_arn: a Secrets Manager secret with the database ``username`` and ``password``.
    :param database: the database to run statements in (default: the secret's / cluster's default).
    :param region: default: the region in ``resource_arn``.
    :param engine: ``"postgresql"`` or ``"mysql"``; when known, parameter names are checked with that
        engine's lexical rules, and large PostgreSQL results are paged.
    :param endpoint_url: another Data API endpoint (``aurora_async.testing.DataApiEmulator``).
    :param aws_session: an ``aioboto3.Session`` (default: a new one: the usual AWS credential chain).
    :param retry_timeout: seconds to keep sending again, with backoff and jitter, a request that did not
        run: one that never left the client (connection refused, no such host, connect timeout) or that
        the Data API did not run (a cluster resuming from auto-pause, "Communications link failure");
        and one the caller allows to repeat (``idempotent=True``, ``resend_reads``) after a lost answer.
        Nothing else is sent again: once a request may have reached the server (a reset or a timeout
        after sending, a 5xx), it is :class:`RequestOutcomeUnknownError` (botocore's own retries are
        off). Finite, >= 0; 0 sends each request once.
    :param request_timeout: seconds to wait for an answer (finite, > 0); keep it above the Data API's
        45 s statement limit so a long statement ends with its own error.
    :param connect_timeout: seconds to open the HTTPS connection (finite, > 0).
    :param max_concurrency: HTTP connections to the endpoint (concurrent requests), an int >= 1.
    :param resend_reads: also send again, after a lost answer, statements that only read by their words
        (SELECT, SHOW, VALUES, TABLE, DESCRIBE, EXPLAIN without ANALYZE, one statement, no INTO) outside
        a transaction. Only if your SELECTs call no function that writes (``nextval()`` included): such
        a SELECT would run twice. Default: not sent again (``idempotent=True`` per call instead).
    :raises ConfigurationError: a bad argument (before any request).
    """
    resource = _arn("resource_arn", resource_arn, "rds")
    _arn("secret_arn", secret_arn, "secretsmanager")
    if not resource.group("rest").startswith(("cluster:", "db:")):
        raise ConfigurationError(
            f"resource_arn must name a DB cluster (arn:aws:rds:<region>:<account>:cluster:<id>), "
            f"not {resource_arn!r}"
        )
    region = region or resource.group("region")
    if not region:
        raise ConfigurationError("region is missing: pass region= or use a resource_arn that has one")
    if engine not in (None, "postgresql", "mysql"):
        raise ConfigurationError(f"engine must be 'postgresql' or 'mysql', not {engine!r}")
    if database is not None and (not isinstance(database, str) or not database):
        raise ConfigurationError(f"database must be a non-empty str, not {database!r}")
    _check_seconds("retry_timeout", retry_timeout, zero="0: send each request once")
    _check_seconds("request_timeout", request_timeout)
    _check_seconds("connect_timeout", connect_timeout)
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency must be an int >= 1, not {max_concurrency!r}")
    if not isinstance(resend_reads, bool):
        raise ConfigurationError(f"resend_reads must be True or False, not {resend_reads!r}")

    async def make() -> DataApiConnection:
        try:
            import aioboto3  # noqa: PLC0415 - the optional 'aws' extra
            from aiobotocore.config import AioConfig  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigurationError(
                "the Data API client needs aioboto3: pip install 'aurora_async[aws]'"
            ) from exc
        session = aws_session if aws_session is not None else aioboto3.Session()
        config = AioConfig(
            retries={"total_max_attempts": 1},
            read_timeout=request_timeout,
            connect_timeout=connect_timeout,
            max_pool_connections=max_concurrency,
        )
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            session.client("rds-data", region_name=region, endpoint_url=endpoint_url, config=config)
        )
        client.meta.events.register("before-parse.rds-data.ExecuteStatement", take_records)
        backoff = Backoff(0.25, 8.0, rng=random.Random())
        requester = Requester(client, retry_timeout=retry_timeout, backoff=backoff)
        return DataApiConnection(
            requester,
            resource_arn=resource_arn,
            secret_arn=secret_arn,
            database=database,
            engine=engine,
            exit_stack=stack,
            resend_reads=resend_reads,
        )

    return AwaitableContext(make, _close)


def _check_seconds(name: str, value: Any, *, zero: str | None = None) -> None:
    """A finite number of seconds, > 0 (>= 0 when ``zero`` says what 0 means)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and zero is None)
    ):
        accepted = f">= 0 ({zero})" if zero is not None else "> 0"
        raise ConfigurationError(f"{name} must be a finite number of seconds {accepted}, not {value!r}")


def _arn(name: str, value: Any, service: str) -> re.Match[str]:
    match = _ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None or match.group("service") != service:
        raise ConfigurationError(
            f"{name} must be an ARN of the {service} service (arn:aws:{service}:...), not {value!r}"
        )
    return match
