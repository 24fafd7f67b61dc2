"""The fault proxy's engine: it forwards TCP connections to database servers and injects network faults,
driven by JSON commands (backends and listeners: ``_backends``; one proxied connection: ``_link``).

It runs in its own process (see ``_main``) so that a test's event loop, a blocking client or a
benchmark never shares CPU time or scheduling with the network it is being tested against.

Vocabulary:

- a *backend* is one database server (host, port) with a fault mode: ``up`` (bytes flow), ``down``
  (existing connections are reset with RST, new connections are refused) or ``blackhole`` (bytes stop in
  both directions, sockets stay open, new connections are accepted but go nowhere) or ``paused`` (an
  Aurora Serverless v2 instance scaled to zero: existing connections are reset; new connections are
  accepted and held, with nothing sent either way, until ``resume_seconds`` after the first connection
  attempt since the pause, when the backend turns ``up`` by itself and the held links connect to the
  server), plus an optional one-way ``delay`` added to every chunk in each direction;
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
  sent over TLS to a PostgreSQL server goes unnoticed, as does one sent with the extended query
  protocol (MySQL links of a TLS cluster read the plain text inside the TLS sessions, below).

A backend speaks ``postgresql`` (the default) or ``mysql``. The links of a MySQL backend follow the
client's packets (see ``_mysql_wire``): that is how they recognise a COMMIT, and, for a backend
with ``aurora_mysql`` set, how they rewrite the Aurora MySQL catalog SQL that MariaDB cannot run as
sent (the substitutions are listed in ``mysql._catalog``). The server's answer to a caught MySQL COMMIT
is its one OK or ERR packet. A MySQL backend given ``tls`` (certificate, key and CA files) ends the
TLS its clients ask for in the proxy and begins its own to the server (``_tls_relay``), so all of
this keeps working over TLS.
"""

from __future__ import annotations

import asyncio
import errno
import sys
from typing import Any

from ._backends import FAULTS, MODES, PROTOCOLS, Backend, Listener
from ._link import CLIENT, Link
from ._rds_proxy import RdsProxy, SessionFactory
from ._rds_proxy_mysql import MySqlProxySession
from ._rds_proxy_pg import PgProxySession
from ._tls_relay import TlsFiles

_PROXY_SESSIONS: dict[str, SessionFactory] = {"postgresql": PgProxySession, "mysql": MySqlProxySession}


class ProxyCommandError(Exception):
    """A control command was malformed or could not be carried out."""


class ProxyEngine:
    """All backends and listeners of one simulator, driven by JSON commands (see :meth:`handle`)."""

    def __init__(self) -> None:
        self.backends: dict[str, Backend] = {}
        self.listeners: dict[str, Listener] = {}
        self.rds_proxies: dict[str, RdsProxy] = {}
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
        if backend.mode == "paused" and backend.resume_timer is None:  # a connection attempt wakes it
            backend.resume_timer = asyncio.get_running_loop().call_later(
                backend.resume_seconds, self._resumed, backend
            )
        return backend

    def _resumed(self, backend: Backend) -> None:
        """A paused backend's resume is over: it is ``up``, and the links it held go to the server."""
        backend.resume_timer = None
        if backend.mode == "paused":
            backend.mode = "up"
            for link in list(backend.links):
                link.resume()

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
                return Link(self, listener).sides[CLIENT]

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
            self.spawn(self._reconcile_logged(listener, listener.pending))

    async def _reconcile_logged(self, listener: Listener, applied: tuple[float, list[str]]) -> None:
        """Listen (or stop) as a scheduled route change asks; the change stays pending in the status
        until then, so that a wait for the endpoints to settle does not end before the socket listens."""
        try:
            await self.reconcile(listener)
        except ProxyCommandError as exc:  # nobody awaits a scheduled change: say it in the log
            sys.stderr.write(f"scheduled route change of {listener.name}: {exc}\n")
            sys.stderr.flush()
        finally:
            if listener.pending is applied:  # (not replaced by a newer route meanwhile)
                listener.pending = None

    # -- commands ----------------------------------------------------------------------------------

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "backend":
            name = str(request["name"])
            protocol = request.get("protocol", "postgresql")
            if protocol not in PROTOCOLS:
                raise ProxyCommandError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
            aurora_mysql = bool(request.get("aurora_mysql", False))
            tls_files = request.get("tls")
            if tls_files is not None and protocol != "mysql":
                raise ProxyCommandError("tls (ending the clients' TLS in the proxy) is for mysql backends")
            tls = TlsFiles(**tls_files) if tls_files is not None else None
            backend = self.backends.get(name)
            if backend is None:
                host, port = str(request["host"]), int(request["port"])
                backend = Backend(name, host, port, protocol, aurora_mysql, tls=tls)
                self.backends[name] = backend
            else:
                backend.host, backend.port = str(request["host"]), int(request["port"])
                backend.protocol, backend.aurora_mysql, backend.tls = protocol, aurora_mysql, tls
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
            if mode == "paused":
                resume_seconds = float(request.get("resume_seconds", 15.0))
                if not 0 <= resume_seconds < 86400:
                    raise ProxyCommandError("resume_seconds must be >= 0 and less than a day")
                backend.resume_seconds = resume_seconds
            backend.cancel_resume()  # any mode change ends a pause, or starts a new one
            backend.mode = mode
            for link in list(backend.links):
                if mode in ("down", "paused"):  # a paused instance has no connections
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
                backend.cancel_resume()
                for link in list(backend.links):
                    link.reset()
            await self.reconcile_all()
            return {}
        if isinstance(op, str) and op.startswith("rds_proxy"):
            return await self._rds_proxy_command(op, request)
        if op == "status":
            return self.status()
        raise ProxyCommandError(f"unknown operation {op!r}")

    async def _rds_proxy_command(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        """``rds_proxy`` (start a simulated RDS Proxy endpoint), ``rds_proxy_route`` (the writer it
        connects to), ``rds_proxy_secret`` (a user's password, for moving idle client connections)."""
        name = str(request["name"])
        if op == "rds_proxy":
            protocol = str(request.get("protocol", "postgresql"))
            if name in self.rds_proxies or protocol not in _PROXY_SESSIONS:
                raise ProxyCommandError(f"cannot start RDS proxy {name!r} for {protocol!r}")
            proxy = RdsProxy(
                name,
                host=str(request["host"]),
                port=int(request["port"]),
                protocol=protocol,  # type: ignore[arg-type]
                reattach_timeout=float(request["reattach_timeout"]),
                session=_PROXY_SESSIONS[protocol],
            )
            try:
                port = await proxy.start()
            except OSError as exc:
                raise ProxyCommandError(f"cannot listen on {proxy.host}:{proxy.port}: {exc}") from None
            self.rds_proxies[name] = proxy
            return {"port": port}
        found = self.rds_proxies.get(name)
        if found is None:
            raise ProxyCommandError(f"unknown RDS proxy {name!r}")
        if op == "rds_proxy_route":
            found.target = (str(request["host"]), int(request["port"]))
        elif op == "rds_proxy_secret":
            found.secrets[str(request["user"])] = str(request["password"])
        else:
            raise ProxyCommandError(f"unknown operation {op!r}")
        return {}

    def status(self) -> dict[str, Any]:
        return {
            "backends": {
                b.name: {
                    "mode": b.mode,
                    "delay": b.delay,
                    "armed": b.armed,
                    "links": len(b.links),
                    # chunks on their way (held by a delay or a pause), in either direction
                    "in_flight": sum(len(queue) for link in b.links for queue in link.queues),
                    "protocol": b.protocol,
                    "resuming": b.resume_timer is not None,
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
            "rds_proxies": {name: proxy.status() for name, proxy in self.rds_proxies.items()},
        }

    async def close(self) -> None:
        for proxy in self.rds_proxies.values():
            await proxy.close()
        for listener in self.listeners.values():
            if listener.pending_timer is not None:
                listener.pending_timer.cancel()
            if listener.server is not None:
                listener.server.close()
        for backend in self.backends.values():
            backend.cancel_resume()
            for link in list(backend.links):
                link.reset()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
