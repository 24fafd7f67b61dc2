"""``DataApiCursor``: a PostgreSQL result larger than one Data API response, read in pages.

The query runs as ``DECLARE <name> SCROLL CURSOR FOR <query>`` inside a transaction (the application's
if one is open, else a private one, so every page comes from one snapshot), and ``FETCH FORWARD n``
reads pages. A page over the 1 MiB response limit is read again with half as many rows, after ``MOVE
ABSOLUTE`` puts the cursor back where the last good page ended (the refused FETCH may have moved it).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._errors import ROW_TOO_LARGE, DataApiError, ResultTooLargeError
from ._records import Record

if TYPE_CHECKING:
    from ._connection import DataApiConnection, Send

_cursor_numbers = itertools.count(1)


class DataApiCursor:
    """Pages of a PostgreSQL query through a server-side cursor (see :meth:`DataApiConnection.cursor`)::

        async with conn.cursor("SELECT * FROM events WHERE day = :day", {"day": day}) as cursor:
            async for record in cursor:
                ...

    or ``await cursor.fetch_page()`` until it returns an empty list. Pages start at ``page_size`` rows
    and shrink when a page would pass the Data API's 1 MiB response limit. A single row over 64 KB is a
    :class:`ResultTooLargeError`. Leaving the block closes the cursor and ends its transaction.
    """

    def __init__(
        self, conn: DataApiConnection, sql: str, params: Mapping[str, Any] | None, page_size: int
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be an int >= 1, not {page_size!r}")
        self._conn = conn
        self._sql = sql.rstrip().removesuffix(";")
        self._params = params
        self._page_size = page_size
        self._name = f"aurora_async_cursor_{next(_cursor_numbers)}"
        self._send: Send | None = None
        self._stack: AsyncExitStack | None = None
        self._position = 0  # rows read
        self._moved = False  # a refused FETCH may have moved the cursor
        self._done = False
        self._buffer: list[Record] = []
        self.pages_read = 0

    def __repr__(self) -> str:
        return f"<DataApiCursor {self._name} rows read={self._position}>"

    async def __aenter__(self) -> DataApiCursor:
        conn = self._conn
        declare = conn._statement(
            f"DECLARE {self._name} SCROLL CURSOR FOR {self._sql}",
            self._params,
            with_rows=False,
        )
        stack = AsyncExitStack()
        try:
            self._send = await stack.enter_async_context(conn._own_transaction())
            await self._send("execute_statement", declare)
        except BaseException:
            await stack.__aexit__(*sys.exc_info())
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        if exc_type is None:
            try:
                await self._run(f"CLOSE {self._name}")
            except BaseException as close_error:
                await stack.__aexit__(type(close_error), close_error, close_error.__traceback__)
                raise
        await stack.__aexit__(exc_type, exc, tb)

    async def fetch_page(self) -> list[Record]:
        """The next page of records; an empty list at the end."""
        if self._stack is None:
            raise DataApiError("the cursor is not open: use 'async with conn.cursor(...) as cursor'")
        size = self._page_size
        while not self._done:
            if self._moved:
                await self._run(f"MOVE ABSOLUTE {self._position} FROM {self._name}")
                self._moved = False
            try:
                response = await self._run(f"FETCH FORWARD {size} FROM {self._name}", with_rows=True)
            except ResultTooLargeError as exc:
                if ROW_TOO_LARGE in exc.message or size == 1:
                    raise
                size = max(1, size // 2)
                self._page_size = size
                self._moved = True
                continue
            records = self._conn._records(response)
            self._position += len(records)
            self._done = len(records) < size
            self.pages_read += 1
            if records:
                return records
        return []

    def __aiter__(self) -> DataApiCursor:
        return self

    async def __anext__(self) -> Record:
        if not self._buffer:
            self._buffer = await self.fetch_page()
            self._buffer.reverse()
            if not self._buffer:
                raise StopAsyncIteration
        return self._buffer.pop()

    async def _run(self, sql: str, *, with_rows: bool = False) -> dict[str, Any]:
        assert self._send is not None
        return await self._send("execute_statement", self._conn._statement(sql, None, with_rows=with_rows))
