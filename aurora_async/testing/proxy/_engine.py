"""The fault proxy: forwards TCP connections to database servers and injects network faults.

It runs in its own process (see ``_main``) so that a test's event loop, a blocking client or a
benchmark never shares CPU time or scheduling with the network it is being tested against.

Vocabulary:

- a *backend* is one database server (host, port) with a fault mode: ``up`` (bytes flow), ``down``
  (existing connections are reset with RST, new connections are refused) or ``blackhole`` (bytes stop in
  both directions, sockets stay open, new connections are accepted but go nowhere), plus an optional
  one-way ``delay`` added to every chunk in each direction;
- a *listener* is an address clients connect to; it routes each new connection to one of its target
  backends (round robin over the ones not ``down``). An instance endpoint has one target; the writer
  cluster endpoint has the backend its "DNS" currently names; the reader endpoint has several. A
  listener whose targets are all down stops listening, so connects are refused as they would be;
- a *link* is one proxied connection. It belongs to the backend it was routed to, so every fault of
  that backend applies to it, whichever listener accepted it;
- an *armed* fault is a one-shot trap on a backend. ``drop_after_commit``: the first COMMIT that any
  link of the backend carries afterwards reaches the server and is executed, but the server's answer is
  swallowed and the client's socket is reset (RST) once the server said it is ready for the next
  query, so the transaction commits and the client cannot know. Only links of an armed backend look at
  the bytes they carry, and only while it is armed. The proxy sees bytes, not TLS records: a COMMIT
  sent over TLS goes unnoticed, as does one sent with the extended query protocol; the simulator's
  servers run without TLS, so clients talk plain text to them.

A backend speaks ``postgresql`` (the default) or ``mysql``. The links of a MySQL backend follow the
client's packets (see ``_mysql_wire``): that is how they recognise a COMMIT, and, for a backend
with ``aurora_mysql`` set, how they rewrite the Aurora MySQL catalog SQL that MariaDB cannot run as
sent (the substitutions are listed in ``mysql._catalog``). The server's answer to a caught MySQL COMMIT
is its one OK or ERR packet.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import sys
from collections import deque
from typing import Any, Literal

from ..mysql._catalog import aurora_rewriter
from ._mysql_wire import ClientPackets, is_commit_packet, reply_complete

Mode = Literal["up", "down", "blackhole"]
MODES: tuple[Mode, ...] = ("up", "down", "blackhole")
Fault = Literal["drop_after_commit"]
FAULTS: tuple[Fault, ...] = ("drop_after_commit",)
WireProtocol = Literal["postgresql", "mysql"]
PROTOCOLS: tuple[WireProtocol, ...] = ("postgresql", "mysql")

CLIENT, SERVER = 0, 1
_CONNECT_TIMEOUT = 10.0
_LINGER_RST = struct.pack("ii", 1, 0)

# PostgreSQL's frontend/backend protocol: a message is a type byte, then an int32 length that counts
# itself and the body, but not the type byte.
_QUERY = ord("Q")  # simple query: the body is the NUL-terminated SQL text
_READY_FOR_QUERY = ord("Z")  # the end of the server's answer to a query: the body is one status byte
_COMMIT_STATEMENTS = frozenset(
    {"commit", "end", "commit transaction", "commit work", "end transaction", "end work"}
)
_MAX_COMMIT_MESSAGE = 256  # longer simple queries are not worth decoding: they are no bare COMMIT


def is_commit_query(chunk: bytes, protocol: WireProtocol = "postgresql") -> bool:
    """Whether ``chunk`` begins with a whole query message whose SQL is a bare COMMIT: PostgreSQL's
    simple query (``COMMIT`` or ``END``), or MySQL's ``COM_QUERY`` packet."""
    if protocol == "mysql":
        return is_commit_packet(chunk)
    if len(chunk) < 6 or chunk[0] != _QUERY:
        return False
    (length,) = struct.unpack_from("!i", chunk, 1)
    if not 5 <= length <= _MAX_COMMIT_MESSAGE or len(chunk) < 1 + length or chunk[length] != 0:
        return False
    sql = chunk[5:length].decode("utf-8", "replace")
    return " ".join(sql.strip().lower().removesuffix(";").split()) in _COMMIT_STATEMENTS


def _abort_with_rst(transport: asyncio.Transport) -> None:
    """Close ``transport`` at once, with RST rather than FIN, as a crashed host would look."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:
            pass
    transport.abort()


class ProxyCommandError(Exception):
    """A control command was malformed or could not be carried out."""


class Backend:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        protocol: WireProtocol = "postgresql",
        aurora_mysql: bool = False,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.protocol = protocol
        self.aurora_mysql = aurora_mysql
        self.mode: Mode = "up"
        self.delay = 0.0
        self.armed: Fault | None = None  # a one-shot fault, disarmed by the link it catches
        self.links: set[_Link] = set()

    @property
    def flowing(self) -> bool:
        return self.mode == "up"


class Listener:
    def __init__(self, name: str, host: str, port: int, targets: list[str]) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.targets = targets
        self.server: asyncio.Server | None = None
        self.next_index = 0
        self.pending: tuple[float, list[str]] | None = None
        self.pending_timer: asyncio.TimerHandle | None = None
        self.accepted = 0


class _Side(asyncio.Protocol):
    """The protocol of one socket of a link: it only forwards events to the link."""

    def __init__(self, link: _Link, index: int) -> None:
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


class _Link:
    """One client connection and its upstream connection to a backend."""

    def __init__(self, engine: ProxyEngine, listener: Listener) -> None:
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
                self.packets = ClientPackets(rewrite)
            if self.backend.mode == "up":
                self.start_connect()
        self.update_reading()
        self.schedule(SERVER)

    def received(self, index: int, data: bytes) -> None:
        """Bytes read from side ``index``: on to the other side, unless an armed fault takes them."""
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
        self.send(1 - index, data)

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
            if buffer[0] == _READY_FOR_QUERY:
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


class ProxyEngine:
    """All backends and listeners of one simulator, driven by JSON commands (see :meth:`handle`)."""

    def __init__(self) -> None:
        self.backends: dict[str, Backend] = {}
        self.listeners: dict[str, Listener] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        # a scheduled route change and a command may both want a listener to (re)bind: one at a time
        self.reconciling = asyncio.Lock()

    # -- helpers -----------------------------------------------------------------------------------

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def route(self, listener: Listener) -> Backend | None:
        candidates = [
            self.backends[name]
            for name in listener.targets
            if name in self.backends and self.backends[name].mode != "down"
        ]
        if not candidates:
            return None
        backend = candidates[listener.next_index % len(candidates)]
        listener.next_index += 1
        listener.accepted += 1
        return backend

    def _backend(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            raise ProxyCommandError(f"unknown backend {name!r}") from None

    def _listener(self, name: str) -> Listener:
        try:
            return self.listeners[name]
        except KeyError:
            raise ProxyCommandError(f"unknown listener {name!r}") from None

    async def reconcile(self, listener: Listener) -> None:
        """Listen exactly when at least one target can take connections."""
        async with self.reconciling:
            await self._reconcile(listener)

    async def _reconcile(self, listener: Listener) -> None:
        wanted = any(
            name in self.backends and self.backends[name].mode != "down" for name in listener.targets
        )
        if wanted and listener.server is None:

            def factory() -> asyncio.Protocol:
                return _Link(self, listener).sides[CLIENT]

            try:
                listener.server = await asyncio.get_running_loop().create_server(
                    factory, listener.host, listener.port, backlog=1024, reuse_address=True
                )
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ProxyCommandError(
                        f"address {listener.host}:{listener.port} is already in use"
                    ) from None
                raise ProxyCommandError(f"cannot listen on {listener.host}:{listener.port}: {exc}") from None
            sock = listener.server.sockets[0]
            listener.port = sock.getsockname()[1]
        elif not wanted and listener.server is not None:
            listener.server.close()  # refuses new connects; accepted links live on
            listener.server = None

    async def reconcile_all(self) -> None:
        for listener in list(self.listeners.values()):
            await self.reconcile(listener)

    def _apply_pending_route(self, listener: Listener) -> None:
        listener.pending_timer = None
        if listener.pending is not None:
            listener.targets = listener.pending[1]
            listener.pending = None
            self.spawn(self._reconcile_logged(listener))

    async def _reconcile_logged(self, listener: Listener) -> None:
        try:
            await self.reconcile(listener)
        except ProxyCommandError as exc:  # nobody awaits a scheduled change: say it in the log
            sys.stderr.write(f"scheduled route change of {listener.name}: {exc}\n")
            sys.stderr.flush()

    # -- commands ----------------------------------------------------------------------------------

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "backend":
            name = str(request["name"])
            protocol = request.get("protocol", "postgresql")
            if protocol not in PROTOCOLS:
                raise ProxyCommandError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
            aurora_mysql = bool(request.get("aurora_mysql", False))
            backend = self.backends.get(name)
            if backend is None:
                backend = Backend(name, str(request["host"]), int(request["port"]), protocol, aurora_mysql)
                self.backends[name] = backend
            else:
                backend.host, backend.port = str(request["host"]), int(request["port"])
                backend.protocol, backend.aurora_mysql = protocol, aurora_mysql
            await self.reconcile_all()
            return {}
        if op == "listen":
            name = str(request["name"])
            if name in self.listeners:
                raise ProxyCommandError(f"listener {name!r} exists already")
            listener = Listener(name, str(request["host"]), int(request["port"]), list(request["targets"]))
            await self.reconcile(listener)
            self.listeners[name] = listener
            return {"port": listener.port}
        if op == "route":
            listener = self._listener(str(request["name"]))
            targets = [str(t) for t in request["targets"]]
            if listener.pending_timer is not None:
                listener.pending_timer.cancel()
                listener.pending_timer = None
            listener.pending = None
            at = request.get("at")
            if at is None:
                listener.targets = targets
                await self.reconcile(listener)
            else:
                listener.pending = (float(at), targets)
                listener.pending_timer = asyncio.get_running_loop().call_at(
                    float(at), self._apply_pending_route, listener
                )
            return {}
        if op == "mode":
            backend = self._backend(str(request["name"]))
            mode = request["mode"]
            if mode not in MODES:
                raise ProxyCommandError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
            backend.mode = mode
            for link in list(backend.links):
                if mode == "down":
                    link.reset()
                elif mode == "blackhole":
                    link.pause()
                else:
                    link.resume()
            await self.reconcile_all()
            return {}
        if op == "delay":
            backend = self._backend(str(request["name"]))
            seconds = float(request["seconds"])
            if seconds < 0:
                raise ProxyCommandError("delay must be >= 0")
            backend.delay = seconds
            return {}
        if op == "arm":
            backend = self._backend(str(request["name"]))
            fault = request.get("fault")
            if fault not in FAULTS:
                raise ProxyCommandError(f"fault must be one of {', '.join(FAULTS)}, not {fault!r}")
            backend.armed = fault
            return {}
        if op == "reset":
            backend = self._backend(str(request["name"]))
            for link in list(backend.links):
                link.reset()
            return {}
        if op == "remove_listener":
            removed = self.listeners.pop(str(request["name"]), None)
            if removed is not None:
                if removed.pending_timer is not None:
                    removed.pending_timer.cancel()
                if removed.server is not None:
                    removed.server.close()
            return {}
        if op == "remove_backend":
            backend = self.backends.pop(str(request["name"]), None)
            if backend is not None:
                for link in list(backend.links):
                    link.reset()
            await self.reconcile_all()
            return {}
        if op == "status":
            return self.status()
        raise ProxyCommandError(f"unknown operation {op!r}")

    def status(self) -> dict[str, Any]:
        return {
            "backends": {
                b.name: {
                    "mode": b.mode,
                    "delay": b.delay,
                    "armed": b.armed,
                    "links": len(b.links),
                    "protocol": b.protocol,
                }
                for b in self.backends.values()
            },
            "listeners": {
                entry.name: {
                    "address": f"{entry.host}:{entry.port}",
                    "listening": entry.server is not None,
                    "targets": entry.targets,
                    "pending": entry.pending[1] if entry.pending else None,
                    "accepted": entry.accepted,
                }
                for entry in self.listeners.values()
            },
        }

    async def close(self) -> None:
        for listener in self.listeners.values():
            if listener.pending_timer is not None:
                listener.pending_timer.cancel()
            if listener.server is not None:
                listener.server.close()
        for backend in self.backends.values():
            for link in list(backend.links):
                link.reset()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
