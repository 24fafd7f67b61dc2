"""The MySQL side of the simulated RDS Proxy (see ``_rds_proxy``): each client connection is piped to a
backend connection to the writer, and closed when that backend connection is lost.

Unlike the PostgreSQL side it does not move idle client connections to the new writer: it treats every
client connection as pinned (RDS Proxy pins a MySQL session that changed its state, and aiomysql sets
``autocommit`` on every new connection), so what an application sees is the pinned case: its
connection fails, and a new one reaches the new writer through the same endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib

from ._rds_proxy import RdsProxy, end_all, pump, spawn_watched


class MySqlProxySession:
    """One client connection of the proxy (see the module docstring)."""

    def __init__(self, proxy: RdsProxy, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter):
        self.proxy = proxy
        self.client_reader = client_reader
        self.client = client

    async def run(self) -> None:
        up = await self.proxy.open_writer(self.proxy.deadline())
        if up is None:
            return
        up_reader, up_writer = up
        tasks: set[asyncio.Task[None]] = set()
        quit_sent = False

        def forward(data: bytes) -> None:
            nonlocal quit_sent
            quit_sent = quit_sent or data == b"\x01\x00\x00\x00\x01"  # COM_QUIT: the client's own close
            up_writer.write(data)

        client_side = spawn_watched(pump(self.client_reader, forward), tasks)
        try:
            with contextlib.suppress(OSError):
                while data := await up_reader.read(65536):
                    self.client.write(data)
                    await self.client.drain()
            if not client_side.done() and not quit_sent:  # the backend went away under a live client
                self.proxy.stats["dropped"] += 1
        finally:
            self.proxy.disown(up_writer)
            await end_all(tasks)
