"""The Data API emulator's connection pool: at most ``size`` sessions to one database, idle ones reused.

A session handed out belongs to its taker (a request, a transaction, a statement that continues after
its timeout) until it is released; one released broken, or still inside a transaction it cannot roll
back, is closed instead of kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ._backend import CLOSE_TIMEOUT, Session

log = logging.getLogger("aurora_async.testing.data_api")


class SessionPool:
    """Sessions made by ``connect(timeout)``, at most ``size`` at a time."""

    def __init__(self, connect: Callable[[float], Awaitable[Session]], size: int) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Session] = []
        self._in_use: set[Session] = set()
        self._closed = False

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    async def acquire(self, timeout: float) -> Session:
        """A session: an idle one, else a new one; waits at most ``timeout`` for a free slot and the
        connect together (TimeoutError)."""
        if self._closed:
            raise RuntimeError("the pool is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with asyncio.timeout_at(deadline):
            await self._slots.acquire()
        try:
            while self._idle:
                session = self._idle.pop()
                if session.usable():
                    self._in_use.add(session)
                    return session
                session.abort()
            session = await self._connect(max(deadline - loop.time(), 0.001))
        except BaseException:
            self._slots.release()
            raise
        self._in_use.add(session)
        return session

    def drop_idle(self) -> None:
        """Drop the idle sessions (one of them turned out dead: the others probably are too)."""
        idle, self._idle = self._idle, []
        for session in idle:
            session.abort()

    async def release(self, session: Session, *, discard: bool = False) -> None:
        """Give ``session`` back (closed instead when ``discard``, broken, or the pool is closed)."""
        if session not in self._in_use:
            return
        try:
            keep = not discard and not self._closed and session.usable()
            if keep and session.in_transaction():  # left open by the SQL itself (a bare BEGIN)
                try:
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await session.rollback()
                except Exception as exc:  # then it is not kept
                    log.debug("rollback before reuse failed: %r", exc)
                    keep = False
            if keep and session.usable():
                self._idle.append(session)
            else:
                await session.close()
        except BaseException:
            session.abort()
            raise
        finally:
            self._in_use.discard(session)
            self._slots.release()

    async def close(self) -> None:
        """Close every session, idle or not (those still in use are dropped)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for session in idle:
            await session.close()
        for session in list(self._in_use):
            session.abort()
