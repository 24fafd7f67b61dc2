"""``DataApiEmulator``: the RDS Data API (``rds-data``, rest-json) on loopback, over a running simulator.

Each request is validated as the service does, then run on a real connection to the simulator's writer
(PostgreSQL through asyncpg, MariaDB through aiomysql): a pool of at most ``max_connections`` sessions
per database, a session held by each open transaction. Statement timeouts, idle and maximum transaction
lifetimes, the response and row size limits and an auto-paused cluster (:meth:`DataApiEmulator.pause`)
behave as documented for Aurora Serverless v2 and provisioned clusters.

The HTTP server is aiohttp's, imported when the emulator starts (aiohttp comes with aiobotocore). This
module holds the emulator's lifecycle and HTTP handling; the operations themselves are in ``_operations``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import time
import uuid
from collections import Counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from .._http import serve_on_loopback
from .._process import run_to_completion
from ._backend import CLOSE_TIMEOUT
from ._factory import make_backend
from ._operations import Operations, Pause, PauseError
from ._protocol import (
    REQUEST_LIMIT,
    ApiError,
    bad_request,
    parse_body,
    unavailable,
)
from ._runner import StatementRunner, cancel_all

if TYPE_CHECKING:
    from aiohttp import web

    from ..simulator._simulator import AuroraSimulator

log = logging.getLogger("aurora_async.testing.data_api")

ACCOUNT = "123456789012"
SHUTDOWN_GRACE = 0.5  # seconds a request in flight at exit may take before it is cancelled
_OPERATIONS = {
    "/Execute": "ExecuteStatement",
    "/BatchExecute": "BatchExecuteStatement",
    "/BeginTransaction": "BeginTransaction",
    "/CommitTransaction": "CommitTransaction",
    "/RollbackTransaction": "RollbackTransaction",
    "/ExecuteSql": "ExecuteSql",
}
_EXECUTE_SQL = "ExecuteSql is deprecated and not supported on provisioned clusters, use ExecuteStatement"


class DataApiEmulator:
    """The RDS Data API for a running :class:`AuroraSimulator`, over HTTP on 127.0.0.1: point
    ``aioboto3``'s ``rds-data`` client at :attr:`endpoint_url` (any credentials, e.g.
    ``DUMMY_AWS_ENV``) and use :attr:`resource_arn` and :attr:`secret_arn`::

        async with AuroraSimulator("postgresql", 1) as sim, DataApiEmulator(sim) as emu:
            async with aioboto3.Session().client(
                "rds-data", endpoint_url=emu.endpoint_url, region_name="us-east-1"
            ) as client:
                await client.execute_statement(
                    resourceArn=emu.resource_arn, secretArn=emu.secret_arn, sql="SELECT 1"
                )

    Where Serverless v2 and provisioned clusters answer differently from Serverless v1, it answers as they
    do: SQL errors carry their SQLState (MySQL ``<message>; Error code: <n>; SQLState: <state>``,
    PostgreSQL ``ERROR: <message>[; Hint: ...][; Position: <n>]; SQLState: <state>``), PostgreSQL JSON
    comes back compact, a commit after a failed statement answers "Transaction Committed", and a
    ``resourceArn`` it does not serve is ``HttpEndpointNotEnabledException``.

    Everything it started (server, connections, background work) is stopped on exit, also on errors and
    cancellation.

    :param sim: the simulator; statements run on its writer (``sim.dsn("cluster")``), as its user.
    :param database: the database when a request names none (default: the simulator's own). A request's
        ``database`` selects another one (a pool per database).
    :param region: the region in the ARNs.
    :param response_limit: bytes of a response's JSON before ``DatabaseErrorException`` "Database returned
        more than the allowed response size limit" (1 MiB).
    :param row_limit: bytes of one record's JSON before "Packet for query is too large" (64 KB).
    :param statement_timeout: seconds before ``StatementTimeoutException`` (45 s).
    :param transaction_timeout: seconds without a call before a transaction is rolled back (3 min).
    :param max_transaction_age: seconds before any transaction is rolled back (24 h).
    :param max_connections: database sessions per database, transactions included.
    """

    def __init__(
        self,
        sim: AuroraSimulator,
        *,
        database: str | None = None,
        region: str = "us-east-1",
        response_limit: int = 1_048_576,
        row_limit: int = 65_536,
        statement_timeout: float = 45.0,
        transaction_timeout: float = 180.0,
        max_transaction_age: float = 86_400.0,
        max_connections: int = 20,
    ) -> None:
        for name, value in (
            ("response_limit", response_limit),
            ("row_limit", row_limit),
            ("statement_timeout", statement_timeout),
            ("transaction_timeout", transaction_timeout),
            ("max_transaction_age", max_transaction_age),
            ("max_connections", max_connections),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        self._sim = sim
        self._default_database = database
        self.region = region
        """The region in the ARNs."""
        self._response_limit = int(response_limit)
        self._row_limit = int(row_limit)
        self._statement_timeout = float(statement_timeout)
        self._transaction_timeout = float(transaction_timeout)
        self._max_transaction_age = float(max_transaction_age)
        self._max_connections = int(max_connections)
        self._tag = secrets.token_hex(4)
        self.cluster_id = f"aurora-sim-{self._tag}"
        """The cluster identifier in :attr:`resource_arn` (and in the resuming message)."""
        suffix = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(6))
        self.resource_arn = f"arn:aws:rds:{region}:{ACCOUNT}:cluster:{self.cluster_id}"
        """The cluster's ARN: the only ``resourceArn`` the emulator accepts (any other is answered
        ``HttpEndpointNotEnabledException``)."""
        self.secret_arn = (
            f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{self.cluster_id}-data-api-{suffix}"
        )
        """The secret's ARN: the only ``secretArn`` the emulator accepts (no secret really exists)."""
        self.requests: Counter[str] = Counter()
        """Requests received, by operation name (``ExecuteStatement``, ``BeginTransaction``, ...)."""
        self._statements: StatementRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._pause = Pause()
        self._operations = Operations(
            resource_arn=self.resource_arn,
            secret_arn=self.secret_arn,
            cluster_id=self.cluster_id,
            response_limit=self._response_limit,
            row_limit=self._row_limit,
            pause=self._pause,
            running=self._running,
        )
        self._http: web.BaseRunner | None = None
        self._port: int | None = None
        self._state: Literal["new", "running", "closed"] = "new"

    def __repr__(self) -> str:
        where = self.endpoint_url if self._port is not None else self._state
        return f"<DataApiEmulator {self._sim.engine} {where} transactions={self.open_transactions}>"

    # -- what tests read and do --------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``, for ``endpoint_url=`` of the ``rds-data`` client."""
        if self._port is None:
            raise RuntimeError("the emulator is not running; use `async with DataApiEmulator(sim) as emu`")
        return f"http://127.0.0.1:{self._port}"

    @property
    def open_transactions(self) -> int:
        """Transactions begun and not yet committed, rolled back or expired."""
        return len(self._statements.transactions) if self._statements is not None else 0

    def pause(self, seconds: float, error: PauseError = "resuming") -> None:
        """Act as an auto-paused Aurora Serverless cluster for ``seconds`` from now: ExecuteStatement,
        BatchExecuteStatement and BeginTransaction run nothing and answer ``DatabaseResumingException``
        (``error="link_failure"``: ``BadRequestException`` "Communications link failure ..."). Commit and
        rollback still work. Calling it again restarts the pause; :meth:`resume` ends it."""
        if error not in ("resuming", "link_failure"):
            raise ValueError(f"error must be 'resuming' or 'link_failure', not {error!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"seconds must be a number >= 0, not {seconds!r}")
        self._pause.error = error
        self._pause.until = time.monotonic() + seconds

    def resume(self) -> None:
        """End a :meth:`pause` now."""
        self._pause.until = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> DataApiEmulator:
        if self._state != "new":
            raise RuntimeError("a DataApiEmulator can be started only once")
        self._state = "running"
        try:
            await self._start()
        except BaseException:
            await run_to_completion(self._close())
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await run_to_completion(self._close())

    async def _start(self) -> None:
        self._statements = StatementRunner(
            make_backend(self._sim, self._tag),
            default_database=self._default_database or self._sim._database,
            statement_timeout=self._statement_timeout,
            transaction_timeout=self._transaction_timeout,
            max_transaction_age=self._max_transaction_age,
            max_connections=self._max_connections,
        )
        self._statements.start()
        self._http, self._port = await serve_on_loopback(self._handle, shutdown_timeout=SHUTDOWN_GRACE)

    async def _close(self) -> None:
        self._state = "closed"
        try:
            if self._http is not None:
                await self._http.cleanup()  # stops listening, cancels requests still running after a grace
        finally:
            try:
                await cancel_all(self._handlers, grace=2 * CLOSE_TIMEOUT)  # aiohttp cancelled them already
            finally:
                self._port = None
                if self._statements is not None:
                    await self._statements.close()

    # -- HTTP --------------------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every request gets an answer: a Data API error shape for anything that goes wrong."""
        from aiohttp import web  # noqa: PLC0415

        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        try:
            try:
                body = await self._dispatch(request)
                return web.Response(body=body, status=200, content_type="application/json", headers=headers)
            except Exception as exc:  # every error becomes an answer
                try:
                    error = self._api_error(exc)
                except Exception:
                    error = None
                if error is None:
                    log.warning(
                        "Data API emulator: unexpected error in %s %s",
                        request.method,
                        request.path,
                        exc_info=True,
                    )
                    error = ApiError(
                        "InternalServerErrorException",
                        f"An internal error occurred in the Data API emulator ({type(exc).__name__})",
                    )
                else:
                    log.debug("Data API emulator: %s %s -> %s", request.method, request.path, error)
                headers["x-amzn-ErrorType"] = error.shape
                return web.Response(
                    body=error.body(), status=error.status, content_type="application/json", headers=headers
                )
        finally:
            if task is not None:
                self._handlers.discard(task)

    def _api_error(self, exc: Exception) -> ApiError | None:
        if isinstance(exc, ApiError):
            return exc
        return self._statements.backend.api_error(exc) if self._statements is not None else None

    async def _dispatch(self, request: web.BaseRequest) -> bytes:
        operation = _OPERATIONS.get(request.path) if request.method == "POST" else None
        raw = await _read_body(request)
        if operation is None:
            raise ApiError(
                "UnknownOperationException", f"No Data API operation at {request.method} {request.path}"
            )
        self.requests[operation] += 1
        if operation == "ExecuteSql":
            raise bad_request(_EXECUTE_SQL)
        body = parse_body(raw)
        operations = self._operations
        if operation == "ExecuteStatement":
            return await operations.execute_statement(body)
        if operation == "BatchExecuteStatement":
            return await operations.batch_execute_statement(body)
        if operation == "BeginTransaction":
            return await operations.begin_transaction(body)
        return await operations.end_transaction(body, commit=operation == "CommitTransaction")

    def _running(self) -> StatementRunner:
        if self._statements is None or self._state != "running":
            raise unavailable("the emulator is shutting down")
        return self._statements


async def _read_body(request: web.BaseRequest) -> bytes:
    """The body, read to the end; one over the 4 MiB limit is refused (after reading, so that the client
    gets the answer)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size <= REQUEST_LIMIT:
            chunks.append(chunk)
    if size > REQUEST_LIMIT:
        raise bad_request(f"Request size limit exceeded: the request is {size} bytes, the limit is 4 MiB")
    return b"".join(chunks)
