"""The PostgreSQL side of the simulated RDS Proxy (see ``_rds_proxy``): one client connection, pinned to
one backend connection, moved to the new writer when its backend is lost while it is idle.

The proxy reads the server's messages (type byte, length) to know when the client is idle: the last
``ReadyForQuery`` said "idle, no transaction" (``I``) and the client has sent nothing since. To log in
to a new writer it replays the client's ``StartupMessage`` and answers the server's authentication
request itself (trust, cleartext, MD5 or SCRAM-SHA-256) with the user's secret.

A client connection that has made session state the proxy cannot carry to another backend is
*pinned*, as RDS Proxy pins it, and closed rather than moved: a named prepared statement (asyncpg
prepares every statement under a name unless ``statement_cache_size=0``), or a ``SET``, ``PREPARE``,
``LISTEN``, ``DECLARE`` or ``CREATE TEMP`` statement.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import struct

from ._rds_proxy import RdsProxy, Streams, end_all, pump, spawn_watched

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
IDLE = b"I"
_PINS = re.compile(rb"\s*(SET\s+(?!LOCAL\b)|PREPARE\b|LISTEN\b|DECLARE\b|CREATE\s+TEMP)", re.I)


class LoginFailed(Exception):
    """The new backend refused the replayed login."""


class PgProxySession:
    """One client connection of the proxy (see the module docstring)."""

    def __init__(self, proxy: RdsProxy, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter):
        self.proxy = proxy
        self.client_reader = client_reader
        self.client = client
        self.up: Streams | None = None
        self.pending = bytearray()  # what the client sent while it had no backend
        self.status: bytes | None = None  # of the last ReadyForQuery
        self.busy = False  # the client sent something since the last ReadyForQuery
        self.client_ended = False
        self.pinned = False  # session state only this backend has
        self.startup = b""
        self.user = ""
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        startup = await self._read_startup()
        if startup is None:
            return
        self.startup = startup
        first = await self.proxy.open_writer(self.proxy.deadline())
        if first is None:
            return
        self.up = first
        first[1].write(startup)  # the first login passes through: the server checks the password
        spawn_watched(self._from_client(), self._tasks)
        try:
            while True:
                await self._relay()
                if self.client_ended:
                    return
                if not self._idle():
                    self.proxy.stats["dropped"] += 1
                    return
                if not await self._reattach():
                    self.proxy.stats["dropped"] += 1
                    return
                self.proxy.stats["reattached"] += 1
        finally:
            if self.up is not None:
                self.proxy.disown(self.up[1])
            await end_all(self._tasks)

    def _idle(self) -> bool:
        return self.status == IDLE and not self.busy and not self.pending and not self.pinned

    async def _read_startup(self) -> bytes | None:
        while True:
            header = await self.client_reader.readexactly(8)
            length, code = struct.unpack("!ii", header)
            body = await self.client_reader.readexactly(length - 8)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.client.write(b"N")  # plain text only
                continue
            if code == CANCEL_REQUEST:
                return None
            fields = body.split(b"\x00")
            params = dict(zip(fields[0::2], fields[1::2], strict=False))
            self.user = params.get(b"user", b"").decode()
            return header + body

    async def _from_client(self) -> None:
        buffered = bytearray()

        def forward(data: bytes) -> None:
            self.busy = True
            buffered.extend(data)
            while len(buffered) >= 5:  # look at each whole message for what pins the session
                end = 1 + struct.unpack("!i", buffered[1:5])[0]
                if len(buffered) < end:
                    break
                kind, body = buffered[:1], bytes(buffered[5:end])
                if kind == b"X":  # Terminate: the backend's close that follows is the client's own
                    self.client_ended = True
                if (kind == b"P" and not body.startswith(b"\x00")) or (kind == b"Q" and _PINS.match(body)):
                    self.pinned = True
                del buffered[:end]
            if self.up is None:
                self.pending += data
            else:
                self.up[1].write(data)

        await pump(self.client_reader, forward)
        self.client_ended = True
        if self.up is not None:
            self.up[1].transport.abort()

    async def _relay(self) -> None:
        """Pass the backend's messages to the client until the backend connection ends."""
        assert self.up is not None
        reader = self.up[0]
        try:
            while True:
                header = await reader.readexactly(5)
                body = await reader.readexactly(struct.unpack("!i", header[1:])[0] - 4)
                kind = header[:1]
                if kind == b"E" and self._idle():
                    continue  # a backend going away (57P01) says so to an idle client: RDS Proxy does not
                self.client.write(header + body)
                await self.client.drain()
                if kind == b"Z":
                    self.status, self.busy = body[:1], False
        except (OSError, asyncio.IncompleteReadError):
            pass
        self.proxy.disown(self.up[1])
        self.up = None

    async def _reattach(self) -> bool:
        """Log in to the writer as the client's user and go on there; False if that cannot be done
        within the proxy's ``reattach_timeout``."""
        proxy = self.proxy
        secret = proxy.secrets.get(self.user)
        deadline = proxy.deadline()
        while True:
            up = await proxy.open_writer(deadline)
            if up is None:
                return False
            try:
                await _log_in(up, self.startup, self.user, secret)
            except LoginFailed:
                proxy.disown(up[1])
                return False
            except (OSError, asyncio.IncompleteReadError):
                proxy.disown(up[1])  # the writer went away during the login: wait for the next
                continue
            self.up = up
            if self.pending:
                up[1].write(bytes(self.pending))
                self.pending.clear()
            return True


async def _log_in(up: Streams, startup: bytes, user: str, secret: str | None) -> None:
    reader, writer = up
    writer.write(startup)
    scram: _Scram | None = None
    while True:
        header = await reader.readexactly(5)
        body = await reader.readexactly(struct.unpack("!i", header[1:])[0] - 4)
        kind = header[:1]
        if kind == b"E":
            raise LoginFailed(body.decode(errors="replace"))
        if kind == b"Z":
            return
        if kind != b"R":
            continue  # ParameterStatus, BackendKeyData, notices
        code = struct.unpack("!i", body[:4])[0]
        if code == 0:
            continue
        if secret is None:
            raise LoginFailed(f"no secret for user {user!r}")
        if code == 3:  # cleartext
            _send(writer, b"p", secret.encode() + b"\x00")
        elif code == 5:  # MD5
            inner = hashlib.md5(secret.encode() + user.encode()).hexdigest().encode()
            _send(writer, b"p", b"md5" + hashlib.md5(inner + body[4:8]).hexdigest().encode() + b"\x00")
        elif code == 10:  # SASL: SCRAM-SHA-256
            scram = _Scram(secret)
            first = scram.client_first()
            _send(writer, b"p", b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first)) + first)
        elif code == 11 and scram is not None:
            _send(writer, b"p", scram.client_final(body[4:]))
        elif code != 12:
            raise LoginFailed(f"authentication request {code} is not simulated")


def _send(writer: asyncio.StreamWriter, kind: bytes, body: bytes) -> None:
    writer.write(kind + struct.pack("!i", len(body) + 4) + body)


class _Scram:
    """The client side of SCRAM-SHA-256 (RFC 5802, 7677), without channel binding."""

    def __init__(self, password: str) -> None:
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"

    def client_first(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def client_final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(part.split("=", 1) for part in text.split(","))
        salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        without_proof = f"c=biws,r={attrs['r']}"
        message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = hmac.digest(hashlib.sha256(client_key).digest(), message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
