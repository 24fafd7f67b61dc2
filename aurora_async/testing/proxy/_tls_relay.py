"""TLS ended and begun again inside the fault proxy, for MySQL links of a cluster with ``tls=True``.

A MySQL client asks for TLS in the middle of the connection: after the server's greeting it sends a
32-byte ``SSLRequest`` packet (its capabilities with ``CLIENT_SSL``) and starts a TLS handshake on
the same socket. A proxy that only forwarded the encrypted bytes could no longer read the client's
packets, and the simulator must (the Aurora catalog rewrite, ``drop_after_commit``). So the link
forwards the ``SSLRequest`` to the server and then holds two TLS sessions: one with the client, as a
server presenting the cluster's certificate (valid for every endpoint and instance address, signed by
the simulator's CA, so the client verifies certificate and host name as it would on Aurora), and one
with the database server, as a client verifying the server's certificate against the same CA. The
packets in between are plain text inside the proxy only; on both sockets they are encrypted, and the
server sees a TLS session (``REQUIRE SSL`` and ``Ssl_cipher`` work). Sequence ids are unchanged.

Both sessions run on memory buffers (``ssl.MemoryBIO``), so the link's faults (delay, blackhole,
reset) keep applying to the encrypted bytes on the wire exactly as to plain ones.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsFiles:
    """The cluster's certificate and key (what the proxy presents) and its CA (what it trusts)."""

    cert: str
    key: str
    ca: str

    def contexts(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        """(towards clients: a server context; towards servers: a verifying client context)."""
        return _contexts(self)


@functools.cache
def _contexts(files: TlsFiles) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    facing_clients = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    facing_clients.load_cert_chain(files.cert, files.key)
    facing_servers = ssl.create_default_context(cafile=files.ca)  # certificate and host name
    return facing_clients, facing_servers


class TlsEnd:
    """One TLS session on memory buffers: raw bytes in, plain text out, and the other way round."""

    def __init__(self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(
            self.incoming, self.outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self.handshaken = False
        self.unsent = bytearray()  # plain text written before the handshake finished

    def start(self) -> None:
        """Begin the handshake (the client side's first flight goes to :meth:`take`)."""
        self._handshake()

    def feed(self, raw: bytes) -> bytes:
        """Raw bytes from the peer; returns the plain text they complete. Raises ``ssl.SSLError``
        when the peer breaks the protocol (or refuses our certificate)."""
        self.incoming.write(raw)
        if not self.handshaken:
            self._handshake()
            if not self.handshaken:
                return b""
        plain = bytearray()
        while True:
            try:
                chunk = self.obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            plain += chunk
        return bytes(plain)

    def write(self, plain: bytes) -> None:
        if not self.handshaken:
            self.unsent += plain
            return
        self.obj.write(plain)

    def take(self) -> bytes:
        """Raw bytes to send to the peer."""
        return self.outgoing.read()

    def _handshake(self) -> None:
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        self.handshaken = True
        if self.unsent:
            self.obj.write(bytes(self.unsent))
            self.unsent.clear()


class TlsRelay:
    """The link's two TLS sessions: with the client (``client``) and with the server (``server``)."""

    def __init__(self, files: TlsFiles, server_host: str) -> None:
        facing_clients, facing_servers = files.contexts()
        self.client = TlsEnd(facing_clients, server_side=True, server_hostname=None)
        self.server = TlsEnd(facing_servers, server_side=False, server_hostname=server_host)
        self.server.start()
