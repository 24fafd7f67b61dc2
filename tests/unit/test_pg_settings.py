"""The PostgreSQL session-settings tracker, without a server: which statements are read as changes of
session settings or of the transaction (``parse``), how a string is split into statements (``split``),
the cheap first look (``may_change``), and what ``SessionSettings`` keeps through transactions and
savepoints. ``tests/integration/test_pg_session_settings.py`` checks the result on real servers."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from aurora_async.postgresql._settings import (
    Begin,
    Change,
    End,
    ResetAll,
    Savepoint,
    SessionSettings,
    may_change,
    parse,
    parse_one,
    split,
)

FAST = settings(max_examples=200, deadline=None, database=None)

# -- parsing one statement -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SET search_path = a, public", [Change("search_path", "SET search_path = a, public")]),
        ("set Search_Path to a", [Change("search_path", "set Search_Path to a")]),
        (
            "SET SESSION statement_timeout = '5s';",
            [Change("statement_timeout", "SET SESSION statement_timeout = '5s'")],
        ),
        (
            "  -- why\n /* what */ SET myapp.tenant = 'a;b' -- end",
            [Change("myapp.tenant", "SET myapp.tenant = 'a;b'")],
        ),
        ('SET "MyApp"."Tenant" TO \'x\'', [Change("myapp.tenant", 'SET "MyApp"."Tenant" TO \'x\'')]),
        ("SET search_path TO DEFAULT", [Change("search_path", None)]),
        ("SET statement_timeout = default ;", [Change("statement_timeout", None)]),
        ("SET TIME ZONE 'UTC'", [Change("timezone", "SET TIME ZONE 'UTC'")]),
        ("SET TIME ZONE LOCAL", [Change("timezone", None)]),
        ("SET timezone = 'UTC'", [Change("timezone", "SET timezone = 'UTC'")]),
        ("SET ROLE tenant_a", [Change("role", "SET ROLE tenant_a")]),
        ("SET SESSION ROLE NONE", [Change("role", None)]),
        ("SET SCHEMA 'app'", [Change("search_path", "SET SCHEMA 'app'")]),
        ("SET NAMES 'UTF8'", [Change("client_encoding", "SET NAMES 'UTF8'")]),
        ("SET XML OPTION DOCUMENT", [Change("xmloption", "SET XML OPTION DOCUMENT")]),
        (
            "SET SESSION AUTHORIZATION alice",
            [Change("role", None), Change("session_authorization", "SET SESSION AUTHORIZATION alice")],
        ),
        ("SET SESSION AUTHORIZATION DEFAULT", [Change("role", None), Change("session_authorization", None)]),
        ("RESET SESSION AUTHORIZATION", [Change("role", None), Change("session_authorization", None)]),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ,"
            " READ ONLY NOT DEFERRABLE",
            [
                Change(
                    "default_transaction_isolation", "SET default_transaction_isolation = 'repeatable read'"
                ),
                Change("default_transaction_read_only", "SET default_transaction_read_only = 'on'"),
                Change("default_transaction_deferrable", "SET default_transaction_deferrable = 'off'"),
            ],
        ),
        ("RESET search_path", [Change("search_path", None)]),
        ("reset ROLE;", [Change("role", None)]),
        ("RESET TIME ZONE", [Change("timezone", None)]),
        ("RESET ALL", [ResetAll(everything=False)]),
        ("DISCARD ALL", [ResetAll(everything=True)]),
        ("BEGIN", [Begin()]),
        ("begin isolation level serializable", [Begin()]),
        ("START TRANSACTION READ ONLY", [Begin()]),
        ("COMMIT", [End(commit=True)]),
        ("END WORK", [End(commit=True)]),
        ("COMMIT AND CHAIN", [End(commit=True), Begin()]),
        ("COMMIT AND NO CHAIN", [End(commit=True)]),
        ("ROLLBACK", [End(commit=False)]),
        ("ABORT TRANSACTION", [End(commit=False)]),
        ("PREPARE TRANSACTION 'x'", [End(commit=True)]),
        ("SAVEPOINT s1", [Savepoint("s1", "set")]),
        ('SAVEPOINT "S 1"', [Savepoint("S 1", "set")]),
        ("ROLLBACK TO SAVEPOINT S1", [Savepoint("s1", "rollback")]),
        ("ROLLBACK WORK TO s1", [Savepoint("s1", "rollback")]),
        ("RELEASE s1", [Savepoint("s1", "release")]),
        ("RELEASE SAVEPOINT s1", [Savepoint("s1", "release")]),
    ],
)
def test_statements_that_change_settings_or_the_transaction(query: str, expected: list[object]) -> None:
    assert may_change(query)
    assert parse(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "SET LOCAL search_path = a",
        "set local role tenant_a",
        "SET LOCAL TIME ZONE 'UTC'",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET TRANSACTION SNAPSHOT '0001'",
        "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET transaction_isolation = 'serializable'",
        "SET CONSTRAINTS ALL DEFERRED",
        "SET search_path FROM CURRENT",
        "RESET TRANSACTION ISOLATION LEVEL",
        "DISCARD PLANS",
        "COMMIT PREPARED 'x'",
        "ROLLBACK PREPARED 'x'",
        "PREPARE q AS SELECT 1",
        "SELECT set_config('search_path', 'a', false)",
        "SELECT 'SET search_path = a'",
        "/* SET search_path = a */ SELECT 1",
        "-- SET search_path = a\nSELECT 1",
        "SETTLE",
        "UPDATE t SET v = 1",
    ],
)
def test_statements_that_are_never_re_applied(query: str) -> None:
    assert parse(query) == []


def test_several_statements_in_one_string() -> None:
    query = "BEGIN; SET a.b = 1; SAVEPOINT s; SET a.c TO 'x;y'; ROLLBACK TO s; RELEASE s; COMMIT"
    assert may_change(query)
    assert parse(query) == [
        Begin(),
        Change("a.b", "SET a.b = 1"),
        Savepoint("s", "set"),
        Change("a.c", "SET a.c TO 'x;y'"),
        Savepoint("s", "rollback"),
        Savepoint("s", "release"),
        End(commit=True),
    ]
    # a SET after an ordinary first statement is seen too
    assert may_change("SELECT 1; SET a.b = 2")
    assert parse("SELECT 1; SET a.b = 2") == [Change("a.b", "SET a.b = 2")]


def test_a_function_body_with_begin_atomic_stops_the_reading() -> None:
    query = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SET a.b = 1"
    assert parse(query) == []
    assert parse("SET a.b = 1; " + query) == [Change("a.b", "SET a.b = 1")]


@pytest.mark.parametrize(
    ("query", "statements"),
    [
        ("SELECT 'a;b'; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
        ("SELECT 'it''s;'; SELECT 2", ["SELECT 'it''s;'", "SELECT 2"]),
        ("SELECT E'it\\'s;'; SELECT 2", ["SELECT E'it\\'s;'", "SELECT 2"]),
        ('SELECT 1 AS "a;""b"; SELECT 2', ['SELECT 1 AS "a;""b"', "SELECT 2"]),
        ("SELECT $$a;b$$; SELECT $f$ $$; $f$", ["SELECT $$a;b$$", "SELECT $f$ $$; $f$"]),
        ("SELECT 1 -- a; b\n; SELECT 2", ["SELECT 1", "SELECT 2"]),
        ("SELECT /* a /* nested; */ b; */ 1;;", ["SELECT   1"]),
        ("SELECT $1; SELECT $2", ["SELECT $1", "SELECT $2"]),
        ("SELECT 'unterminated; SET a = 1", ["SELECT 'unterminated; SET a = 1"]),
    ],
)
def test_split_respects_quotes_and_comments(query: str, statements: list[str]) -> None:
    assert split(query) == statements


# -- properties ------------------------------------------------------------------------------------------

_KEYWORDS = ("SET", "RESET", "DISCARD", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT")
_ORDINARY = st.sampled_from(
    ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "CREATE", "VALUES", "TABLE", "CALL"]
)
_LITERAL = st.text(alphabet=st.characters(exclude_characters="'", codec="utf-8"), max_size=30)


_FRAGMENTS = st.sampled_from(
    [
        *_KEYWORDS,
        "LOCAL",
        "SESSION",
        "ROLE",
        "TIME ZONE",
        "a.x",
        "=",
        "TO",
        "DEFAULT",
        "ALL",
        "'",
        "''",
        '"',
        "$$",
        "$q$",
        "--",
        "\n",
        "/*",
        "*/",
        ";",
        " ",
        "E'\\'",
        "SELECT",
        "1",
    ]
)
_SQLISH = st.lists(_FRAGMENTS, max_size=14).map(" ".join)


@FAST
@given(head=_ORDINARY, rest=st.text(max_size=80) | _SQLISH)
@example(head="SELECT", rest=" 'x'; SET a = 1")
def test_an_ordinary_statement_is_never_a_change(head: str, rest: str) -> None:
    """Whatever follows an ordinary first word, that first statement is never read as a change; and
    without a ``;`` the cheap look already says no."""
    query = head + " " + rest
    assert parse_one(split(query)[0]) == []
    if ";" not in query:
        assert not may_change(query)


@FAST
@given(query=st.text(max_size=120) | _SQLISH)
def test_split_and_parse_never_fail_and_may_change_has_no_false_negative(query: str) -> None:
    """Garbage in: no exception; and whenever the parse finds something, the cheap look said yes
    (except behind a nested comment, which it does not follow)."""
    found = parse(query)
    assume(query.count("/*") < 2)
    if found:
        assert may_change(query), query


@FAST
@given(value=_LITERAL, other=_LITERAL)
def test_a_set_keeps_its_literal_whole(value: str, other: str) -> None:
    query = f"SET myapp.tenant = '{value}'; SELECT '{other}'"
    assert parse(query) == [Change("myapp.tenant", f"SET myapp.tenant = '{value}'")]


@FAST
@given(st.lists(st.sampled_from(_KEYWORDS), max_size=6))
def test_parse_is_case_insensitive(words: list[str]) -> None:
    query = "; ".join(f"{w} x" if w in ("SET", "RESET", "SAVEPOINT") else w for w in words)
    assert parse(query) == parse(query.lower()) == parse(query.upper())


# -- the state of a session ------------------------------------------------------------------------------


def _set(name: str, value: str) -> Change:
    return Change(name, f"SET {name} = '{value}'")


def test_outside_a_transaction_a_set_takes_effect_and_the_last_one_wins_in_its_new_place() -> None:
    s = SessionSettings()
    s.note([_set("a.x", "1"), _set("a.y", "2")], in_transaction=False)
    s.note([_set("a.x", "3")], in_transaction=False)
    assert s.statements() == ["SET a.y = '2'", "SET a.x = '3'"]
    s.note([Change("a.y", None)], in_transaction=False)
    assert s.statements() == ["SET a.x = '3'"]
    assert s.script() == "SET a.x = '3'\n;\n"


def test_reset_all_keeps_role_and_session_authorization_and_discard_all_does_not() -> None:
    s = SessionSettings()
    s.note(
        parse("SET ROLE r; SET search_path = a; SET SESSION AUTHORIZATION u; SET ROLE r"),
        in_transaction=False,
    )
    assert s.statements() == ["SET search_path = a", "SET SESSION AUTHORIZATION u", "SET ROLE r"]
    s.note(parse("RESET ALL"), in_transaction=False)
    assert s.statements() == ["SET SESSION AUTHORIZATION u", "SET ROLE r"]
    s.reset()  # asyncpg's reset(): RESET ALL too
    assert s.statements() == ["SET SESSION AUTHORIZATION u", "SET ROLE r"]
    s.note(parse("DISCARD ALL"), in_transaction=False)
    assert s.statements() == []


def test_a_transaction_keeps_its_changes_pending_until_commit() -> None:
    s = SessionSettings()
    s.note(parse("BEGIN"), in_transaction=False)
    s.note([_set("a.x", "1")], in_transaction=True)
    assert s.pending and s.statements() == []
    s.note(parse("COMMIT"), in_transaction=True)
    assert not s.pending and s.statements() == ["SET a.x = '1'"]
    s.note(parse("BEGIN; SET a.y = 2"), in_transaction=False)
    s.note(parse("ROLLBACK"), in_transaction=True)
    assert s.statements() == ["SET a.x = '1'"]
    s.note(parse("START TRANSACTION; RESET ALL"), in_transaction=False)
    s.note(parse("COMMIT"), in_transaction=True, failed=True)  # a failed transaction's COMMIT rolls back
    assert s.statements() == ["SET a.x = '1'"]


def test_savepoints() -> None:
    s = SessionSettings()
    s.begin()
    s.note([_set("a.before", "1")], in_transaction=True)
    s.note(parse("SAVEPOINT s1; SET a.inside = 2; SAVEPOINT s2; SET a.deeper = 3"), in_transaction=True)
    s.note(parse("ROLLBACK TO SAVEPOINT s1"), in_transaction=True)  # s1 stays, its changes are gone
    s.note(parse("SET a.after = 4; ROLLBACK TO s1; SET a.kept = 5; RELEASE s1"), in_transaction=True)
    s.note(parse("COMMIT"), in_transaction=True)
    assert s.statements() == ["SET a.before = '1'", "SET a.kept = 5"]


def test_release_joins_the_enclosing_level() -> None:
    s = SessionSettings()
    s.note(
        parse("BEGIN; SAVEPOINT s1; SAVEPOINT s2; SET a.x = 1; RELEASE s2; SAVEPOINT s3"),
        in_transaction=False,
    )
    s.note(parse("ROLLBACK TO s3; COMMIT"), in_transaction=True)
    assert s.statements() == ["SET a.x = 1"]
    s.note(parse("BEGIN; SAVEPOINT s1; SET a.y = 1; RELEASE s1; ROLLBACK"), in_transaction=False)
    assert s.statements() == ["SET a.x = 1"]


def test_nested_blocks_by_key() -> None:
    s, inner, other = SessionSettings(), object(), object()
    s.begin()
    s.note([_set("a.x", "1")], in_transaction=True)
    s.savepoint(inner)
    s.note([_set("a.y", "2")], in_transaction=True)
    s.rollback_to(inner, keep=False)
    s.savepoint(other)
    s.note([_set("a.z", "3")], in_transaction=True)
    s.release(other)
    s.commit()
    assert s.statements() == ["SET a.x = '1'", "SET a.z = '3'"]


def test_a_savepoint_never_seen_drops_what_is_pending() -> None:
    s = SessionSettings()
    s.note(parse("BEGIN; SET a.x = 1"), in_transaction=False)
    s.note(parse("ROLLBACK TO unknown"), in_transaction=True)
    s.note(parse("COMMIT"), in_transaction=True)
    assert s.statements() == []


def test_a_transaction_whose_end_was_not_seen_is_dropped_and_one_whose_start_was_not_seen_is_opened() -> None:
    s = SessionSettings()
    s.note([_set("a.x", "1")], in_transaction=True)  # BEGIN through conn.raw
    assert s.pending and s.statements() == []
    s.note([_set("a.y", "2")], in_transaction=False)  # ... and COMMIT through conn.raw: unknown
    assert not s.pending and s.statements() == ["SET a.y = '2'"]
    s.note(parse("COMMIT AND CHAIN; SET a.z = 3"), in_transaction=True)
    assert s.pending  # the chained transaction holds it
    s.rollback()  # lost in a failover
    assert s.statements() == ["SET a.y = '2'"]


@FAST
@given(st.lists(st.sampled_from(["SET a.x = 1", "SET a.y = 2", "SAVEPOINT s", "ROLLBACK TO s", "RELEASE s"])))
def test_a_rolled_back_transaction_never_changes_anything(steps: list[str]) -> None:
    s = SessionSettings()
    s.note([_set("a.kept", "0")], in_transaction=False)
    s.note(parse("BEGIN"), in_transaction=False)
    for step in steps:
        s.note(parse(step), in_transaction=True)
    s.note(parse("ROLLBACK"), in_transaction=True)
    assert s.statements() == ["SET a.kept = '0'"] and not s.pending
