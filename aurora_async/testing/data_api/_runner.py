"""How the Data API emulator runs statements: sessions from a pool per database, the statement timeout
(the statement cancelled on the server, or left to finish in the background with
``continueAfterTimeout``), and transactions with their idle and age limits.

Everything started here is owned: statements run in tasks that are awaited, interrupted or handed to a
tracked background task; :meth:`StatementRunner.close` cancels the background work, rolls back the open
transactions, closes the pools and ends server sessions that were dropped while busy.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._process import run_to_completion
from ._backend import CLOSE_TIMEOUT, Backend, Session, SessionLost
from ._pool import SessionPool
from ._protocol import STILL_RUNNING, ApiError, database_error, transaction_not_found, unavailable

log = logging.getLogger("aurora_async.testing.data_api")

T = TypeVar("T")
ATTEMPTS = 3  # sessions tried when pooled ones turn out dead before anything ran (SessionLost)


@dataclass(eq=False)
class Transaction:
    """A Data API transaction: a session inside ``BEGIN``, usable with the ARN it was begun with."""

    id: str
    resource_arn: str
    session: Session
    pool: SessionPool
    started: float
    last_used: float
    busy: bool = False


class StatementRunner:
    """Sessions, statements and transactions for one emulator (see the module docstring)."""

    def __init__(
        self,
        backend: Backend,
        *,
        default_database: str,
        statement_timeout: float,
        transaction_timeout: float,
        max_transaction_age: float,
        max_connections: int,
    ) -> None:
        self.backend = backend
        self._default_database = default_database
        self.statement_timeout = statement_timeout
        self._transaction_timeout = transaction_timeout
        self._max_transaction_age = max_transaction_age
        self._max_connections = max_connections
        self._pools: dict[str, SessionPool] = {}
        self.transactions: dict[str, Transaction] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._wakeup = asyncio.Event()
        self._closed = False

    def start(self) -> None:
        """Start expiring transactions."""
        self._spawn(self._expire_transactions())

    async def close(self) -> None:
        """Stop the background work, roll back every transaction, close every session."""
        self._closed = True
        await cancel_all(self._background)
        await asyncio.gather(*(self._forget(tx) for tx in list(self.transactions.values())))
        for pool in self._pools.values():
            await pool.close()
        try:
            await self.backend.sweep()
        except Exception as exc:  # best effort: the sessions are closed already
            log.warning("Data API emulator: could not check for leftover database sessions: %r", exc)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- sessions ---------------------------------------------------------------------------------------

    def pool(self, database: str | None) -> SessionPool:
        """The pool of ``database`` (None: the default one)."""
        if self._closed:
            raise unavailable("the emulator is shutting down")
        name = database or self._default_database
        pool = self._pools.get(name)
        if pool is None:
            backend = self.backend

            def connect(timeout: float) -> Awaitable[Session]:
                return backend.connect(name, timeout)

            pool = self._pools[name] = SessionPool(connect, self._max_connections)
        return pool

    async def acquire(self, pool: SessionPool) -> Session:
        try:
            return await pool.acquire(self.statement_timeout)
        except TimeoutError:
            raise unavailable(
                f"no database connection within {self.statement_timeout:g} s "
                f"({pool.in_use} of {self._max_connections} in use)"
            ) from None

    # -- statements -------------------------------------------------------------------------------------

    async def run_alone(
        self,
        database: str | None,
        work: Callable[[Session], Awaitable[T]],
        encode: Callable[[T], bytes],
        *,
        continue_after_timeout: bool = False,
    ) -> bytes:
        """``work`` on a pooled session, outside any Data API transaction: a transaction ``work`` left
        open is committed once ``encode`` accepted the result, rolled back on any error. A session
        found dead before anything ran is replaced."""
        pool = self.pool(database)
        attempt = 1
        while True:
            try:
                return await self._run_alone(pool, work, encode, continue_after_timeout)
            except SessionLost:
                pool.drop_idle()
                if attempt == ATTEMPTS:
                    raise
                attempt += 1

    async def _run_alone(
        self,
        pool: SessionPool,
        work: Callable[[Session], Awaitable[T]],
        encode: Callable[[T], bytes],
        continue_after_timeout: bool,
    ) -> bytes:
        session = await self.acquire(pool)
        owned = True
        task: asyncio.Task[T] | None = None
        try:
            task = asyncio.ensure_future(work(session))
            if not await self._finished(task):
                if continue_after_timeout:
                    owned = False
                    self._spawn(self._continue_in_background(pool, session, task))
                    raise self._timeout(session, continuing=True)
                await self._stop(session, task)
                raise self._timeout(session)
            body = encode(task.result())
            if session.in_transaction():
                await session.commit()
            return body
        except BaseException as exc:
            if owned:
                if task is not None and not task.done():  # the request was cancelled: the emulator closes
                    await self._stop(session, task)
                if self.backend.is_connection_error(exc):
                    session.abort()
                await self._rollback_quietly(session)
            raise
        finally:
            if owned:
                if task is not None and not task.done():  # never reuse a session still running something
                    _drop(session, task)
                await pool.release(session, discard=session.broken)

    async def run_in_transaction(self, tx: Transaction, work: Callable[[Session], Awaitable[T]]) -> T:
        """``work`` on the transaction's session. A timeout or a lost connection ends the transaction;
        an SQL error leaves it open."""
        session = tx.session
        task = asyncio.ensure_future(work(session))
        try:
            finished = await self._finished(task)
        except BaseException:  # the request was cancelled: the emulator closes, the transaction ends
            if not task.done():
                await run_to_completion(self._abandon(tx, task))
            raise
        if not finished:
            await self._stop(session, task)
            await self._forget(tx)
            raise self._timeout(session)
        try:
            return task.result()
        except Exception as exc:
            if self.backend.is_connection_error(exc):
                session.abort()
                await self._forget(tx)
            raise

    async def _finished(self, task: asyncio.Task[Any]) -> bool:
        done, _ = await asyncio.wait({task}, timeout=self.statement_timeout)
        return bool(done)

    async def _stop(self, session: Session, task: asyncio.Task[Any]) -> None:
        """Cancel the statement ``task`` runs and roll back what it left open, to the end even when the
        caller is cancelled meanwhile (CancelledError follows then)."""
        await run_to_completion(self._interrupt(session, task))

    async def _interrupt(self, session: Session, task: asyncio.Task[Any]) -> None:
        await session.interrupt(task)
        if not task.done():  # the driver did not let go of it
            _drop(session, task)
            return
        if not task.cancelled():
            task.exception()  # retrieved: it is the timeout that is reported
        await self._rollback_quietly(session, always=True)

    async def _abandon(self, tx: Transaction, task: asyncio.Task[Any]) -> None:
        await self._interrupt(tx.session, task)
        await self._forget(tx)

    async def _rollback_quietly(self, session: Session, *, always: bool = False) -> None:
        """Roll back (``always``: even when the session's state says there is nothing to roll back, as
        after a cancelled statement); a session that cannot is dropped."""
        if not session.usable() or not (always or session.in_transaction()):
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await session.rollback()
        except Exception as exc:  # then the session is dropped instead
            log.debug("Data API emulator: rollback failed, dropping the session: %r", exc)
            session.abort()

    def _timeout(self, session: Session, *, continuing: bool = False) -> ApiError:
        what = (
            "it keeps running on the database (continueAfterTimeout)"
            if continuing
            else "it was cancelled on the database"
        )
        return ApiError(
            "StatementTimeoutException",
            f"Request timed out: the statement ran past the statement timeout of "
            f"{self.statement_timeout:g} s; {what}",
            dbConnectionId=session.connection_id,
        )

    async def _continue_in_background(
        self, pool: SessionPool, session: Session, task: asyncio.Task[Any]
    ) -> None:
        """A statement past its timeout with ``continueAfterTimeout``: it runs to the end and commits."""
        try:
            await asyncio.wait({task})
            if task.cancelled() or task.exception() is not None:
                error = None if task.cancelled() else task.exception()
                log.debug("Data API emulator: a statement that continued after its timeout failed: %r", error)
                if error is not None and self.backend.is_connection_error(error):
                    session.abort()
                await self._rollback_quietly(session)
            elif session.in_transaction():
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await session.commit()
        except asyncio.CancelledError:
            if not task.done():
                await self._stop(session, task)
            raise
        except Exception as exc:  # nobody waits for this answer
            log.debug("Data API emulator: committing a statement that continued failed: %r", exc)
            session.abort()
        finally:
            await pool.release(session, discard=session.broken)

    # -- transactions -----------------------------------------------------------------------------------

    async def begin(self, database: str | None, resource_arn: str) -> Transaction:
        """BeginTransaction: a session of its own, inside ``BEGIN``."""
        pool = self.pool(database)
        attempt = 1
        while True:
            session = await self.acquire(pool)
            try:
                async with asyncio.timeout(self.statement_timeout):
                    await session.begin()
                break
            except SessionLost:
                await pool.release(session, discard=True)
                pool.drop_idle()
                if attempt == ATTEMPTS:
                    raise
                attempt += 1
            except BaseException:
                await pool.release(session, discard=True)
                raise
        now = time.monotonic()
        # random and url-safe, 184 characters like the real ones
        tx = Transaction(secrets.token_urlsafe(138), resource_arn, session, pool, now, now)
        self.transactions[tx.id] = tx
        self._wakeup.set()
        return tx

    async def end(self, tx: Transaction, *, commit: bool) -> None:
        """CommitTransaction or RollbackTransaction of a claimed transaction: it is gone afterwards,
        whatever happens.

        A commit succeeds even when a statement of the transaction failed (on PostgreSQL the transaction
        is then aborted, and ``COMMIT`` rolls it back): Serverless v2 and provisioned clusters answer
        "Transaction Committed" then. The ``aurora-data-api`` client's suite, updated for v2 in its 0.5.0,
        catches a failed statement inside a transaction and commits it at the end of the ``with``
        block, and its ``commit()`` raises unless the answer is "Transaction Committed"."""
        del self.transactions[tx.id]
        session = tx.session
        try:
            async with asyncio.timeout(self.statement_timeout):
                await (session.commit() if commit else session.rollback())
        except BaseException as exc:
            if not isinstance(exc, ApiError) and self.backend.is_connection_error(exc):
                session.abort()
            await self._rollback_quietly(session)
            raise
        finally:
            await tx.pool.release(session, discard=session.broken)

    def claim(self, transaction_id: str, resource_arn: str, not_found: str) -> Transaction:
        """The transaction, now busy with a request (``not_found``: the error shape when it is unknown);
        "Transaction is still running a query" when it is busy already."""
        tx = self.transactions.get(transaction_id)
        if tx is None or tx.resource_arn != resource_arn:
            raise transaction_not_found(transaction_id, not_found)
        if tx.busy:
            raise database_error(STILL_RUNNING)
        tx.busy = True
        return tx

    def release(self, tx: Transaction) -> None:
        """The request on ``tx`` is over: its idle time starts now."""
        tx.busy = False
        tx.last_used = time.monotonic()
        self._wakeup.set()

    async def _forget(self, tx: Transaction) -> None:
        """End ``tx``: rolled back, its session back to the pool (or closed)."""
        if self.transactions.get(tx.id) is tx:
            del self.transactions[tx.id]
        try:
            await self._rollback_quietly(tx.session, always=True)
        finally:
            await tx.pool.release(tx.session, discard=tx.session.broken)

    async def _expire_transactions(self) -> None:
        """Roll back transactions idle for ``transaction_timeout`` or older than ``max_transaction_age``."""
        while True:
            self._wakeup.clear()
            now = time.monotonic()
            next_due: float | None = None
            for tx in list(self.transactions.values()):
                if tx.busy:
                    continue
                due = min(tx.last_used + self._transaction_timeout, tx.started + self._max_transaction_age)
                if due > now:
                    next_due = due if next_due is None else min(next_due, due)
                    continue
                log.debug("Data API emulator: transaction %s... expired", tx.id[:12])
                try:
                    await self._forget(tx)
                except Exception:  # the transaction is gone all the same; keep expiring the others
                    log.warning("Data API emulator: ending an expired transaction failed", exc_info=True)
            delay = None if next_due is None else max(next_due - time.monotonic(), 0.0)
            try:
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                pass


def _drop(session: Session, task: asyncio.Task[Any]) -> None:
    """Give up ``session``, whose statement ``task`` is still running (its outcome goes unread)."""
    task.add_done_callback(_retrieve)
    session.abort()


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def cancel_all(tasks: set[asyncio.Task[Any]], grace: float = 0.0) -> None:
    """Cancel ``tasks`` (after ``grace`` seconds to end by themselves) and wait until they are done
    (they clean up after themselves)."""
    pending = [task for task in tasks if not task.done()]
    if pending and grace > 0:
        _, still = await asyncio.wait(pending, timeout=grace)
        pending = list(still)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
