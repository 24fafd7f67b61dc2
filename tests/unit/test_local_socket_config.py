"""How a Unix socket is given (asyncpg's host directory, ``?host=``, aiomysql's ``unix_socket=``) and
the single-address rules it brings, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from aurora_async import ConfigurationError
from aurora_async._config import parse
from aurora_async._plugins import Plugin


@pytest.mark.parametrize(
    ("dsn", "kwargs", "host", "port"),
    [
        (None, {"host": "/run/postgresql", "port": 5433}, "/run/postgresql", 5433),
        ("postgresql://app@/db?host=/run/postgresql&port=5433", {}, "/run/postgresql", 5433),
        ("postgresql://app@/db?host=/run/postgresql", {}, "/run/postgresql", 5432),
        (
            None,
            {"engine": "mysql", "unix_socket": "/run/mysqld/mysqld.sock"},
            "/run/mysqld/mysqld.sock",
            3306,
        ),
        ("mysql://app@/db?unix_socket=/run/mysqld/mysqld.sock", {}, "/run/mysqld/mysqld.sock", 3306),
        (
            "mysql://app@localhost/db",
            {"unix_socket": "/run/mysqld/mysqld.sock"},
            "/run/mysqld/mysqld.sock",
            3306,
        ),
    ],
)
def test_a_unix_socket_is_the_one_address_with_the_plain_dialect_and_no_host_monitoring(
    dsn: str | None, kwargs: dict[str, Any], host: str, port: int
) -> None:
    config = parse(dsn, **kwargs)
    assert (config.host, config.port) == (host, port)
    assert config.options.wrapper_dialect == config.driver.plain_dialect.code
    assert not config.options.has(Plugin.HOST_MONITORING)
    assert config.options.has(Plugin.FAILOVER)  # a lost connection is replaced through the socket


def test_the_url_host_wins_over_the_query_host_as_in_asyncpg() -> None:
    config = parse("postgresql://app@db.example.com/db?host=/run/postgresql")
    assert config.host == "db.example.com" and config.options.wrapper_dialect is None


def test_unix_socket_none_is_aiomysqls_default() -> None:
    config = parse("mysql://app@db.example.com/db", unix_socket=None)
    assert config.host == "db.example.com" and "unix_socket" not in config.driver_kwargs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "/run/postgresql", "cluster_instance_host_pattern": "?.example.com"}, "local Unix socket"),
        ({"host": "/run/postgresql", "plugins": ("read_write_splitting",)}, "read_write_splitting"),
        ({"host": "/run/postgresql", "wrapper_dialect": "aurora-pg"}, "wrapper_dialect"),
        ({"host": "run/postgresql"}, "host must be one host name"),
        ({"engine": "mysql", "unix_socket": "mysqld.sock"}, "unix_socket must be an absolute path"),
        ({"engine": "mysql", "unix_socket": 3306}, "unix_socket must be an absolute path"),
    ],
)
def test_what_cannot_apply_to_a_unix_socket_is_a_configuration_error(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse(**kwargs)


def test_postgresql_reads_what_asyncpg_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in {
        "PGHOST": "/run/postgresql",
        "PGPORT": "5433",
        "PGUSER": "app",
        "PGPASSWORD": "from-env",
        "PGDATABASE": "shop",
    }.items():
        monkeypatch.setenv(variable, value)
    config = parse()
    assert (config.host, config.port, config.user, config.database) == (
        "/run/postgresql",
        5433,
        "app",
        "shop",
    )
    assert config.password == "from-env"
    given = parse("postgresql://other@db.example.com:5432/db")  # what the DSN says wins
    assert (given.host, given.port, given.user, given.database) == ("db.example.com", 5432, "other", "db")
    assert given.password == "from-env"  # (asyncpg's rule too: the variable fills what is missing)
    assert parse(engine="mysql", host="db.example.com").user is None  # aiomysql reads no PG* variable
    with_iam = parse(
        host="db.example.com", user="app", plugins=("iam",), iam_region="us-east-1", iam_allow_plaintext=True
    )
    assert with_iam.password is None  # the token is the password: PGPASSWORD does not clash with it
