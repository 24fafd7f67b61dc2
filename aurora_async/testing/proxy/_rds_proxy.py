"""A simulated RDS Proxy endpoint, in the fault proxy's process.

RDS Proxy sits between the application and the cluster: the application connects to the proxy only,
and the proxy connects to the writer, which it learns from the cluster (not from DNS), so it follows a
promotion at once. What this simulation keeps of it, because it is what an application sees:

- every client connection is *pinned* to one backend connection, opened to the writer through the
  writer's own fault-proxy endpoint (so the writer's faults apply to it);
- while there is no writer (mid-failover), new client connections wait for one, up to
  ``reattach_timeout``;
- when the backend connection of an **idle** client connection (not in a transaction, no statement
  in flight) is lost, the proxy logs in to the new writer as the same user, with the user's secret
  (RDS Proxy reads it from Secrets Manager; here ``secret`` commands give them), and the client goes
  on on the new backend without noticing, as RDS Proxy keeps idle client connections through a
  failover;
- a client connection with a transaction open or a statement in flight is closed, so the application
  sees its connection fail, as RDS Proxy fails in-flight transactions.

It speaks plain text only (it answers PostgreSQL's ``SSLRequest`` with "no"). The first login of each
client connection passes through to the writer, which checks the password as it would without the
proxy. Multiplexing of client connections over fewer backend connections is not simulated. The
protocol-specific parts are in ``_rds_proxy_pg`` and ``_rds_proxy_mysql``; the MySQL side treats
every client connection as pinned (it never moves one).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ._backends import WireProtocol

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
RETRY = 0.05  # how often the proxy tries the writer again while it has none


class ProxySession(Protocol):
    async def run(self) -> None: ...


SessionFactory = Callable[["RdsProxy", asyncio.StreamReader, asyncio.StreamWriter], ProxySession]


class RdsProxy:
    """One simulated RDS Proxy endpoint (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        protocol: WireProtocol,
        reattach_timeout: float,
        session: SessionFactory,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.protocol = protocol
        self.reattach_timeout = reattach_timeout
        self.target: tuple[str, int] | None = None
        self.secrets: dict[str, str] = {}
        self.stats = {"accepted": 0, "backends": 0, "reattached": 0, "dropped": 0}
        self._session = session
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accepted, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.transport.abort()
            return
        self.stats["accepted"] += 1
        self._writers.add(writer)
        task = asyncio.get_running_loop().create_task(self._run(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._session(self, reader, writer).run()
        except (OSError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # a bug in the simulation: say so, and end that client connection
            sys.stderr.write(f"rds proxy {self.name}: {exc!r}\n")
            sys.stderr.flush()
        finally:
            writer.transport.abort()
            self._writers.discard(writer)

    def own(self, writer: asyncio.StreamWriter) -> None:
        """Abort ``writer`` (a backend connection) when the proxy closes."""
        self._writers.add(writer)

    def disown(self, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()
        self._writers.discard(writer)

    async def open_writer(self, deadline: float) -> Streams | None:
        """A TCP connection to the writer, waiting for one until ``deadline`` (None if none came)."""
        loop = asyncio.get_running_loop()
        while (remaining := deadline - loop.time()) > 0:
            target = self.target
            if target is not None:
                try:
                    async with asyncio.timeout(remaining):
                        reader, writer = await asyncio.open_connection(*target)
                except (OSError, TimeoutError):
                    pass
                else:
                    self.own(writer)
                    self.stats["backends"] += 1
                    return reader, writer
            await asyncio.sleep(min(RETRY, max(0.0, deadline - loop.time())))
        return None

    def deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.reattach_timeout

    def status(self) -> dict[str, Any]:
        target = None if self.target is None else f"{self.target[0]}:{self.target[1]}"
        return {"address": f"{self.host}:{self.port}", "target": target, "sessions": len(self._tasks)} | (
            self.stats
        )

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def pump(source: asyncio.StreamReader, forward: Callable[[bytes], None]) -> None:
    """Hand every chunk ``source`` sends to ``forward`` until it ends."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await source.read(65536):
            forward(data)


async def end_all(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel a session's helper tasks and wait until they have ended."""
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def spawn_watched(coro: Coroutine[Any, Any, None], into: set[asyncio.Task[None]]) -> asyncio.Task[None]:
    """A task kept in ``into`` while it runs (a session's own helper task)."""
    task = asyncio.get_running_loop().create_task(coro)
    into.add(task)
    task.add_done_callback(into.discard)
    return task
