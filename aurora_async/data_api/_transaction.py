"""``DataApiTransaction``: BeginTransaction / CommitTransaction / RollbackTransaction, and savepoints
for nested blocks."""

from __future__ import annotations

import asyncio
import itertools
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ._errors import DataApiError, DatabaseError, RequestOutcomeUnknownError, TransactionNotFoundError

if TYPE_CHECKING:
    from ._connection import DataApiConnection

log = logging.getLogger("aurora_async.data_api")

_savepoint_numbers = itertools.count(1)

State = Literal["new", "started", "committed", "rolled back", "failed"]


class DataApiTransaction:
    """A transaction on a :class:`DataApiConnection`: ``async with conn.transaction():`` commits when
    the block ends normally and rolls back on an exception; or ``start()``, ``commit()``,
    ``rollback()``.

    While it is open every statement of the connection, from any task, runs inside it, one at a time
    (the Data API refuses a second concurrent call on a transaction). A transaction started while
    another is open is a savepoint in it. The Data API rolls back a transaction that sees no call for
    3 minutes; the next call then raises :class:`TransactionNotFoundError`.

    On PostgreSQL a statement that fails inside a transaction aborts it (unless a savepoint around it is
    rolled back): the database then rolls it back on commit, yet the Data API still answers
    CommitTransaction with "Transaction Committed". So :meth:`commit` remembers such a failure and
    raises :class:`DatabaseError` (``sqlstate`` 25P02) instead of reporting a commit that did not happen.
    """

    def __init__(self, conn: DataApiConnection) -> None:
        self._conn = conn
        self._state: State = "new"
        self.transaction_id: str | None = None
        self._savepoint: str | None = None
        self.lock = asyncio.Lock()  # serialises the calls of a top-level transaction
        self.gone: TransactionNotFoundError | None = None  # set when the Data API lost the transaction
        self.failure: DatabaseError | None = None  # a PostgreSQL error that aborted it (see the class)

    def __repr__(self) -> str:
        kind = f"savepoint {self._savepoint}" if self._savepoint else "transaction"
        return f"<DataApiTransaction {kind} {self._state}>"

    @property
    def state(self) -> State:
        return self._state

    async def start(self) -> None:
        """BeginTransaction; inside an open transaction, a SAVEPOINT."""
        if self._state != "new":
            raise DataApiError(f"this transaction was already started ({self._state})")
        conn = self._conn
        conn._check_open()
        if conn._transactions:
            self._savepoint = f"aurora_async_savepoint_{next(_savepoint_numbers)}"
            await conn.execute(f"SAVEPOINT {self._savepoint}")
        else:
            if conn._beginning:
                raise DataApiError(
                    "another task is starting a transaction on this connection: a connection holds one "
                    "transaction at a time (use a connection per concurrent transaction)"
                )
            conn._beginning = True
            try:
                response = await conn._requester.send(
                    "begin_transaction", conn._target(), repeatable=True
                )  # a duplicate Begin leaves an unused transaction that expires after 3 minutes
            finally:
                conn._beginning = False
            self.transaction_id = response["transactionId"]
        conn._transactions.append(self)
        self._state = "started"

    async def commit(self) -> None:
        """CommitTransaction (a savepoint: RELEASE SAVEPOINT). If the commit got no answer,
        :class:`RequestOutcomeUnknownError`: it may have committed.

        If a statement of the transaction failed on PostgreSQL (and no savepoint around it was rolled
        back), the transaction is aborted: CommitTransaction is still sent, which ends it, and the Data
        API answers "Transaction Committed" (as it does), but PostgreSQL rolled it back, so this raises
        :class:`DatabaseError` with ``sqlstate`` 25P02, chained to the statement's error. A savepoint's
        RELEASE fails in that case, and the failure then belongs to the enclosing transaction."""
        self._check_current("commit")
        if self._savepoint is not None:
            await self._end(f"RELEASE SAVEPOINT {self._savepoint}", "committed")
            return
        conn = self._conn
        try:
            async with self.lock:
                if self.gone is not None:
                    raise self.gone
                response = await conn._requester.send(
                    "commit_transaction", self._ids(), repeatable=False, resumable=False
                )
        except TransactionNotFoundError as exc:
            self._finish("failed")
            raise TransactionNotFoundError(
                f"{exc.message}: the transaction expired or was aborted; nothing of it was committed",
                code=exc.code,
                status=exc.status,
            ) from exc
        except RequestOutcomeUnknownError:
            self._finish("failed")
            raise
        except DataApiError:
            self._finish("failed")
            raise
        status = response.get("transactionStatus")
        if self.failure is not None:
            self._finish("rolled back")
            raise _rolled_back(self.failure, status) from self.failure
        self._finish("committed")
        if status != "Transaction Committed":
            log.warning("CommitTransaction answered %r", status)

    async def rollback(self) -> None:
        """RollbackTransaction (a savepoint: ROLLBACK TO SAVEPOINT). A transaction the Data API already
        dropped counts as rolled back."""
        self._check_current("roll back")
        if self._savepoint is not None:
            await self._end(f"ROLLBACK TO SAVEPOINT {self._savepoint}", "rolled back")
            return
        conn = self._conn
        try:
            async with self.lock:
                if self.gone is None:
                    await conn._requester.send(
                        "rollback_transaction", self._ids(), repeatable=True, resumable=False
                    )
        except TransactionNotFoundError:
            pass  # expired or aborted: rolled back already
        finally:
            self._finish("rolled back")

    async def _end(self, sql: str, state: State) -> None:
        try:
            await self._conn.execute(sql)
        except BaseException:
            self._finish("failed")
            enclosing = self._conn._transactions
            if self.failure is not None and enclosing:
                enclosing[-1].failure = self.failure  # the savepoint could not undo it
            raise
        self._finish(state)

    def _check_current(self, what: str) -> None:
        transactions = self._conn._transactions
        if self._state != "started" or not transactions or transactions[-1] is not self:
            raise DataApiError(
                f"cannot {what} {self!r}: "
                + ("it is not open" if self._state != "started" else "a transaction inside it is still open")
            )

    def _finish(self, state: State) -> None:
        self._state = state
        transactions = self._conn._transactions
        if transactions and transactions[-1] is self:
            transactions.pop()

    def _ids(self) -> dict[str, Any]:
        conn = self._conn
        return {
            "resourceArn": conn.resource_arn,
            "secretArn": conn.secret_arn,
            "transactionId": self.transaction_id,
        }

    async def __aenter__(self) -> DataApiTransaction:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.commit()
            return
        try:
            await self.rollback()
        except Exception as rollback_error:
            log.warning("rollback after %s failed: %s", exc_type.__name__, rollback_error)


def aborts_transaction(error: DatabaseError) -> bool:
    """Whether ``error`` aborted the transaction it ran in: an error of the PostgreSQL server (its
    message opens with the severity, ``ERROR:``, and carries a SQLState). MySQL undoes only the failed
    statement (a deadlock, which rolls back the whole transaction, is not tracked)."""
    return error.message.startswith("ERROR:") and error.sqlstate is not None


def _rolled_back(failure: DatabaseError, status: object) -> DatabaseError:
    error = DatabaseError(
        "the transaction was rolled back, not committed: a statement of it failed, which aborted it on "
        f"PostgreSQL (CommitTransaction answered {status!r}); the statement's error: {failure.message}"
    )
    error.sqlstate, error.error_code, error.position = "25P02", None, None  # in_failed_sql_transaction
    return error
