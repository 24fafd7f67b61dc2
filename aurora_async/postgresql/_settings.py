"""PostgreSQL session settings changed with SQL: which statements change them, and what to re-apply.

The asyncpg facade hands every query to :func:`may_change` first: a regular expression that looks at
the first word (and, when the string holds a ``;``, at the first word after each one), so ordinary
queries pay one failed match. Only a string that may hold a ``SET``, ``RESET``, ``DISCARD`` or a
transaction-control statement is split (:func:`split`, on ``;`` outside quotes, dollar quotes and
comments) and read (:func:`parse`). What a statement that succeeded changed is kept by
:class:`SessionSettings`, which follows PostgreSQL's rules:

- a session ``SET`` (``SET name ...``, ``SET SESSION name ...``, ``SET TIME ZONE``, ``SET ROLE``,
  ``SET SESSION AUTHORIZATION``, ``SET SCHEMA``, ``SET NAMES``, ``SET XML OPTION``,
  ``SET SESSION CHARACTERISTICS AS TRANSACTION ...``) keeps the last statement per setting, in the
  order they were last set; ``SET name TO DEFAULT``, ``RESET name`` remove it; ``RESET ALL`` removes
  all but ``role`` and ``session_authorization`` (the server keeps those too); ``DISCARD ALL`` removes
  all; ``SET SESSION AUTHORIZATION`` (any form) also resets the role, as the server does;
- ``SET LOCAL``, ``SET TRANSACTION``, ``SET CONSTRAINTS`` and the ``transaction_*`` settings last one
  transaction at most: never kept;
- inside a transaction block a change is pending: kept when the block commits, dropped when it rolls
  back (a COMMIT of a failed transaction rolls back); inside a savepoint it is dropped by
  ``ROLLBACK TO`` that savepoint (what was set before the savepoint stays pending) and joins the
  enclosing level at ``RELEASE``. A ``ROLLBACK TO`` a savepoint this tracker never saw drops all the
  pending changes of the transaction (which of them survived is unknown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, TypeAlias

# -- the cheap look ------------------------------------------------------------------------------------

# whitespace and comments (one character or one comment at a time: no nested quantifiers to backtrack)
_SKIP = r"(?:\s|--[^\n]*(?:\n|\Z)|/\*(?:[^*]|\*(?!/))*\*/)*"
_WORDS = r"(?:SET|RESET|DISCARD|BEGIN|START|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE|PREPARE)\b"
_FIRST: Final = re.compile(rf"({_WORDS})|[\s/-]", re.IGNORECASE)  # a keyword, or what may precede one
_HEAD: Final = re.compile(_SKIP + _WORDS, re.IGNORECASE)


def may_change(query: str) -> bool:
    """Whether ``query`` may change session settings or end a transaction (a first-word look; a
    ``True`` may be wrong, a ``False`` is not, except after a nested comment at the very start)."""
    first = _FIRST.match(query)
    if first is not None and (first.group(1) is not None or _HEAD.match(query) is not None):
        return True
    at = query.find(";")
    while at >= 0:
        if _HEAD.match(query, at + 1) is not None:
            return True
        at = query.find(";", at + 1)
    return False


# -- splitting a string into statements ---------------------------------------------------------------

_TOKEN: Final = re.compile(r"""'|"|--|/\*|;|\$(?:[^\W\d]\w*)?\$""")
_QUOTED: Final = re.compile(r"[^']*(?:''[^']*)*'")
_ESCAPED: Final = re.compile(r"[^'\\]*(?:(?:''|\\.)[^'\\]*)*'", re.DOTALL)
_IDENTIFIER: Final = re.compile(r'[^"]*(?:""[^"]*)*"')
_COMMENT_MARK: Final = re.compile(r"/\*|\*/")


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _comment_end(query: str, start: int) -> int:
    """Where the (possibly nested) block comment opened at ``start`` ends."""
    depth, pos = 0, start
    while (mark := _COMMENT_MARK.search(query, pos)) is not None:
        depth += 1 if mark.group() == "/*" else -1
        pos = mark.end()
        if depth == 0:
            return pos
    return len(query)


def split(query: str) -> list[str]:
    """The statements of ``query``, split on ``;`` outside string literals, quoted identifiers,
    dollar-quoted strings and comments; comments are replaced by a space, statements stripped, empty
    ones left out. (``standard_conforming_strings`` is assumed on, PostgreSQL's default.)"""
    statements: list[str] = []
    parts: list[str] = []
    start = pos = 0
    end = len(query)
    while (token := _TOKEN.search(query, pos)) is not None:
        mark, at = token.group(), token.start()
        if mark == ";":
            parts.append(query[start:at])
            statements.append("".join(parts).strip())
            parts, start, pos = [], at + 1, at + 1
        elif mark == "--":
            parts += (query[start:at], " ")
            newline = query.find("\n", at)
            start = pos = end if newline < 0 else newline
        elif mark == "/*":
            parts += (query[start:at], " ")
            start = pos = _comment_end(query, at)
        elif mark == "'":
            escaped = at > 0 and query[at - 1] in "eE" and (at < 2 or not _word_char(query[at - 2]))
            closing = (_ESCAPED if escaped else _QUOTED).match(query, at + 1)
            pos = end if closing is None else closing.end()
        elif mark == '"':
            closing = _IDENTIFIER.match(query, at + 1)
            pos = end if closing is None else closing.end()
        elif at > 0 and _word_char(query[at - 1]):
            pos = at + 1  # a "$" inside an identifier (a$b$), not a dollar quote
        else:
            closing_at = query.find(mark, token.end())
            pos = end if closing_at < 0 else closing_at + len(mark)
    parts.append(query[start:])
    statements.append("".join(parts).strip())
    return [statement for statement in statements if statement]


# -- what one statement does ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """A session setting changed: ``sql`` sets it again on a new connection; None resets it (the new
    connection's own default)."""

    name: str
    sql: str | None


@dataclass(frozen=True, slots=True)
class ResetAll:
    """``RESET ALL`` (``everything=False``: the role and session authorization stay) or ``DISCARD
    ALL`` (``everything=True``)."""

    everything: bool


@dataclass(frozen=True, slots=True)
class Begin:
    """``BEGIN`` / ``START TRANSACTION`` (or the new transaction of ``... AND CHAIN``)."""


@dataclass(frozen=True, slots=True)
class End:
    """``COMMIT`` / ``END`` / ``PREPARE TRANSACTION`` (``commit=True``) or ``ROLLBACK`` / ``ABORT``."""

    commit: bool


@dataclass(frozen=True, slots=True)
class Savepoint:
    """``SAVEPOINT name`` (``action="set"``), ``ROLLBACK TO [SAVEPOINT] name`` (``"rollback"``) or
    ``RELEASE [SAVEPOINT] name`` (``"release"``)."""

    name: str
    action: str


Statement: TypeAlias = Change | ResetAll | Begin | End | Savepoint

_I = re.IGNORECASE | re.DOTALL
_IDENT = r'(?:[^\W\d][\w$]*|"(?:[^"]|"")+")'
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_SCOPE = r"SET\s+(?:SESSION\s+)?"
_GENERIC = re.compile(rf"{_SCOPE}({_NAME})\s*(?:=|\bTO\b)\s*(.*)", _I)
_LOCAL = re.compile(r"SET\s+LOCAL\b", _I)
_TRANSACTIONAL = re.compile(r"SET\s+(?:SESSION\s+)?(?:TRANSACTION|CONSTRAINTS)\b", _I)
_CHARACTERISTICS = re.compile(r"SET\s+(?:SESSION\s+)?SESSION\s+CHARACTERISTICS\s+AS\s+TRANSACTION\s+(.*)", _I)
_AUTHORIZATION = re.compile(r"SET\s+(?:SESSION\s+)?SESSION\s+AUTHORIZATION\s+(.*)", _I)
_SPECIAL = re.compile(rf"{_SCOPE}(TIME\s+ZONE|ROLE|SCHEMA|NAMES|XML\s+OPTION)\b\s*(.*)", _I)
_RESET = re.compile(rf"RESET\s+(ALL|TIME\s+ZONE|SESSION\s+AUTHORIZATION|{_NAME})\s*$", _I)
_DISCARD_ALL = re.compile(r"DISCARD\s+ALL\s*$", _I)
_BEGIN = re.compile(r"(?:BEGIN|START\s+TRANSACTION)\b(?!\s+ATOMIC)", _I)
_END = re.compile(r"(COMMIT|END|ROLLBACK|ABORT)(?:\s+(?:WORK|TRANSACTION))?(\s+AND\s+(NO\s+)?CHAIN)?\s*$", _I)
_PREPARE = re.compile(r"PREPARE\s+TRANSACTION\b", _I)
_SAVEPOINT = re.compile(
    rf"(SAVEPOINT|RELEASE(?:\s+SAVEPOINT)?|ROLLBACK(?:\s+(?:WORK|TRANSACTION))?\s+TO(?:\s+SAVEPOINT)?)"
    rf"\s+({_IDENT})\s*$",
    _I,
)

#: the setting each special form changes
_SPECIAL_NAMES: Final = {
    "TIME ZONE": "timezone",
    "ROLE": "role",
    "SCHEMA": "search_path",
    "NAMES": "client_encoding",
    "XML OPTION": "xmloption",
}
#: values of a special form that mean "the default"
_DEFAULT_VALUES: Final = {
    "timezone": ("DEFAULT", "LOCAL"),
    "role": ("NONE",),
    "client_encoding": ("DEFAULT", ""),
}
#: what RESET ALL leaves alone (the server keeps them; DISCARD ALL resets them)
KEPT_BY_RESET_ALL: Final = frozenset({"role", "session_authorization"})
_MODE: Final = re.compile(
    r"\s*,?\s*(?:ISOLATION\s+LEVEL\s+(READ\s+UNCOMMITTED|READ\s+COMMITTED|REPEATABLE\s+READ|SERIALIZABLE)"
    r"|READ\s+(ONLY|WRITE)|(NOT\s+)?(DEFERRABLE))",
    _I,
)


def _identifier(text: str) -> str:
    """A name as PostgreSQL folds it: unquoted parts lower-cased, quoted parts as written."""
    parts = re.findall(r'"((?:[^"]|"")+)"|([^\s."]+)', text)
    return ".".join(quoted.replace('""', '"') if quoted else plain.lower() for quoted, plain in parts)


def _setting(text: str) -> str:
    """A setting's name (PostgreSQL compares them case-insensitively, quoted or not)."""
    return _identifier(text).lower()


def _is_default(value: str) -> bool:
    return value.strip().upper() == "DEFAULT"


def _characteristics(modes: str) -> list[Statement]:
    """``SET SESSION CHARACTERISTICS AS TRANSACTION modes``: one change per ``default_transaction_*``
    setting it sets (so that ``RESET`` of one of them undoes only that one)."""
    changes: list[Statement] = []
    pos, end = 0, len(modes.rstrip())
    while pos < end:
        match = _MODE.match(modes, pos)
        if match is None:
            return []  # not understood (the server would have refused it): nothing
        isolation, access, not_, _ = match.groups()
        if isolation:
            name, value = "default_transaction_isolation", " ".join(isolation.lower().split())
        elif access:
            name, value = "default_transaction_read_only", "on" if access.upper() == "ONLY" else "off"
        else:
            name, value = "default_transaction_deferrable", "off" if not_ else "on"
        changes.append(Change(name, f"SET {name} = '{value}'"))
        pos = match.end()
    return changes


def parse_one(statement: str) -> list[Statement]:
    """What ``statement`` (one statement, comments removed, stripped) does to session settings or to
    the transaction: empty when nothing that is tracked."""
    head = statement[:1].upper()
    if head == "S" and statement[:3].upper() == "SET":
        return _parse_set(statement)
    if head == "R" and (match := _RESET.match(statement)):
        what = " ".join(match.group(1).upper().split())
        if what == "ALL":
            return [ResetAll(everything=False)]
        if what == "TIME ZONE":
            return [Change("timezone", None)]
        name = "session_authorization" if what == "SESSION AUTHORIZATION" else _setting(match.group(1))
        if name == "session_authorization":
            return [Change("role", None), Change(name, None)]  # the server resets the role with it
        return [] if name.startswith("transaction_") else [Change(name, None)]
    if head == "D" and _DISCARD_ALL.match(statement):
        return [ResetAll(everything=True)]
    if head in ("B", "S") and _BEGIN.match(statement):
        return [Begin()]
    if head in "CERA" and (match := _END.match(statement)):
        commit = match.group(1).upper() in ("COMMIT", "END")
        chained = match.group(2) is not None and match.group(3) is None
        return [End(commit), Begin()] if chained else [End(commit)]
    if head == "P" and _PREPARE.match(statement):
        return [End(commit=True)]  # the server treats it as a commit for settings
    if head in "SR" and (match := _SAVEPOINT.match(statement)):
        word = match.group(1)[:3].upper()
        action = {"SAV": "set", "REL": "release"}.get(word, "rollback")
        return [Savepoint(_identifier(match.group(2)), action)]
    return []


def _parse_set(statement: str) -> list[Statement]:
    if _LOCAL.match(statement) or _TRANSACTIONAL.match(statement):
        return []
    if match := _CHARACTERISTICS.match(statement):
        return _characteristics(match.group(1))
    if match := _AUTHORIZATION.match(statement):
        sql = None if _is_default(match.group(1)) else statement
        return [Change("role", None), Change("session_authorization", sql)]
    if match := _GENERIC.match(statement):
        name, value = _setting(match.group(1)), match.group(2)
        if name.startswith("transaction_"):
            return []  # SET TRANSACTION's settings: one transaction only
        if name == "session_authorization":
            return [Change("role", None), Change(name, None if _is_default(value) else statement)]
        return [Change(name, None if _is_default(value) else statement)]
    if match := _SPECIAL.match(statement):
        name = _SPECIAL_NAMES[" ".join(match.group(1).upper().split())]
        value = match.group(2).strip().upper()
        default = value in _DEFAULT_VALUES.get(name, ())
        return [Change(name, None if default else statement)]
    return []


def parse(query: str) -> list[Statement]:
    """What ``query`` (one or several statements) does to session settings and transactions, in
    order. A string that defines a function with a ``BEGIN ATOMIC`` body is read only up to that
    statement (its body's ``;`` cannot be told from a statement's end without a full SQL parser)."""
    found: list[Statement] = []
    for statement in split(query):
        if _ATOMIC.search(statement):
            break
        found += parse_one(statement)
    return found


_ATOMIC: Final = re.compile(r"\bBEGIN\s+ATOMIC\b", _I)


# -- the state of one session -------------------------------------------------------------------------


@dataclass(slots=True)
class _Level:
    """The open transaction (``key`` None) or one savepoint in it, and the changes made at its level."""

    key: object
    changes: list[Change | ResetAll] = field(default_factory=list)


class SessionSettings:
    """The settings a session changed with statements that took effect, to re-apply on a new
    connection, and those of its open transaction, pending until it commits (see the module
    docstring for the rules)."""

    __slots__ = ("_applied", "_levels")

    def __init__(self) -> None:
        self._applied: dict[str, str] = {}  # setting -> the statement that set it last, in order
        self._levels: list[_Level] = []  # the open transaction, then its savepoints

    def statements(self) -> list[str]:
        """The statements that set this session's settings again, in the order they were last set."""
        return list(self._applied.values())

    def script(self) -> str:
        """:meth:`statements` as one simple-query string (run as one implicit transaction: all or
        nothing); empty when nothing is to be re-applied."""
        return "".join(f"{sql}\n;\n" for sql in self._applied.values())

    @property
    def pending(self) -> bool:
        """Whether the open transaction holds changes that its COMMIT would make effective."""
        return any(level.changes for level in self._levels)

    # -- the transaction --------------------------------------------------------------------------

    def begin(self) -> None:
        """A transaction block began."""
        self._levels = [_Level(None)]

    def commit(self, *, failed: bool = False) -> None:
        """The transaction ended with COMMIT (``failed``: it was in error, so the server rolled it
        back)."""
        levels, self._levels = self._levels, []
        if not failed:
            for level in levels:
                for change in level.changes:
                    self._apply(change)

    def rollback(self) -> None:
        """The transaction rolled back, or was lost with its connection: its changes are gone."""
        self._levels = []

    def savepoint(self, key: object) -> None:
        """A savepoint (a SQL name, or a nested transaction block) was set in the open transaction."""
        if self._levels:
            self._levels.append(_Level(key))

    def rollback_to(self, key: object, *, keep: bool) -> None:
        """``ROLLBACK TO`` the savepoint ``key``: the changes since it are gone; the savepoint stays
        when ``keep`` (SQL), or goes (a nested block, rolled back and done with)."""
        found = self._find(key)
        if found is None:
            for level in self._levels:
                level.changes.clear()  # a savepoint we never saw: which changes survived is unknown
            return
        del self._levels[found + (1 if keep else 0) :]
        if keep:
            self._levels[found].changes.clear()

    def release(self, key: object) -> None:
        """``RELEASE`` the savepoint ``key``: its changes (and those of later savepoints) join the level
        it was set in."""
        found = self._find(key)
        if found is None or found == 0:
            return
        parent = self._levels[found - 1]
        for level in self._levels[found:]:
            parent.changes += level.changes
        del self._levels[found:]

    def _find(self, key: object) -> int | None:
        for index in range(len(self._levels) - 1, 0, -1):
            if self._levels[index].key == key:
                return index
        return None

    # -- statements that succeeded ------------------------------------------------------------------

    def note(self, statements: list[Statement], *, in_transaction: bool, failed: bool = False) -> None:
        """``statements`` (:func:`parse`) ran and succeeded; ``in_transaction``: a transaction block
        was open before them; ``failed``: it was in error (its COMMIT rolls back)."""
        if not in_transaction:
            self._levels = []  # a block we never saw end: its outcome is unknown, its changes dropped
        elif not self._levels:
            self._levels = [_Level(None)]  # a block we never saw begin (conn.raw, ...)
        for statement in statements:
            if isinstance(statement, (Change, ResetAll)):
                if self._levels:
                    self._levels[-1].changes.append(statement)
                else:
                    self._apply(statement)
            elif isinstance(statement, Begin):
                if not self._levels:
                    self.begin()
            elif isinstance(statement, End):
                if statement.commit:
                    self.commit(failed=failed)
                else:
                    self.rollback()
                failed = False
            elif statement.action == "set":
                self.savepoint(statement.name)
            elif statement.action == "release":
                self.release(statement.name)
            else:
                self.rollback_to(statement.name, keep=True)
                failed = False

    def reset(self) -> None:
        """asyncpg's ``reset()`` ran: the transaction rolled back, then ``RESET ALL``."""
        self._levels = []
        self._apply(ResetAll(everything=False))

    def _apply(self, change: Change | ResetAll) -> None:
        if isinstance(change, ResetAll):
            if change.everything:
                self._applied.clear()
            else:
                self._applied = {k: v for k, v in self._applied.items() if k in KEPT_BY_RESET_ALL}
            return
        self._applied.pop(change.name, None)  # set again: re-applied in its new place
        if change.sql is not None:
            self._applied[change.name] = change.sql
