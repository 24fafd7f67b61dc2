"""``DataApiConnection``: the asyncpg-style calls over the RDS Data API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Literal, NamedTuple, Protocol

from ._batches import generated_values, split_batches
from ._errors import (
    ROW_TOO_LARGE,
    DataApiError,
    DatabaseError,
    ResultTooLargeError,
    TransactionNotFoundError,
)
from ._paging import DataApiCursor
from ._records import Record, column_index
from ._requests import Requester
from ._statements import check_parameters, first_word, only_reads
from ._transaction import DataApiTransaction, aborts_transaction
from ._values import RAW_RECORDS, decode_field, encode_parameters

Engine = Literal["postgresql", "mysql"]
log = logging.getLogger("aurora_async.data_api")


class Send(Protocol):
    def __call__(
        self, operation: str, request: dict[str, Any], *, repeatable: bool = False
    ) -> Awaitable[dict[str, Any]]: ...


class ExecuteResult(NamedTuple):
    """What :meth:`DataApiConnection.execute` returns: ``rowcount`` (records updated) and
    ``generated`` (values the database generated: MySQL's auto-increment id; PostgreSQL returns
    none, use ``RETURNING`` with ``fetch``)."""

    rowcount: int
    generated: tuple[Any, ...]


class DataApiConnection:
    """Statements through the RDS Data API, with the asyncpg call style and ``:name`` parameters from a
    mapping::

        await conn.execute("INSERT INTO t (id, body) VALUES (:id, :body)", {"id": 1, "body": {"a": 1}})
        rows = await conn.fetch("SELECT * FROM t WHERE id > :id", {"id": 0})

    There is no connection to the database to keep: every call is one HTTPS request (or a few), and
    calls from many tasks run concurrently, except inside a transaction (:meth:`transaction`), where
    they run one at a time. Use it as an async context manager or call :meth:`close` to release the
    HTTP client.
    """

    def __init__(
        self,
        requester: Requester,
        *,
        resource_arn: str,
        secret_arn: str,
        database: str | None,
        engine: Engine | None,
        exit_stack: AsyncExitStack,
        resend_reads: bool = False,
    ) -> None:
        self._requester = requester
        self.resource_arn = resource_arn
        self.secret_arn = secret_arn
        self.database = database
        self.engine: Engine | None = engine
        self.resend_reads = resend_reads
        """Whether SELECT-like statements outside a transaction are sent again after a lost answer (see
        :func:`connect`)."""
        self._exit_stack = exit_stack
        self._closed = False
        self._transactions: list[DataApiTransaction] = []
        self._beginning = False  # a BeginTransaction is under way

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("in transaction" if self._transactions else "idle")
        return f"<DataApiConnection {self.resource_arn} database={self.database!r} {state}>"

    # -- statements ---------------------------------------------------------------------------------

    async def execute(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        continue_after_timeout: bool = False,
        idempotent: bool | None = None,
    ) -> ExecuteResult:
        """Run one statement (ExecuteStatement) and return the records updated and generated values.

        :param params: values for the statement's ``:name`` parameters (see the type table in
            :mod:`aurora_async.data_api`).
        :param continue_after_timeout: let a statement that runs past the Data API's 45 s keep running
            on the server (recommended for DDL); you still get :class:`StatementTimeoutError`.
        :param idempotent: ``True`` if running it twice is harmless, so that it is sent again (until
            ``retry_timeout``) after an answer that was lost once it may have reached the server (a
            reset or timeout after sending, a 5xx). Default (``None``): only when the connection was
            made with ``resend_reads=True`` and the statement only reads; ``False``: never. Without
            that, a lost answer is :class:`RequestOutcomeUnknownError`. Inside a transaction nothing is
            sent again. A request that never left the client (connection refused) is always sent again.
        """
        response = await self._execute(sql, params, False, continue_after_timeout, idempotent)
        generated = tuple(decode_field(f, "") for f in response.get("generatedFields") or ())
        return ExecuteResult(int(response.get("numberOfRecordsUpdated") or 0), generated)

    async def fetch(
        self, sql: str, params: Mapping[str, Any] | None = None, *, idempotent: bool | None = None
    ) -> list[Record]:
        """Run a statement and return its rows as :class:`Record` objects (tuple and mapping at once).

        A PostgreSQL SELECT whose result is over the Data API's 1 MiB response limit is paged with a
        server-side cursor, in one transaction (so one snapshot); on MySQL that is a
        :class:`ResultTooLargeError` that says how to page. Never a silently cut result.

        :param params: values for the statement's ``:name`` parameters.
        :param idempotent: whether it may be sent again after a lost answer, as for :meth:`execute`:
            by default only with ``resend_reads=True`` on the connection and a statement that only
            reads. A SELECT can write (through a function, ``nextval()``): the default is not to repeat
            it.
        """
        try:
            response = await self._execute(sql, params, True, False, idempotent)
        except ResultTooLargeError as exc:
            if not self._can_page(sql, exc):
                raise
            rows: list[Record] = []
            try:
                async with self.cursor(sql, params) as cursor:
                    while page := await cursor.fetch_page():
                        rows.extend(page)
            except DatabaseError as paging_error:
                if paging_error.error_code is not None:  # a MySQL error: no server-side cursors
                    raise exc from paging_error
                raise
            return rows
        return self._records(response)

    async def fetchrow(
        self, sql: str, params: Mapping[str, Any] | None = None, *, idempotent: bool | None = None
    ) -> Record | None:
        """The first row of the result, or None."""
        rows = await self.fetch(sql, params, idempotent=idempotent)
        return rows[0] if rows else None

    async def fetchval(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        column: int | str = 0,
        idempotent: bool | None = None,
    ) -> Any:
        """One value of the first row (``column``: position or name), or None when there is no row."""
        row = await self.fetchrow(sql, params, idempotent=idempotent)
        return None if row is None else row[column]

    async def executemany(self, sql: str, params_seq: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Run a statement once per parameter mapping (BatchExecuteStatement) and return each run's
        generated values (MySQL auto-increment ids; empty tuples on PostgreSQL).

        Sets are sent in requests of up to ~3 MiB (the Data API takes 4); when that takes more than
        one request outside a transaction, they run in a transaction of their own, so all or none are
        applied. An empty sequence sends nothing.
        """
        encoded = [encode_parameters(check_parameters(sql, params, self.engine)) for params in params_seq]
        if not encoded:
            return []
        chunks = list(split_batches(encoded))
        if len(chunks) == 1:
            return generated_values(await self._send("batch_execute_statement", self._batch(sql, chunks[0])))
        generated: list[tuple[Any, ...]] = []
        async with self._own_transaction() as send:
            for chunk in chunks:
                generated += generated_values(await send("batch_execute_statement", self._batch(sql, chunk)))
        return generated

    def _batch(self, sql: str, parameter_sets: list[list[dict[str, Any]]]) -> dict[str, Any]:
        return {**self._target(), "sql": sql, "parameterSets": parameter_sets}

    def transaction(self) -> DataApiTransaction:
        """A transaction: ``async with conn.transaction(): ...`` (see :class:`DataApiTransaction`)."""
        return DataApiTransaction(self)

    def cursor(
        self, sql: str, params: Mapping[str, Any] | None = None, *, page_size: int = 1000
    ) -> DataApiCursor:
        """PostgreSQL: iterate over a large result in pages through a server-side cursor::

        async with conn.cursor("SELECT * FROM big") as cursor:
            async for record in cursor: ...
        """
        return DataApiCursor(self, sql, params, page_size)

    def is_in_transaction(self) -> bool:
        """Whether a transaction (:meth:`transaction`) is open."""
        return bool(self._transactions)

    # -- life cycle ---------------------------------------------------------------------------------

    def is_closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Release the HTTP client. An open transaction is rolled back first (if that fails, the Data
        API rolls it back after 3 minutes)."""
        if self._closed:
            return
        try:
            while self._transactions:
                try:
                    await self._transactions[-1].rollback()
                except DataApiError as exc:
                    self._transactions.clear()
                    raise DataApiError(f"closing: rollback failed: {exc}", code=exc.code) from exc
        finally:
            self._closed = True
            await self._exit_stack.aclose()

    async def __aenter__(self) -> DataApiConnection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- internals ----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise DataApiError("the Data API connection is closed")

    def _target(self) -> dict[str, Any]:
        target = {"resourceArn": self.resource_arn, "secretArn": self.secret_arn}
        if self.database is not None:
            target["database"] = self.database
        return target

    async def _execute(
        self,
        sql: str,
        params: Mapping[str, Any] | None,
        with_rows: bool,
        continue_after_timeout: bool,
        idempotent: bool | None,
    ) -> dict[str, Any]:
        request = self._statement(sql, params, with_rows=with_rows)
        if continue_after_timeout:
            request["continueAfterTimeout"] = True
        repeatable = (self.resend_reads and only_reads(sql)) if idempotent is None else idempotent
        return await self._send("execute_statement", request, repeatable=repeatable)

    def _statement(self, sql: str, params: Mapping[str, Any] | None, *, with_rows: bool) -> dict[str, Any]:
        """An ExecuteStatement request."""
        checked = check_parameters(sql, params, self.engine)
        request: dict[str, Any] = {**self._target(), "sql": sql}
        if checked:
            request["parameters"] = encode_parameters(checked)
        if with_rows:
            request["includeResultMetadata"] = True
        return request

    @asynccontextmanager
    async def _own_transaction(self) -> AsyncIterator[Send]:
        """Run several requests as one transaction: the application's when one is open, else a private
        one that other tasks' calls on this connection do not join; committed when the block ends,
        rolled back if it raises."""
        if self._transactions:
            yield self._send
            return
        self._check_open()
        begun = await self._requester.send("begin_transaction", self._target(), repeatable=True)
        ids = {"resourceArn": self.resource_arn, "secretArn": self.secret_arn}
        ids["transactionId"] = begun["transactionId"]

        async def send(
            operation: str, request: dict[str, Any], *, repeatable: bool = False
        ) -> dict[str, Any]:
            self._check_open()
            request = {**request, "transactionId": ids["transactionId"]}
            return await self._requester.send(operation, request, repeatable=False, resumable=False)

        try:
            yield send
        except BaseException:
            try:
                await self._requester.send("rollback_transaction", ids, repeatable=True, resumable=False)
            except DataApiError as exc:
                log.warning("rollback of a private transaction failed (it expires by itself): %s", exc)
            raise
        await self._requester.send("commit_transaction", ids, repeatable=False, resumable=False)

    async def _send(
        self, operation: str, request: dict[str, Any], *, repeatable: bool = False
    ) -> dict[str, Any]:
        """Send a statement request: inside the open transaction (one call at a time), or on its own."""
        self._check_open()
        while self._transactions:
            transaction = self._transactions[0]
            async with transaction.lock:
                if not self._transactions or self._transactions[0] is not transaction:
                    continue  # it ended while this call waited: run outside it
                if transaction.gone is not None:
                    raise TransactionNotFoundError(
                        f"{transaction.gone.message} (roll the transaction back and start again)",
                        code=transaction.gone.code,
                    )
                request = {**request, "transactionId": transaction.transaction_id}
                try:
                    return await self._requester.send(operation, request, repeatable=False, resumable=False)
                except TransactionNotFoundError as exc:
                    transaction.gone = exc
                    raise
                except DatabaseError as exc:
                    if aborts_transaction(exc) and self._transactions:
                        self._transactions[-1].failure = exc  # the innermost: a savepoint can undo it
                    raise
        return await self._requester.send(operation, request, repeatable=repeatable)

    def _records(self, response: Mapping[str, Any]) -> list[Record]:
        metadata = response.get("columnMetadata") or ()
        names = [m.get("label") or m.get("name") or f"?column{i}?" for i, m in enumerate(metadata)]
        types = [m.get("typeName") or "" for m in metadata]
        index = column_index(names)
        rows = []
        records = response.get(RAW_RECORDS, response.get("records"))
        for fields in records or ():
            if len(types) < len(fields):
                types += [""] * (len(fields) - len(types))
            rows.append(Record(index, [decode_field(f, t) for f, t in zip(fields, types, strict=False)]))
        return rows

    def _can_page(self, sql: str, exc: ResultTooLargeError) -> bool:
        return (
            self.engine != "mysql"
            and ROW_TOO_LARGE not in exc.message
            and first_word(sql) in ("select", "values", "table", "with")
        )
