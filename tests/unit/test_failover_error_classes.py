"""The failover errors each driver's connections raise are also that driver's connection-lost error, so
code written for asyncpg or aiomysql handles a failover as it handled a lost connection."""

from __future__ import annotations

import asyncpg
import pymysql
import pytest

import aurora_async
from aurora_async._exceptions import FailoverError
from aurora_async.mysql.driver import MYSQL
from aurora_async.postgresql.driver import POSTGRESQL

KINDS = [
    aurora_async.FailoverSuccessError,
    aurora_async.TransactionResolutionUnknownError,
    aurora_async.FailoverFailedError,
]


@pytest.mark.parametrize("kind", KINDS)
def test_on_postgresql_each_is_the_error_asyncpg_raises_for_a_lost_connection(
    kind: type[FailoverError],
) -> None:
    error = POSTGRESQL.failover_error(kind, "the connection to a failed")
    assert isinstance(error, kind) and isinstance(error, aurora_async.FailoverError)
    assert isinstance(error, asyncpg.ConnectionDoesNotExistError)
    assert isinstance(error, asyncpg.PostgresConnectionError)
    assert error.sqlstate == "08003"  # connection_does_not_exist, as asyncpg's own has it
    assert str(error) == "the connection to a failed"
    with pytest.raises(asyncpg.PostgresConnectionError):
        raise error


@pytest.mark.parametrize(("kind", "errno"), list(zip(KINDS, [2013, 2013, 2003], strict=True)))
def test_on_mysql_each_is_an_operational_error_with_the_client_error_number(
    kind: type[FailoverError], errno: int
) -> None:
    error = MYSQL.failover_error(kind, "the connection to a failed")
    assert isinstance(error, kind) and isinstance(error, pymysql.err.OperationalError)
    assert error.args == (errno, "the connection to a failed")  # code reading e.args[0] sees the errno
    with pytest.raises(pymysql.err.OperationalError):
        raise error


def test_may_have_run_is_kept() -> None:
    for driver in (POSTGRESQL, MYSQL):
        error = driver.failover_error(aurora_async.FailoverSuccessError, "m", may_have_run=False)
        assert error.may_have_run is False


def test_the_engine_neutral_classes_stay_what_they_were() -> None:
    # raised where no driver is involved (connect() refusing a failover_mode it cannot meet)
    assert not issubclass(aurora_async.FailoverSuccessError, (asyncpg.PostgresError, pymysql.err.MySQLError))
