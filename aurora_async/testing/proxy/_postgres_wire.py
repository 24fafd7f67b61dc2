"""What the fault proxy understands of PostgreSQL's frontend/backend protocol: a bare COMMIT sent as a
simple query, and the message that ends the server's answer."""

from __future__ import annotations

import struct

# PostgreSQL's frontend/backend protocol: a message is a type byte, then an int32 length that counts
# itself and the body, but not the type byte.
_QUERY = ord("Q")  # simple query: the body is the NUL-terminated SQL text
READY_FOR_QUERY = ord("Z")  # the end of the server's answer to a query: the body is one status byte
_COMMIT_STATEMENTS = frozenset(
    {"commit", "end", "commit transaction", "commit work", "end transaction", "end work"}
)
_MAX_COMMIT_MESSAGE = 256  # longer simple queries are not worth decoding: they are no bare COMMIT


def is_commit_query(chunk: bytes) -> bool:
    """Whether ``chunk`` begins with a whole simple query message whose SQL is a bare COMMIT
    (``COMMIT`` or ``END``)."""
    if len(chunk) < 6 or chunk[0] != _QUERY:
        return False
    (length,) = struct.unpack_from("!i", chunk, 1)
    if not 5 <= length <= _MAX_COMMIT_MESSAGE or len(chunk) < 1 + length or chunk[length] != 0:
        return False
    sql = chunk[5:length].decode("utf-8", "replace")
    return " ".join(sql.strip().lower().removesuffix(";").split()) in _COMMIT_STATEMENTS
