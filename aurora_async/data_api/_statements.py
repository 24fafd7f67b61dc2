"""Checks on a statement before it is sent: its parameter names, and whether it only reads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._errors import ParameterError
from ._placeholders import Dialect, find_placeholders, statement_count

_FIRST_WORD = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*\(*\s*([A-Za-z]+)", re.DOTALL)
_READS = frozenset({"select", "show", "values", "table", "describe", "desc", "explain"})
_ANALYZE = re.compile(r"\banaly[sz]e\b", re.IGNORECASE)
_INTO = re.compile(r"\binto\b", re.IGNORECASE)


def first_word(sql: str) -> str:
    """The statement's first keyword, lower case, after comments and opening parentheses."""
    match = _FIRST_WORD.match(sql)
    return match.group(1).lower() if match else ""


def only_reads(sql: str) -> bool:
    """True for one statement that reads only, judged by its words: SELECT, SHOW, VALUES, TABLE, DESCRIBE,
    EXPLAIN without ANALYZE. What ``resend_reads=True`` may send again after a lost answer.

    Erring towards False: EXPLAIN that names ANALYZE or ANALYSE anywhere (``EXPLAIN ANALYSE``,
    ``EXPLAIN (ANALYZE)``, ``EXPLAIN (FORMAT json, ANALYSE true)``: these run the statement), a statement
    with INTO (``SELECT ... INTO`` creates a table, or on MySQL writes variables or a file), more than one
    statement, and WITH (a CTE may write). It cannot see what a function does: ``SELECT nextval(...)``
    or ``SELECT f()`` where ``f`` writes counts as a read."""
    word = first_word(sql)
    if word not in _READS:
        return False
    if _ANALYZE.search(sql) if word == "explain" else _INTO.search(sql):
        return False
    return statement_count(sql, "postgresql") <= 1 and statement_count(sql, "mysql") <= 1


def check_parameters(sql: str, params: Any, dialect: Dialect | None) -> Mapping[str, Any]:
    """``params`` as a mapping whose names are exactly the statement's ``:name`` parameters.

    With no known dialect, a name counts as used when either engine's lexical rules find it, and as
    missing only when both do, so a lexical difference never refuses a good statement."""
    if not isinstance(sql, str):
        raise TypeError(f"the SQL must be a str, not {type(sql).__name__}")
    given: Mapping[str, Any]
    if params is None:
        given = {}
    elif isinstance(params, Mapping):
        given = params
    else:
        raise ParameterError(
            "parameters are a mapping of name to value, for the statement's :name placeholders (the Data "
            f"API has no positional parameters), not a {type(params).__name__}"
        )
    if not given and ":" not in sql:
        return given
    dialects: tuple[Dialect, ...] = (dialect,) if dialect else ("postgresql", "mysql")
    found = [{p.name for p in find_placeholders(sql, d)} for d in dialects]
    used = set().union(*found)
    required = set.intersection(*found)
    bad_keys = [k for k in given if not isinstance(k, str)]
    if bad_keys:
        raise ParameterError(f"parameter names must be str, not {type(bad_keys[0]).__name__}")
    missing = sorted(required - given.keys())
    if missing:
        raise ParameterError(f"no value for {_names(missing)} in the parameters ({_given(given)})")
    unknown = sorted(given.keys() - used)
    if unknown:
        expected = ", ".join(f":{n}" for n in sorted(used)) or "none"
        raise ParameterError(f"{_names(unknown)} not in the statement (its parameters: {expected})")
    return given


def _names(names: list[str]) -> str:
    return ("parameter " if len(names) == 1 else "parameters ") + ", ".join(f":{n}" for n in names)


def _given(params: Mapping[str, Any]) -> str:
    return "given: " + (", ".join(sorted(params)) or "none")
