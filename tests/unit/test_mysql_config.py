"""MySQL: DSN parsing, error classification and session-state tracking; no sockets."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from aurora_async import ConfigurationError
from aurora_async._config import parse
from aurora_async._engines import DRIVERS
from aurora_async._registry import cluster_key
from aurora_async.mysql.connection import AuroraMySQLConnection
from aurora_async.mysql.driver import (
    connect_kwargs,
    is_connection_error,
    is_login_error,
    is_read_only_error,
    may_have_taken_effect,
)

CLUSTER = "mydb.cluster-abc123.us-east-1.rds.amazonaws.com"


def test_a_mysql_dsn_selects_aiomysql() -> None:
    config = parse(f"mysql://app:s%40cret@{CLUSTER}/shop?charset=utf8mb4&autocommit=true&failover_timeout=9")
    assert config.engine == "mysql" and DRIVERS[config.engine].engine == "mysql"
    assert (config.host, config.port, config.user, config.database) == (CLUSTER, 3306, "app", "shop")
    assert config.options.failover_timeout == 9.0
    kwargs = connect_kwargs(config.identity, "10.0.0.5", 3307)
    assert kwargs == {
        "host": "10.0.0.5",
        "port": 3307,
        "connect_timeout": None,  # our own deadline covers the whole connect
        "user": "app",
        "password": "s@cret",
        "db": "shop",
        "charset": "utf8mb4",
        "autocommit": True,
    }
    assert "s@cret" not in repr(config)
    assert cluster_key(config) != cluster_key(parse(f"postgresql://app@{CLUSTER}:3306/shop"))


def test_keywords_as_aiomysql_takes_them() -> None:
    config = parse(engine="mysql", host=CLUSTER, user="app", db="shop", init_command="SET @x = 1", timeout=4)
    assert (config.engine, config.port, config.database) == ("mysql", 3306, "shop")
    assert config.options.connect_timeout == 4.0
    assert config.driver_kwargs["init_command"] == "SET @x = 1"
    assert parse(f"mysql://app@{CLUSTER}", wrapper_dialect="aurora-mysql").options.wrapper_dialect == (
        "aurora-mysql"
    )


@pytest.mark.parametrize(
    ("dsn", "kwargs", "message"),
    [
        (f"mysql://app@{CLUSTER}/db?sslmode=require", {}, "unknown parameter 'sslmode' in the mysql:// DSN"),
        (f"mysql://app@{CLUSTER}/db", {"server_settings": {}}, "aiomysql.connect() arguments"),
        (f"mysql://app@{CLUSTER}/db", {"wrapper_dialect": "aurora-pg"}, "wrapper_dialect must be one of"),
        (f"mysql://app@{CLUSTER}/db", {"engine": "postgresql"}, "contradicts the DSN's mysql:// scheme"),
        (None, {"engine": "oracle", "host": CLUSTER}, "engine must be one of postgresql, mysql"),
        (None, {"engine": "mysql", "host": CLUSTER, "db": "a", "database": "b"}, "give the database once"),
        (f"mysql://app@{CLUSTER}/db?autocommit=maybe", {}, "autocommit must be true or false"),
    ],
)
def test_bad_mysql_input_is_named(dsn: str | None, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse(dsn, **kwargs)
    assert message in str(caught.value)


class _Closed:
    def is_closed(self) -> bool:
        return True


def test_errors_are_classified_like_the_incumbent_does() -> None:
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    assert is_connection_error(lost, None) and may_have_taken_effect(lost)
    for errno in (2003, 2006, 2055, 1053):
        assert is_connection_error(pymysql.err.OperationalError(errno, "x"), None)
    not_connected = pymysql.err.InterfaceError(0, "Not connected")
    assert is_connection_error(not_connected, _Closed()) and not may_have_taken_effect(not_connected)
    assert not is_connection_error(not_connected, None)  # closed by whom? not ours to fail over
    assert is_connection_error(ConnectionResetError(), None)
    assert not is_connection_error(TimeoutError(), None)  # a slow query, not a dead connection
    duplicate = pymysql.err.IntegrityError(1062, "Duplicate entry '1' for key 'PRIMARY'")
    assert not is_connection_error(duplicate, None) and not is_read_only_error(duplicate)
    read_only = pymysql.err.OperationalError(
        1290, "The MariaDB server is running with the --read-only option so it cannot execute this statement"
    )
    assert is_read_only_error(read_only) and not is_connection_error(read_only, None)
    assert not may_have_taken_effect(read_only)
    assert not is_read_only_error(pymysql.err.OperationalError(1290, "running with --secure-file-priv"))
    assert is_read_only_error(pymysql.err.OperationalError(1836, "Running in read-only mode"))
    assert is_login_error(pymysql.err.OperationalError(1045, "Access denied for user 'app'"))
    assert not is_login_error(lost)


@pytest.mark.parametrize(
    ("statement", "field", "value"),
    [
        ("USE shop", "_database", "shop"),
        ("  use `my-db`;", "_database", "my-db"),
        ("SET NAMES utf8mb4", "_charset", "utf8mb4"),
        ("set names 'latin1' COLLATE latin1_bin", "_charset", "latin1"),
        ("SET SESSION TRANSACTION ISOLATION LEVEL READ  COMMITTED", "_isolation", "READ COMMITTED"),
        ("SET @@session.transaction_isolation = 'SERIALIZABLE'", "_isolation", "SERIALIZABLE"),
        ("SET tx_isolation='read-uncommitted'", "_isolation", "READ UNCOMMITTED"),
        ("SET autocommit = 1", "_autocommit", True),
        ("SET SESSION autocommit=OFF", "_autocommit", False),
    ],
)
def test_session_state_statements_are_noted(statement: str, field: str, value: Any) -> None:
    conn = object.__new__(AuroraMySQLConnection)
    conn._database = conn._charset = conn._isolation = conn._autocommit = None
    conn._note(statement)
    assert getattr(conn, field) == value


@pytest.mark.parametrize(
    "statement",
    [
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",  # the next transaction only
        "SELECT 'USE shop'",
        "SET @x = 1",
        "SET GLOBAL autocommit = 0",
        "USE a; DROP TABLE t",
    ],
)
def test_other_statements_change_nothing(statement: str) -> None:
    conn = object.__new__(AuroraMySQLConnection)
    conn._database = conn._charset = conn._isolation = conn._autocommit = None
    conn._note(statement)
    assert (conn._database, conn._charset, conn._isolation, conn._autocommit) == (None, None, None, None)
