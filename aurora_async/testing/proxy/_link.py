"""One proxied connection (a *link*): the client's socket, its upstream socket to a backend, the bytes
on their way between them (delayed, paused or swallowed as the backend's faults say), and its teardown."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol

from ..mysql._catalog import aurora_rewriter
from ._backends import Backend, Listener
from ._mysql_wire import ClientPackets, reply_complete
from ._postgres_wire import READY_FOR_QUERY, is_commit_query
from ._tls_relay import TlsRelay

CLIENT, SERVER = 0, 1
_CONNECT_TIMEOUT = 10.0
_LINGER_RST = struct.pack("ii", 1, 0)


class LinkOwner(Protocol):
    """What a link needs from the engine that accepted it."""

    def route(self, listener: Listener) -> Backend | None:
        """The backend for a new connection to ``listener`` (None: none can take it)."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...


def _abort_with_rst(transport: asyncio.Transport) -> None:
    """Close ``transport`` at once, with RST rather than FIN, as a crashed host would look."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:
            pass
    transport.abort()


class _Side(asyncio.Protocol):
    """The protocol of one socket of a link: it only forwards events to the link."""

    def __init__(self, link: Link, index: int) -> None:
        self.link = link
        self.index = index

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.link.attach(self.index, transport)

    def data_received(self, data: bytes) -> None:
        self.link.received(self.index, data)

    def eof_received(self) -> bool:
        self.link.side_ended(self.index)
        return True  # keep the transport: it is closed after the pending bytes went the other way

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.side_ended(self.index)

    def pause_writing(self) -> None:
        self.link.set_backpressure(self.index, True)

    def resume_writing(self) -> None:
        self.link.set_backpressure(self.index, False)


class Link:
    """One client connection and its upstream connection to a backend."""

    def __init__(self, engine: LinkOwner, listener: Listener) -> None:
        self.engine = engine
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.sides = (_Side(self, CLIENT), _Side(self, SERVER))
        self.transports: list[asyncio.Transport | None] = [None, None]
        # queues[d] holds (due time, chunk or None for "close") on their way to side d
        self.queues: tuple[deque[tuple[float, bytes | None]], ...] = (deque(), deque())
        self.timers: list[asyncio.TimerHandle | None] = [None, None]
        self.ended = [False, False]
        self.backpressure = [False, False]
        self.backend: Backend | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.dead = False
        # drop_after_commit caught a COMMIT: the server's bytes since then, not yet parsed, and how
        # many bytes of the current message remain to be skipped
        self.swallowed: bytearray | None = None
        self.skipping = 0
        self.packets: ClientPackets | None = None  # MySQL links: the client's packets
        self.tls: TlsRelay | None = None  # MySQL links of a TLS backend, once the client asked for TLS

    # -- events from the sockets -------------------------------------------------------------------

    def attach(self, index: int, transport: asyncio.Transport) -> None:
        self.transports[index] = transport
        if index == CLIENT:
            self.backend = self.engine.route(self.listener)
            if self.backend is None:
                self.reset()
                return
            self.backend.links.add(self)
            if self.backend.protocol == "mysql":
                rewrite = aurora_rewriter(self.backend.name) if self.backend.aurora_mysql else None
                self.packets = ClientPackets(rewrite, end_tls=self.backend.tls is not None)
            if self.backend.mode == "up":
                self.start_connect()
        self.update_reading()
        self.schedule(SERVER)

    def received(self, index: int, data: bytes) -> None:
        """Bytes read from side ``index``: on to the other side, unless an armed fault takes them."""
        if self.tls is not None:
            self.received_tls(index, data)
            return
        self.forward(index, data)
        packets = self.packets
        if packets is not None and packets.tls_start is not None and self.tls is None:
            self.begin_tls(packets.tls_start)

    def begin_tls(self, client_bytes: bytes) -> None:
        """The client asked for TLS (its ``SSLRequest`` is on its way to the server): from here on
        both sockets carry TLS that this link ends and begins (``_tls_relay``)."""
        assert self.backend is not None and self.backend.tls is not None
        self.tls = TlsRelay(self.backend.tls, self.backend.host)
        self.send(SERVER, self.tls.server.take())  # our ClientHello, after the SSLRequest
        if client_bytes:
            self.received_tls(CLIENT, client_bytes)

    def received_tls(self, index: int, data: bytes) -> None:
        """Raw bytes of a TLS link: the plain text inside goes through as it would without TLS."""
        assert self.tls is not None
        end, other = (
            (self.tls.client, self.tls.server) if index == CLIENT else (self.tls.server, self.tls.client)
        )
        try:
            plain = end.feed(data)
        except ssl.SSLError:
            self.reset()  # a client that refused the certificate, or a broken session
            return
        self.send_raw(index, end.take())  # the handshake's answers
        if plain:
            self.forward(index, plain)

    def send_raw(self, to: int, chunk: bytes) -> None:
        if chunk:
            self.send(to, chunk)

    def forward(self, index: int, data: bytes) -> None:
        """Bytes (plain text) from side ``index``: on to the other side, unless an armed fault takes
        them."""
        if index == SERVER:
            if self.swallowed is not None:
                self.swallow(data)
                return
        elif self.packets is not None:
            data, commit = self.packets.feed(data)
            if commit and self.backend is not None and self.swallowed is None:
                self.spring(self.backend)
            if not data:
                return
        elif self.backend is not None and self.backend.armed is not None and self.swallowed is None:
            self.catch_commit(data)
        self.send_plain(1 - index, data)

    def send_plain(self, to: int, data: bytes) -> None:
        """Plain text to side ``to``: encrypted first on a TLS link."""
        if self.tls is None:
            self.send(to, data)
            return
        end = self.tls.client if to == CLIENT else self.tls.server
        end.write(data)
        self.send_raw(to, end.take())

    def catch_commit(self, chunk: bytes) -> None:
        """The backend is armed: does this client chunk spring the trap?"""
        assert self.backend is not None
        if is_commit_query(chunk):
            self.spring(self.backend)

    def spring(self, backend: Backend) -> None:
        """A COMMIT is on its way to the server: swallow the answer if the backend is armed."""
        if backend.armed == "drop_after_commit":
            backend.armed = None
            self.swallowed = bytearray()

    def swallow(self, data: bytes) -> None:
        """Discard the server's answer to a caught COMMIT; once its ReadyForQuery went by, drop the
        client. Assumes the answer starts on a message boundary, as it does when the client waited for
        the previous ReadyForQuery before sending COMMIT."""
        buffer = self.swallowed
        assert buffer is not None
        buffer += data
        if self.packets is not None:  # MySQL: one OK or ERR packet
            if reply_complete(buffer):
                self.drop_client()
            return
        while True:
            if self.skipping:
                skipped = min(self.skipping, len(buffer))
                del buffer[:skipped]
                self.skipping -= skipped
                if self.skipping:
                    return
            if len(buffer) < 5:
                return
            (length,) = struct.unpack_from("!i", buffer, 1)
            if length < 4:  # not PostgreSQL's protocol after all: stop waiting for an end
                self.drop_client()
                return
            if buffer[0] == READY_FOR_QUERY:
                if len(buffer) >= 1 + length:
                    self.drop_client()
                return
            self.skipping = 1 + length

    def drop_client(self) -> None:
        """End a caught COMMIT's link: RST to the client, an ordinary close to the server."""
        self.reset(close_server=True)

    def send(self, to: int, chunk: bytes | None) -> None:
        if self.dead:
            return
        backend = self.backend
        transport = self.transports[to]
        if (
            chunk is not None
            and backend is not None
            and backend.flowing
            and backend.delay == 0
            and transport is not None
            and not self.queues[to]
        ):
            transport.write(chunk)
            return
        delay = backend.delay if backend is not None else 0.0
        self.queues[to].append((self.loop.time() + delay, chunk))
        self.schedule(to)

    def side_ended(self, index: int) -> None:
        if self.dead or self.ended[index]:
            return
        if index == SERVER and self.swallowed is not None:
            self.drop_client()  # the server left before it finished answering the COMMIT
            return
        self.ended[index] = True
        other = 1 - index
        if self.transports[other] is None:
            # the client left before the upstream connection existed
            self.reset()
            return
        self.send(other, None)

    def set_backpressure(self, index: int, on: bool) -> None:
        self.backpressure[index] = on
        self.update_reading()

    # -- flow control ------------------------------------------------------------------------------

    def update_reading(self) -> None:
        if self.dead or self.backend is None:
            return
        for index, transport in enumerate(self.transports):
            if transport is None or self.ended[index] or transport.is_closing():
                continue
            if self.backend.flowing and not self.backpressure[1 - index]:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def schedule(self, to: int) -> None:
        if self.dead or self.timers[to] is not None or not self.queues[to]:
            return
        if self.backend is None or not self.backend.flowing or self.transports[to] is None:
            return
        due = self.queues[to][0][0]
        self.timers[to] = self.loop.call_at(due, self.drain, to)

    def drain(self, to: int) -> None:
        self.timers[to] = None
        transport = self.transports[to]
        if self.dead or transport is None or self.backend is None or not self.backend.flowing:
            return
        now = self.loop.time()
        queue = self.queues[to]
        while queue and queue[0][0] <= now:
            _, chunk = queue.popleft()
            if chunk is None:
                transport.close()
                self.finish_if_done()
                return
            transport.write(chunk)
        self.schedule(to)

    def finish_if_done(self) -> None:
        if all(t is None or t.is_closing() for t in self.transports):
            self.forget()

    def resume(self) -> None:
        """The backend became ``up`` again: connect if we never did, let bytes flow."""
        if self.transports[SERVER] is None and self.connect_task is None:
            self.start_connect()
        self.update_reading()
        self.schedule(CLIENT)
        self.schedule(SERVER)

    def pause(self) -> None:
        for index in (CLIENT, SERVER):
            timer = self.timers[index]
            if timer is not None:
                timer.cancel()
                self.timers[index] = None
        self.update_reading()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start_connect(self) -> None:
        self.connect_task = self.engine.spawn(self.connect_upstream())

    async def connect_upstream(self) -> None:
        assert self.backend is not None
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                await self.loop.create_connection(
                    lambda: self.sides[SERVER], self.backend.host, self.backend.port
                )
        except (OSError, TimeoutError):
            self.reset()

    def reset(self, *, close_server: bool = False) -> None:
        """Tear the link down with RST on both sockets, as a crashed host would look; with
        ``close_server`` the server's socket is closed normally instead (its session ends cleanly)."""
        if self.dead:
            return
        self.dead = True
        for index, transport in enumerate(self.transports):
            if transport is None:
                continue
            if index == SERVER and close_server:
                transport.close()
            else:
                _abort_with_rst(transport)
        if self.connect_task is not None and not self.connect_task.done():
            self.connect_task.cancel()
        self.pause()
        for queue in self.queues:
            queue.clear()
        self.forget()

    def forget(self) -> None:
        self.dead = True
        if self.backend is not None:
            self.backend.links.discard(self)
