"""The ``:name`` scanner shared by the Data API client and the emulator."""

from __future__ import annotations

import pytest

from aurora_async.data_api._placeholders import find_placeholders, statement_count


def names(sql: str, dialect: str = "postgresql") -> list[str]:
    return [p.name for p in find_placeholders(sql, dialect)]  # type: ignore[arg-type]


def test_positions_cover_the_colon_and_the_name() -> None:
    sql = "SELECT * FROM t WHERE a = :a AND b = :b_2"
    found = find_placeholders(sql)
    assert [sql[p.start : p.end] for p in found] == [":a", ":b_2"]
    assert names("SELECT :x, :x") == ["x", "x"]


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT ':no' , :yes",
        "SELECT 'it''s :no', :yes",
        'SELECT ":no" FROM t WHERE x = :yes',
        "SELECT 1 -- :no\n, :yes",
        "SELECT /* :no */ :yes",
        "SELECT :yes, x::int, 'a'::text",
        "SELECT arr[1:2], :yes",
        "SELECT :yes, 'end'",
    ],
)
def test_literals_comments_and_casts_are_not_parameters(sql: str, dialect: str) -> None:
    assert names(sql, dialect) == ["yes"]


def test_postgresql_rules() -> None:
    assert names("SELECT $$ :no $$, $f$ ' :no $f$, :yes") == ["yes"]
    assert names("SELECT E'\\' :no', :yes") == ["yes"]
    assert names("SELECT '\\', :yes") == ["yes"]  # standard strings: a backslash is just a character
    assert names("SELECT /* a /* nested :no */ :no */ :yes") == ["yes"]
    assert names("SELECT $1, :yes") == ["yes"]


def test_mysql_rules() -> None:
    assert names("SELECT 'a\\' :no', :yes", "mysql") == ["yes"]
    assert names("SELECT `col:no` FROM t WHERE x = :yes", "mysql") == ["yes"]
    assert names("SELECT 1 # :no\n, :yes", "mysql") == ["yes"]
    assert names("SELECT 5--:yes", "mysql") == ["yes"]  # '--' without a space is minus minus
    assert names("SET @v := :yes", "mysql") == ["yes"]


def test_unterminated_literals_hide_the_rest() -> None:
    assert names("SELECT :yes, 'open :no") == ["yes"]
    assert names("SELECT :yes /* open :no") == ["yes"]
    assert names("SELECT :yes $q$ open :no") == ["yes"]


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("SELECT 1", 1),
        ("SELECT 1;", 1),
        ("SELECT 1 ;  \n", 1),
        ("SELECT 1; -- done", 1),
        ("SELECT 1; /* done */", 1),
        ("SELECT 1;;", 1),
        ("SELECT 1; SELECT 2", 2),
        ("SELECT 1; SELECT 2;", 2),
        ("SELECT ';', \";\" -- ;\n", 1),
        ("SELECT 1 /* ; */ ; SELECT 2", 2),
        ("", 0),
        ("  -- only a comment", 0),
        ("; 'x'", 1),
    ],
)
def test_statement_count(sql: str, count: int, dialect: str) -> None:
    assert statement_count(sql, dialect) == count  # type: ignore[arg-type]


def test_statement_count_follows_each_engines_lexing() -> None:
    assert statement_count("SELECT $$ ; $$; SELECT $t$;$t$") == 2
    assert statement_count("SELECT $1; SELECT 2") == 2
    assert statement_count("SELECT E'\\';' ; SELECT 2") == 2
    assert statement_count("SELECT '\\'; SELECT 2") == 2  # a standard string ends at the quote
    assert statement_count("SELECT 'a\\';' ; SELECT 2", "mysql") == 2
    assert statement_count("SELECT `;` # ;\n", "mysql") == 1
    assert statement_count("SELECT 5--1; SELECT 2", "mysql") == 2  # '--' without a space is minus minus
    assert statement_count("SELECT 1 -- ; SELECT 2", "mysql") == 1
