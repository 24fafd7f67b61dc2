"""What the fault proxy understands of the MySQL client/server protocol.

A MySQL connection carries packets: a 3-byte little-endian payload length, a 1-byte sequence id, then
the payload. Each command the client sends starts a new exchange with sequence id 0, and its first
payload byte is the command (``COM_QUERY`` = 0x03 carries SQL text, as does ``COM_STMT_PREPARE`` =
0x16). The handshake before that never has a client packet with sequence id 0: the client's first
packet (sequence id 1) answers the server's greeting and names the capabilities it uses.

:class:`ClientPackets` follows the client's half of one connection, packet by packet: it hands each
``COM_QUERY`` / ``COM_STMT_PREPARE`` packet to an optional rewrite (fixing the length header), and says
when one is a bare ``COMMIT``. Packets of 16 MiB or more, and everything once the client asked for TLS
or compression, pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable

COM_QUERY = 0x03
COM_STMT_PREPARE = 0x16
MAX_PAYLOAD = 0xFFFFFF  # a packet this long is continued by the next one
CLIENT_COMPRESS = 0x20
CLIENT_SSL = 0x800
SSL_REQUEST_LENGTH = 32  # capabilities, max packet, charset, 23 zero bytes: no user name yet
_HEADER = 4
_MAX_COMMIT_PACKET = 64  # longer queries are not worth decoding: they are no bare COMMIT
_COMMIT_STATEMENTS = frozenset(
    {"commit", "commit work", "commit and no chain", "commit work and no chain", "commit no release"}
)


def is_commit_packet(packet: bytes) -> bool:
    """Whether ``packet`` (header and payload) is a whole ``COM_QUERY`` whose SQL is a bare COMMIT."""
    if len(packet) < _HEADER + 1 or packet[3] != 0 or packet[4] != COM_QUERY:
        return False
    length = int.from_bytes(packet[:3], "little")
    if length > _MAX_COMMIT_PACKET or len(packet) < _HEADER + length:
        return False
    sql = packet[_HEADER + 1 : _HEADER + length].decode("utf-8", "replace")
    return " ".join(sql.strip().lower().removesuffix(";").split()) in _COMMIT_STATEMENTS


def reply_complete(answer: bytes | bytearray) -> bool:
    """Whether ``answer`` holds the server's whole reply to a COMMIT: one OK or ERR packet."""
    if len(answer) < _HEADER:
        return False
    return len(answer) >= _HEADER + int.from_bytes(answer[:3], "little")


class ClientPackets:
    """The client-to-server bytes of one MySQL connection, framed into packets.

    :param rewrite: called with the SQL text of every ``COM_QUERY`` and ``COM_STMT_PREPARE``; returns
        the text the server gets (the same object when unchanged).
    :param end_tls: the proxy ends the client's TLS itself (``_tls_relay``): on an ``SSLRequest`` the
        parser forwards it and stops, keeping the bytes after it in :attr:`tls_start` (the start of
        the client's TLS handshake); it is then fed the plain text from inside the TLS session.
    """

    def __init__(self, rewrite: Callable[[bytes], bytes] | None = None, *, end_tls: bool = False) -> None:
        self.rewrite = rewrite
        self.end_tls = end_tls
        self.tls_start: bytes | None = None  # with end_tls: the client asked for TLS; what followed
        self.pending = bytearray()  # the start of a packet we must see whole
        self.passing = 0  # bytes of the current packet still to forward unexamined
        self.greeted = False  # saw the client's handshake response
        self.plain = True  # False once TLS or compression start: the bytes are no packets any more

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Take bytes from the client; return those to forward now, and whether they include a bare
        ``COMMIT`` query."""
        if not self.plain and not self.passing and not self.pending:
            return data, False
        buf: bytes | bytearray
        if self.pending:
            self.pending += data
            buf = self.pending
        else:
            buf = data
        out: list[bytes] = []
        commit = False
        pos, end = 0, len(buf)
        while pos < end:
            if self.passing:
                take = min(self.passing, end - pos)
                out.append(bytes(buf[pos : pos + take]))
                pos += take
                self.passing -= take
                continue
            if not self.plain:
                out.append(bytes(buf[pos:]))
                pos = end
                break
            if end - pos < _HEADER:
                break
            length = int.from_bytes(buf[pos : pos + 3], "little")
            if not self.greeted:
                if length >= 4 and end - pos < _HEADER + 4:
                    break
                capabilities = int.from_bytes(buf[pos + 4 : pos + 8], "little") if length >= 4 else 0
                if self.end_tls and capabilities & CLIENT_SSL and length == SSL_REQUEST_LENGTH:
                    if end - pos < _HEADER + length:
                        break
                    self.greeted = True
                    out.append(bytes(buf[pos : pos + _HEADER + length]))
                    self.tls_start = bytes(buf[pos + _HEADER + length : end])
                    pos = end
                    break
                self.greeted = True
                self.plain = not capabilities & (CLIENT_SSL | CLIENT_COMPRESS)
                self.passing = _HEADER + length
                continue
            if buf[pos + 3] != 0 or length == 0 or length >= MAX_PAYLOAD:
                self.passing = _HEADER + length
                continue
            if end - pos < _HEADER + 1:
                break
            if not self._wanted(buf[pos + 4], length):
                self.passing = _HEADER + length
                continue
            if end - pos < _HEADER + length:
                break
            packet = bytes(buf[pos : pos + _HEADER + length])
            pos += _HEADER + length
            commit = commit or is_commit_packet(packet)
            out.append(self._rewritten(packet))
        if buf is self.pending:
            del self.pending[:pos]
        elif pos < end:
            self.pending = bytearray(buf[pos:])
        return b"".join(out), commit

    def _wanted(self, command: int, length: int) -> bool:
        if command == COM_QUERY:
            return self.rewrite is not None or length <= _MAX_COMMIT_PACKET
        return command == COM_STMT_PREPARE and self.rewrite is not None

    def _rewritten(self, packet: bytes) -> bytes:
        if self.rewrite is None:
            return packet
        sql = packet[_HEADER + 1 :]
        new = self.rewrite(sql)
        if new is sql or 1 + len(new) >= MAX_PAYLOAD:
            return packet
        return (1 + len(new)).to_bytes(3, "little") + packet[3:5] + new
