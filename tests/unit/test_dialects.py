"""Dialect detection's reading of errors, and how Multi-AZ catalog rows name instances: no sockets."""

from __future__ import annotations

import logging
from typing import Any

import aiomysql
import asyncpg
import pymysql
import pytest
from pymysql.constants import ER

from aurora_async import _dialect
from aurora_async._dialect import host_builder, multi_az_instances
from aurora_async._rds_hosts import HostPattern
from aurora_async._topology import Role
from aurora_async.mysql import dialects as _mysql_dialects
from aurora_async.mysql.dialects import MultiAzMySqlDialect
from aurora_async.postgresql.dialects import AuroraPgDialect, MultiAzPgDialect, RdsPgDialect, detect_dialect

# -- detection: only "does not exist" means "not this dialect" -------------------------------------------


def _pg_error(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    error: asyncpg.PostgresError = cls.new({"M": "x", "C": cls.sqlstate})
    return error


class _PgRaising:
    """An asyncpg connection whose every query raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def fetchrow(self, query: str, timeout: float | None = None) -> Any:
        raise self.error


NOT_THERE = [
    asyncpg.UndefinedFunctionError,  # 42883: aurora_replica_status() off Aurora
    asyncpg.InvalidSchemaNameError,  # 3F000: no rds_tools schema
    asyncpg.UndefinedTableError,  # 42P01
    asyncpg.UndefinedObjectError,  # 42704
    asyncpg.UndefinedColumnError,  # 42703
]
SAYS_NOTHING = [
    asyncpg.InsufficientPrivilegeError,  # 42501: EXECUTE or USAGE revoked
    asyncpg.QueryCanceledError,  # 57014: statement_timeout, pg_cancel_backend()
    asyncpg.LockNotAvailableError,  # 55P03: lock_timeout
    asyncpg.AdminShutdownError,  # 57P01: the server going away
    asyncpg.FeatureNotSupportedError,  # 0A000
]


@pytest.mark.parametrize("error", NOT_THERE, ids=lambda e: e.sqlstate)
@pytest.mark.parametrize("dialect", [AuroraPgDialect, MultiAzPgDialect, RdsPgDialect])
async def test_a_missing_catalog_object_means_not_this_dialect(
    dialect: type[_dialect.Dialect], error: type[asyncpg.PostgresError]
) -> None:
    assert await dialect().detect(_PgRaising(_pg_error(error)), 1.0) is False


async def test_a_server_where_nothing_exists_is_plain_pg() -> None:
    assert (await detect_dialect(_PgRaising(_pg_error(asyncpg.UndefinedFunctionError)), 1.0)).code == "pg"


@pytest.mark.parametrize("error", SAYS_NOTHING, ids=lambda e: e.sqlstate)
@pytest.mark.parametrize("dialect", [AuroraPgDialect, MultiAzPgDialect, RdsPgDialect])
async def test_any_other_sql_error_propagates_unchanged(
    dialect: type[_dialect.Dialect], error: type[asyncpg.PostgresError]
) -> None:
    raised = _pg_error(error)
    with pytest.raises(error) as caught:
        await dialect().detect(_PgRaising(raised), 1.0)
    assert caught.value is raised  # same object, same class, same attributes
    assert any("dialect detection" in note for note in getattr(caught.value, "__notes__", []))


@pytest.mark.parametrize(
    "error", [TimeoutError(), asyncpg.ConnectionDoesNotExistError("gone"), ConnectionResetError()]
)
async def test_client_side_failures_propagate(error: BaseException) -> None:
    with pytest.raises(type(error)):
        await detect_dialect(_PgRaising(error), 1.0)


class _MySqlCursor:
    def __init__(self, conn: _MySqlRaising) -> None:
        self.conn = conn
        self.description: list[tuple[str]] | None = None
        self.rows: list[tuple[Any, ...]] = []

    async def execute(self, query: str) -> None:
        if query.startswith("SHOW VARIABLES LIKE "):
            name = query.split("'")[1]
            self.description = [("Variable_name",), ("Value",)]
            self.rows = [(name, self.conn.variables[name])] if name in self.conn.variables else []
            return
        raise self.conn.error

    async def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    async def close(self) -> None:
        pass


class _MySqlRaising:
    """An aiomysql connection whose every query raises ``error``, except ``SHOW VARIABLES``, which
    answers from ``variables``."""

    def __init__(self, error: BaseException, variables: dict[str, str] | None = None) -> None:
        self.error, self.variables = error, variables or {}
        self._result, self._affected_rows, self.server_status = None, 0, 2  # as aiomysql's, fresh

    def get_transaction_status(self) -> bool:
        return False

    async def cursor(self, cursor_class: type[aiomysql.Cursor]) -> _MySqlCursor:
        return _MySqlCursor(self)


async def _probe_mysql(error: BaseException, **kwargs: Any) -> Any:
    return await _mysql_dialects._probe(_MySqlRaising(error), "SELECT 1", 1.0, **kwargs)


async def _detect_mysql(error: BaseException, **variables: str) -> str:
    return (await _mysql_dialects.detect_dialect(_MySqlRaising(error, variables), 1.0)).code


@pytest.mark.parametrize(
    "errno",
    [ER.NO_SUCH_TABLE, ER.SP_DOES_NOT_EXIST, ER.UNKNOWN_SYSTEM_VARIABLE, ER.BAD_DB_ERROR, ER.UNKNOWN_TABLE]
    + [ER.BAD_FIELD_ERROR],
)
async def test_a_missing_mysql_catalog_object_means_not_this_dialect(errno: int) -> None:
    assert await _probe_mysql(pymysql.err.ProgrammingError(errno, "missing")) is None


@pytest.mark.parametrize(
    "error",
    [
        pymysql.err.OperationalError(ER.TABLEACCESS_DENIED_ERROR, "SELECT command denied"),
        pymysql.err.OperationalError(ER.SPECIFIC_ACCESS_DENIED_ERROR, "Access denied; you need PROCESS"),
        pymysql.err.OperationalError(ER.STATEMENT_TIMEOUT, "max_statement_time exceeded"),  # MariaDB
        pymysql.err.OperationalError(ER.QUERY_TIMEOUT, "maximum statement execution time exceeded"),
        pymysql.err.OperationalError(ER.QUERY_INTERRUPTED, "Query execution was interrupted"),
        pymysql.err.OperationalError(ER.LOCK_WAIT_TIMEOUT, "Lock wait timeout exceeded"),
    ],
    ids=lambda e: str(e.args[0]),
)
async def test_any_other_mysql_server_error_propagates_unchanged(error: pymysql.err.MySQLError) -> None:
    with pytest.raises(type(error)) as caught:
        await _probe_mysql(error)
    assert caught.value is error
    assert any("dialect detection" in note for note in getattr(error, "__notes__", []))


@pytest.mark.parametrize(
    "error",
    [
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
        pymysql.err.InterfaceError("(0, '')"),
        TimeoutError(),
    ],
)
async def test_a_lost_mysql_connection_propagates(error: BaseException) -> None:
    with pytest.raises(type(error)):
        await _probe_mysql(error)


async def test_a_mysql_table_denied_counts_as_missing_only_where_mysql_cannot_tell(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """MySQL answers 1142 for any table of a schema the user has no privilege in, existing or not."""
    caplog.set_level(logging.WARNING, logger="aurora_async")
    denied = pymysql.err.OperationalError(ER.TABLEACCESS_DENIED_ERROR, "SELECT command denied")
    with pytest.raises(pymysql.err.OperationalError):
        await _probe_mysql(denied)
    assert not caplog.records
    assert await _probe_mysql(denied, denied_means_absent=True) is None
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING and "GRANT SELECT ON mysql.rds_topology" in warning.getMessage()
    # the Multi-AZ probe reads mysql.rds_topology: an RDS-like server (report_host set) is not Multi-AZ
    # for a user who may not read it; a server that is not RDS-like is not asked at all
    caplog.clear()
    assert await _detect_mysql(denied, report_host="db-1.example.com") == "mysql"
    assert len(caplog.records) == 1
    caplog.clear()
    assert await _detect_mysql(denied, report_host="") == "mysql"
    assert await _detect_mysql(denied) == "mysql"
    assert not caplog.records


async def test_a_statement_timeout_of_the_multi_az_probe_propagates() -> None:
    timeout = pymysql.err.OperationalError(ER.STATEMENT_TIMEOUT, "max_statement_time exceeded")
    with pytest.raises(pymysql.err.OperationalError) as caught:
        await _detect_mysql(timeout, report_host="db-1.example.com")
    assert caught.value is timeout
    assert (
        await _detect_mysql(pymysql.err.ProgrammingError(ER.NO_SUCH_TABLE, "no"), report_host="x") == "mysql"
    )


# -- Multi-AZ instance names: an IP address never collapses instances ------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "port", "name"),
    [
        ("db-1.abc123.us-east-1.rds.amazonaws.com", 5432, "db-1"),  # RDS: the instance identifier
        ("db-1", 5432, "db-1"),
        ("10.0.0.5", 5432, "10.0.0.5:5432"),  # was "10"
        ("10.0.0.5", None, "10.0.0.5"),
        ("fd00::5", 3306, "[fd00::5]:3306"),
        ("FD00:0::5", 3306, "[fd00::5]:3306"),  # one address, one name, however it is spelled
    ],
)
def test_instance_names(endpoint: str, port: int | None, name: str) -> None:
    assert _dialect.multi_az_instance_name(endpoint, port) == name


def _source_is(source: str) -> Any:
    return lambda row_id: row_id == source


@pytest.mark.parametrize("pattern", [None, HostPattern.parse("?.abc123.us-east-1.rds.amazonaws.com")])
def test_instances_listed_by_address_stay_distinct(pattern: HostPattern | None) -> None:
    rows = [
        ("db-A", "10.0.0.1", 5432),
        ("db-B", "10.0.0.2", 5432),
        ("db-C", "10.0.0.1", 5433),  # the same address, another port: another instance
        ("db-D", "db-d.abc123.us-east-1.rds.amazonaws.com", 5432),
    ]
    build = host_builder(pattern, "10.0.0.100", 6000)
    instances = multi_az_instances(rows, _source_is("db-C"), build)
    assert instances is not None
    by_id = {i.instance_id: i for i in instances}
    assert set(by_id) == {"10.0.0.1:5432", "10.0.0.2:5432", "10.0.0.1:5433", "db-d"}
    assert [i.instance_id for i in instances if i.role is Role.WRITER] == ["10.0.0.1:5433"]
    # an address is reached as listed, pattern or not (it has no instance id to put in one)
    assert (by_id["10.0.0.1:5433"].host, by_id["10.0.0.1:5433"].port) == ("10.0.0.1", 5433)
    assert (by_id["10.0.0.2:5432"].host, by_id["10.0.0.2:5432"].port) == ("10.0.0.2", 5432)
    expected_d = "db-d.abc123.us-east-1.rds.amazonaws.com" if pattern is not None else rows[3][1]
    assert by_id["db-d"].host == expected_d


class _MultiAzPgRow:
    """What ``rds_tools.show_topology()`` answers a connection about its own instance."""

    def __init__(self, endpoint: str | None, port: int | None) -> None:
        self.row = (endpoint, port)

    async def fetchrow(self, query: str, timeout: float | None = None) -> Any:
        assert query == MultiAzPgDialect.INSTANCE_ID_SQL
        return self.row

    async def fetchval(self, query: str, timeout: float | None = None) -> Any:
        assert query == MultiAzPgDialect.SELF_SQL
        return "db-SELF"


class _MultiAzMySqlRow(_MySqlRaising):
    def __init__(self, endpoint: str | None, port: int | None) -> None:
        super().__init__(AssertionError("unexpected query"))
        self.row = (12, endpoint, port)

    async def cursor(self, cursor_class: type[aiomysql.Cursor]) -> _MySqlCursor:
        row = self.row

        class Cursor(_MySqlCursor):
            async def execute(self, query: str) -> None:
                assert query == MultiAzMySqlDialect.INSTANCE_ID_SQL
                self.description = [("id",), ("endpoint",), ("port",)]
                self.rows = [row]

        return Cursor(self)


@pytest.mark.parametrize(
    ("endpoint", "port"),
    [("10.0.0.1", 5433), ("fd00::1", 5432), ("db-c.abc123.us-east-1.rds.amazonaws.com", 5432)],
)
async def test_a_connection_names_its_instance_as_the_topology_does(endpoint: str, port: int) -> None:
    build = host_builder(None, "10.0.0.100", 6000)
    (listed,) = multi_az_instances([("db-C", endpoint, port)], _source_is("db-C"), build) or []
    assert await MultiAzPgDialect().instance_id(_MultiAzPgRow(endpoint, port), 1.0) == listed.instance_id
    mysql = await MultiAzMySqlDialect().instance_id(_MultiAzMySqlRow(endpoint, port), 1.0)
    assert mysql == listed.instance_id


async def test_an_instance_missing_from_the_catalog_is_named_by_its_resource_id() -> None:
    assert await MultiAzPgDialect().instance_id(_MultiAzPgRow(None, None), 1.0) == "db-SELF"
