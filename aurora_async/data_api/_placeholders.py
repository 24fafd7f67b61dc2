"""Where the ``:name`` parameters of a Data API statement are.

The Data API takes named parameters written ``:name`` in the SQL text. A colon inside a string literal,
a quoted identifier, a comment, a PostgreSQL dollar-quoted body or a ``::`` cast is not a parameter.
Both the client (to name a missing or unknown parameter before a round trip) and the local emulator (to
hand the parameters to the driver) use this one scanner, with the lexical rules of the engine.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

Dialect = Literal["postgresql", "mysql"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


class Placeholder(NamedTuple):
    """One ``:name`` in the statement: ``sql[start:end] == ":" + name``."""

    name: str
    start: int
    end: int


def find_placeholders(sql: str, dialect: Dialect = "postgresql") -> list[Placeholder]:
    """Every ``:name`` parameter of ``sql`` outside literals, quoted identifiers and comments, in order
    (a name used twice appears twice)."""
    mysql = dialect == "mysql"
    found: list[Placeholder] = []
    i, n = 0, len(sql)
    while i < n:
        skipped = _skip_non_code(sql, i, mysql)
        if skipped != i:
            i = skipped
        elif sql[i] == ":":
            if sql.startswith("::", i):
                i += 2
                continue
            match = _NAME.match(sql, i + 1)
            if match is not None and not _is_word(sql, i - 1):
                found.append(Placeholder(match.group(), i, match.end()))
                i = match.end()
            else:
                i += 1
        else:
            i += 1
    return found


def statement_count(sql: str, dialect: Dialect = "postgresql") -> int:
    """How many statements ``sql`` holds: the pieces between semicolons outside literals, quoted
    identifiers and comments that contain more than whitespace and comments (so one trailing ``;`` adds
    nothing). PostgreSQL's ``BEGIN ATOMIC ... END`` function bodies are not recognised: their inner
    semicolons count."""
    mysql = dialect == "mysql"
    count, code = 0, False
    i, n = 0, len(sql)
    while i < n:
        skipped = _skip_non_code(sql, i, mysql)
        if skipped != i:
            # a literal or a quoted identifier is code; a comment is not
            code = code or sql[i] not in "-#/"
            i = skipped
            continue
        c = sql[i]
        if c == ";":
            count += code
            code = False
        elif not c.isspace():
            code = True
        i += 1
    return count + code


def _skip_non_code(sql: str, i: int, mysql: bool) -> int:
    """The index after the literal, quoted identifier or comment that starts at ``i``, else ``i`` (a
    lone ``$`` that starts no dollar quote is passed over too)."""
    c = sql[i]
    if c == "'":
        backslashes = mysql or (i > 0 and sql[i - 1] in "eE" and not _is_word(sql, i - 2))
        return _skip_quoted(sql, i, "'", backslashes)
    if c == '"':
        return _skip_quoted(sql, i, '"', mysql)
    if c == "`" and mysql:
        return _skip_quoted(sql, i, "`", False)
    if _line_comment(sql, i, mysql):
        return _line_end(sql, i)
    if c == "/" and sql.startswith("/*", i):
        return _skip_block_comment(sql, i, nested=not mysql)
    if c == "$" and not mysql and not _is_word(sql, i - 1):
        return _skip_dollar_quoted(sql, i)
    return i


def _is_word(sql: str, i: int) -> bool:
    return i >= 0 and (sql[i].isalnum() or sql[i] in "_$")


def _skip_quoted(sql: str, i: int, quote: str, backslashes: bool) -> int:
    """The index after the literal that opens at ``i`` (doubled quotes, optionally backslash escapes)."""
    i += 1
    n = len(sql)
    while i < n:
        c = sql[i]
        if backslashes and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def _line_comment(sql: str, i: int, mysql: bool) -> bool:
    """``--`` (MySQL: only when whitespace or the end follows) or, in MySQL, ``#``."""
    if sql.startswith("--", i):
        return not mysql or i + 2 >= len(sql) or sql[i + 2].isspace()
    return mysql and sql[i] == "#"


def _line_end(sql: str, i: int) -> int:
    end = sql.find("\n", i)
    return len(sql) if end < 0 else end + 1


def _skip_block_comment(sql: str, i: int, nested: bool) -> int:
    depth, i, n = 1, i + 2, len(sql)
    while i < n:
        if sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        elif nested and sql.startswith("/*", i):
            depth += 1
            i += 2
        else:
            i += 1
    return n


def _skip_dollar_quoted(sql: str, i: int) -> int:
    match = _DOLLAR_TAG.match(sql, i)
    if match is None:
        return i + 1  # $1 style or a lone dollar
    tag = match.group()
    end = sql.find(tag, match.end())
    return len(sql) if end < 0 else end + len(tag)
