"""Wire-level probes that log in as nobody: whether a server offers TLS, and whether it accepts a
session without it, asked in the first bytes of each protocol (no password is ever sent)."""

from __future__ import annotations

import asyncio
import ssl
import struct
from dataclasses import dataclass
from typing import Any

_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_PG_PROTOCOL_3 = 196608
_MYSQL_CLIENT_SSL = 0x800


@dataclass(frozen=True)
class ServerTls:
    """What a server said about TLS before any login: ``offers_tls`` (None: could not tell) and
    ``accepts_plaintext`` (None: not asked or no clear answer); ``note`` says why when unknown."""

    offers_tls: bool | None
    accepts_plaintext: bool | None
    note: str | None = None


async def _exchange(host: str, port: int, send: bytes | None, size: int, timeout: float) -> bytes:
    """Connect, send ``send`` (if any), read up to ``size`` bytes of the first answer, close."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            if send is not None:
                writer.write(send)
                await writer.drain()
            return await reader.read(size)
        finally:
            writer.transport.abort()


async def pg_server_tls(
    host: str, port: int, user: str | None, database: str | None, timeout: float
) -> ServerTls:
    """PostgreSQL: an ``SSLRequest`` (answered ``S`` or ``N``), then, on a second connection, a start-up
    message without TLS naming ``user`` and ``database`` only: an authentication request means the
    server would go on in plain text; error 28000 means it refuses sessions without TLS
    (``rds.force_ssl``, ``hostssl`` rules). Nothing else is sent: no password."""
    try:
        answer = await _exchange(host, port, _PG_SSL_REQUEST, 1, timeout)
    except (OSError, TimeoutError) as exc:
        return ServerTls(None, None, f"could not ask: {type(exc).__name__}")
    offers = {b"S": True, b"N": False}.get(answer[:1])
    if user is None:
        return ServerTls(offers, None, "no user to ask with")
    params = b"".join(
        k.encode() + b"\0" + v.encode() + b"\0"
        for k, v in (
            ("user", user),
            ("database", database or user),
            ("application_name", "aurora_async doctor"),
        )
    )
    body = struct.pack("!i", _PG_PROTOCOL_3) + params + b"\0"
    try:
        reply = await _exchange(host, port, struct.pack("!i", len(body) + 4) + body, 4096, timeout)
    except (OSError, TimeoutError) as exc:
        return ServerTls(offers, None, f"could not ask: {type(exc).__name__}")
    if reply[:1] == b"R":
        return ServerTls(offers, True)
    if reply[:1] == b"E":
        fields = _pg_error_fields(reply[5:])
        if fields.get("C") == "28000":
            return ServerTls(offers, False, fields.get("M"))
        return ServerTls(offers, None, fields.get("M"))
    return ServerTls(offers, None, "unexpected answer")


def _pg_error_fields(payload: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


async def mysql_server_tls(host: str, port: int, timeout: float) -> ServerTls:
    """MySQL: the server's greeting says whether it can switch to TLS (``CLIENT_SSL``). Whether it
    accepts plain-text sessions shows only after a login, which this probe does not attempt."""
    try:
        greeting = await _exchange(host, port, None, 4096, timeout)
    except (OSError, TimeoutError) as exc:
        return ServerTls(None, None, f"could not ask: {type(exc).__name__}")
    payload = greeting[4:]
    if not payload or payload[0] != 10:  # protocol 10; 0xff: an error packet (host blocked, ...)
        return ServerTls(None, None, "no greeting")
    end = payload.find(b"\0", 1)
    capabilities_at = end + 1 + 4 + 8 + 1  # version, NUL, thread id, salt part 1, filler
    if end < 0 or len(payload) < capabilities_at + 2:
        return ServerTls(None, None, "short greeting")
    (capabilities,) = struct.unpack_from("<H", payload, capabilities_at)
    return ServerTls(
        bool(capabilities & _MYSQL_CLIENT_SSL), None, "not asked: it would take a login without TLS"
    )


def negotiated_tls(conn: Any) -> ssl.SSLObject | None:
    """The TLS session of a driver connection (asyncpg's or aurora_async's aiomysql one), if any."""
    transports = (
        getattr(conn, "_transport", None),
        getattr(getattr(conn, "_writer", None), "transport", None),
    )
    for transport in transports:
        if transport is not None:
            found = transport.get_extra_info("ssl_object")
            if isinstance(found, (ssl.SSLObject, ssl.SSLSocket)):
                return found  # type: ignore[return-value]
    return None
