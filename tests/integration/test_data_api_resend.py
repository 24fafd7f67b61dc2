"""What the Data API client sends again, proved with real faults on loopback.

A request is sent again only when it provably never left the client (the TCP connection to the endpoint
was refused or timed out) or when the Data API says it ran nothing (an auto-paused cluster, tested in
test_data_api.py). Once it may have reached the server (a reset or a close after sending, a read
timeout, a 5xx), it is a :class:`RequestOutcomeUnknownError` unless the caller opted in
(``idempotent=True``, or ``resend_reads=True`` for SELECT-like statements). Each test reads the database
directly (asyncpg on the simulator) to count what was really stored.

The faults come from :class:`FaultyProxy`, a TCP proxy between the client and the emulator that passes
the request on, waits for the emulator's whole answer (so the statement has run and committed), and
then loses that answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from aurora_async import data_api
from aurora_async.data_api import DataApiConnection, DataApiError, RequestOutcomeUnknownError
from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, DataApiEmulator
from tests.helpers import LoopbackServer, eventually, fetchval, pipe

module_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = module_loop

Fault = Literal["reset", "close", "unavailable", "stall"]
ANSWER_LOST: tuple[Fault, ...] = ("reset", "close", "unavailable", "stall")
STALLED_REQUEST_TIMEOUT = 0.5  # request_timeout of the clients that meet the "stall" fault
DEADLINE = 30.0  # generous: 2 shared cores


class FaultyProxy(LoopbackServer):
    """A TCP proxy on 127.0.0.1 in front of the emulator. It passes requests and answers through, except
    the next :meth:`lose` answers: for each of those it reads the emulator's whole answer, so the
    statement has run (and, outside a transaction, committed), and instead of passing it on:

    - ``"reset"``: resets the client's connection (RST), as a dropped NAT entry or a crashed load
      balancer does;
    - ``"close"``: closes it cleanly (FIN) with no answer;
    - ``"unavailable"``: answers HTTP 504 ``DatabaseUnavailableException``;
    - ``"stall"``: sends nothing until the client gives up (its read timeout) and closes the connection.

    ``sock``: a socket already bound (and not yet listening) to serve on, e.g. a port that refused
    connections until now.
    """

    def __init__(self, upstream_url: str, sock: socket.socket | None = None) -> None:
        super().__init__(sock=sock)
        parts = urlsplit(upstream_url)
        assert parts.hostname == "127.0.0.1" and parts.port is not None
        self._upstream = (parts.hostname, parts.port)
        self._faults: list[Fault] = []
        self.lost = 0
        """Answers lost so far."""

    def lose(self, count: int, fault: Fault) -> None:
        """Lose the next ``count`` answers with ``fault``."""
        self._faults = [fault] * count

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        upstream_reader, upstream = await asyncio.open_connection(*self._upstream)
        self.own(upstream)
        requests = asyncio.create_task(pipe(client_reader, upstream))
        try:
            while answer := await _read_answer(upstream_reader):
                if not self._faults:
                    client.write(answer)
                    await client.drain()
                    continue
                fault = self._faults.pop(0)
                self.lost += 1
                if fault == "unavailable":
                    client.write(_UNAVAILABLE)
                    await client.drain()
                    continue
                if fault == "stall":
                    await requests  # until the client closes its side
                elif fault == "reset":
                    sock = client.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.transport.abort()
                break
        except asyncio.IncompleteReadError:
            pass
        finally:
            requests.cancel()
            await asyncio.gather(requests, return_exceptions=True)
            upstream.close()


_UNAVAILABLE_BODY = json.dumps(
    {"message": "The writer instance isn't available, so the request could not be run: proxy fault"}
).encode()
_UNAVAILABLE = (
    b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: application/json\r\n"
    b"x-amzn-ErrorType: DatabaseUnavailableException\r\n"
    + f"x-amzn-RequestId: {uuid.uuid4()}\r\nContent-Length: {len(_UNAVAILABLE_BODY)}\r\n\r\n".encode()
    + _UNAVAILABLE_BODY
)


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    """One whole HTTP answer (the emulator always sends Content-Length), or b"" at the end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return b""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


@contextlib.contextmanager
def refusing_port() -> Iterator[socket.socket]:
    """A loopback socket bound to a port and not listening: connections to it are refused (and no other
    process can take the port while it is held)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()


@contextlib.contextmanager
def black_holed_port() -> Iterator[int]:
    """A loopback port whose TCP handshakes never complete: a listener that never accepts, with its accept
    queue filled, so Linux drops the SYNs of any further connection (the client's connect times out)."""
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        first = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        assert first is not None  # queued: the accept queue (one connection) is full now
        for _ in range(2):  # in case the queue holds more: these handshakes may stay unfinished
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        yield port


@pytest.fixture(scope="module", autouse=True)
def dummy_aws() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in DUMMY_AWS_ENV.items():
            patch.setenv(key, value)
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[AuroraSimulator]:
    async with AuroraSimulator("postgresql", 1) as sim:
        yield sim


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emu(sim: AuroraSimulator) -> AsyncIterator[DataApiEmulator]:
    async with DataApiEmulator(sim) as emu:
        yield emu


@pytest_asyncio.fixture(loop_scope="module")
async def proxy(emu: DataApiEmulator) -> AsyncIterator[FaultyProxy]:
    proxy = FaultyProxy(emu.endpoint_url)
    async with proxy:
        yield proxy


def connect(emu: DataApiEmulator, endpoint_url: str, **options: Any) -> Any:
    return data_api.connect(
        resource_arn=emu.resource_arn, secret_arn=emu.secret_arn, endpoint_url=endpoint_url, **options
    )


def timeouts(fault: Fault) -> dict[str, Any]:
    return {"request_timeout": STALLED_REQUEST_TIMEOUT} if fault == "stall" else {}


@pytest_asyncio.fixture(loop_scope="module")
async def table(sim: AuroraSimulator, emu: DataApiEmulator) -> AsyncIterator[str]:
    """A table ``n serial``, and a function ``<table>_bump()`` that inserts a row and returns its ``n``:
    a SELECT that writes."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    async with connect(emu, emu.endpoint_url) as conn:
        await conn.execute(f"CREATE TABLE {name} (n serial PRIMARY KEY)")
        await conn.execute(
            f"CREATE FUNCTION {name}_bump() RETURNS int LANGUAGE sql "
            f"AS $$ INSERT INTO {name} DEFAULT VALUES RETURNING n $$"
        )
        yield name
        await conn.execute(f"DROP FUNCTION {name}_bump()")
        await conn.execute(f"DROP TABLE {name}")


async def stored(sim: AuroraSimulator, table: str) -> object:
    """Rows in ``table``, read on the database itself (not through the Data API)."""
    return await fetchval(sim.dsn("cluster"), f"SELECT count(*) FROM {table}")


# -- lost answers: never sent again by default ------------------------------------------------------------


@pytest.mark.parametrize("fault", ANSWER_LOST)
async def test_an_insert_whose_answer_is_lost_is_stored_once(
    fault: Fault, sim: AuroraSimulator, emu: DataApiEmulator, proxy: FaultyProxy, table: str
) -> None:
    async with connect(emu, proxy.endpoint_url, **timeouts(fault)) as conn:
        before = emu.requests["ExecuteStatement"]
        proxy.lose(1, fault)
        with pytest.raises(RequestOutcomeUnknownError, match="may or may not have run"):
            await conn.execute(f"INSERT INTO {table} DEFAULT VALUES")
        assert proxy.lost == 1
        assert emu.requests["ExecuteStatement"] - before == 1  # sent once
        assert await stored(sim, table) == 1
        assert (await conn.execute(f"INSERT INTO {table} DEFAULT VALUES")).rowcount == 1  # still usable
    assert await stored(sim, table) == 2


@pytest.mark.parametrize("fault", ANSWER_LOST)
async def test_a_select_that_writes_is_not_sent_again(
    fault: Fault, sim: AuroraSimulator, emu: DataApiEmulator, proxy: FaultyProxy, table: str
) -> None:
    async with connect(emu, proxy.endpoint_url, **timeouts(fault)) as conn:
        before = emu.requests["ExecuteStatement"]
        proxy.lose(1, fault)
        with pytest.raises(RequestOutcomeUnknownError, match="may or may not have run"):
            await conn.fetchval(f"SELECT {table}_bump()")
        assert emu.requests["ExecuteStatement"] - before == 1
    assert await stored(sim, table) == 1  # the function ran once


# -- opting in -------------------------------------------------------------------------------------------


async def test_resend_reads_sends_selects_again_but_not_explain_analyse(
    sim: AuroraSimulator, emu: DataApiEmulator, proxy: FaultyProxy, table: str
) -> None:
    async with connect(emu, proxy.endpoint_url, resend_reads=True) as conn:
        before = emu.requests["ExecuteStatement"]
        proxy.lose(1, "reset")
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
        assert (proxy.lost, emu.requests["ExecuteStatement"] - before) == (1, 2)

        for explain in ("EXPLAIN ANALYSE", "EXPLAIN (ANALYZE)", "EXPLAIN (COSTS off, ANALYSE true)"):
            before = emu.requests["ExecuteStatement"]
            proxy.lose(1, "close")
            with pytest.raises(RequestOutcomeUnknownError):  # it runs the statement: not a read
                await conn.fetch(f"{explain} INSERT INTO {table} DEFAULT VALUES")
            assert emu.requests["ExecuteStatement"] - before == 1
        assert await stored(sim, table) == 3

        async with conn.transaction():  # inside a transaction nothing is sent again, not even a read
            before = emu.requests["ExecuteStatement"]
            proxy.lose(1, "unavailable")
            with pytest.raises(RequestOutcomeUnknownError):
                await conn.fetchval("SELECT 1", idempotent=True)
            assert emu.requests["ExecuteStatement"] - before == 1


async def test_idempotent_true_sends_a_statement_again(
    sim: AuroraSimulator, emu: DataApiEmulator, proxy: FaultyProxy, table: str
) -> None:
    async with connect(emu, proxy.endpoint_url) as conn:
        before = emu.requests["ExecuteStatement"]
        proxy.lose(1, "reset")
        result = await conn.execute(
            f"INSERT INTO {table} (n) VALUES (7) ON CONFLICT DO NOTHING", idempotent=True
        )
        assert result.rowcount == 0  # the second run found the row the first one stored
        assert emu.requests["ExecuteStatement"] - before == 2
    assert await stored(sim, table) == 1


# -- never sent: sent again until retry_timeout ----------------------------------------------------------


async def test_a_refused_connection_is_sent_again_until_retry_timeout(emu: DataApiEmulator) -> None:
    with refusing_port() as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with connect(emu, url, retry_timeout=1.0) as conn:
            started = time.monotonic()
            with pytest.raises(DataApiError) as info:
                await conn.execute("INSERT INTO nowhere DEFAULT VALUES")  # a write, too: nothing was sent
            elapsed = time.monotonic() - started
            assert conn._requester.retries >= 1
    error = info.value
    assert not isinstance(error, RequestOutcomeUnknownError)
    assert error.code == "EndpointConnectionError"
    assert "could not connect to the Data API endpoint" in error.message
    assert "nothing was sent" in error.message
    assert "retry_timeout" in error.message and "attempts" in error.message
    assert elapsed < DEADLINE  # gave up: the next attempt would have started after retry_timeout


async def test_a_write_is_sent_once_the_endpoint_listens(
    sim: AuroraSimulator, emu: DataApiEmulator, table: str
) -> None:
    with refusing_port() as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with connect(emu, url, retry_timeout=DEADLINE) as conn:
            insert = asyncio.create_task(conn.execute(f"INSERT INTO {table} DEFAULT VALUES"))
            try:
                requester = conn._requester

                async def refused_once() -> bool:
                    return requester.retries >= 1 or insert.done()

                await eventually(refused_once, timeout=DEADLINE, what="a refused attempt")
                assert not insert.done()
                async with FaultyProxy(emu.endpoint_url, sock=sock):  # now it listens
                    result = await asyncio.wait_for(insert, DEADLINE)
            finally:
                insert.cancel()
                await asyncio.gather(insert, return_exceptions=True)
    assert result.rowcount == 1
    assert await stored(sim, table) == 1


async def test_a_connect_timeout_is_sent_again_until_retry_timeout(emu: DataApiEmulator) -> None:
    with black_holed_port() as port:
        url = f"http://127.0.0.1:{port}"
        conn: DataApiConnection
        # a retry budget of many connect timeouts: under a loaded machine's stalls the first timeout
        # may fire late, and the budget must still leave room for a resend
        async with connect(emu, url, connect_timeout=0.2, retry_timeout=3.0) as conn:
            with pytest.raises(DataApiError) as info:
                await conn.execute("INSERT INTO nowhere DEFAULT VALUES")
            assert conn._requester.retries >= 1
    assert not isinstance(info.value, RequestOutcomeUnknownError)
    assert info.value.code == "ConnectTimeoutError"
    assert "nothing was sent" in info.value.message
