"""Where the Data API emulator answers as Serverless v2 and provisioned clusters do, found by running an
independent client's own suite against it (``compat.data_api_suite``): error messages that carry their
SQLState and PostgreSQL's hint, compact JSON, a commit after a failed statement, and the answer to an
unknown resource ARN. Each source is given in the emulator where it is implemented."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pymysql
import pytest
import pytest_asyncio

from aurora_async.testing import AuroraSimulator, DataApiEmulator
from aurora_async.testing.data_api._mysql import MySQLBackend
from tests.testing.test_data_api_emulator import Api, api, dummy_aws, error_of, table  # noqa: F401 (an autouse fixture)

pytestmark = pytest.mark.asyncio(loop_scope="module")

OTHER_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:no-such-cluster"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pg_emu() -> AsyncIterator[DataApiEmulator]:
    async with AuroraSimulator("postgresql", 1) as sim, DataApiEmulator(sim) as emu:
        yield emu


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def my_emu() -> AsyncIterator[DataApiEmulator]:
    async with AuroraSimulator("mysql", 1) as sim, DataApiEmulator(sim) as emu:
        yield emu


def emulator(engine: str, pg_emu: DataApiEmulator, my_emu: DataApiEmulator) -> DataApiEmulator:
    return pg_emu if engine == "postgresql" else my_emu


# -- error messages -----------------------------------------------------------------------------------------


async def test_mysql_errors_end_with_the_error_code_and_sqlstate(my_emu: DataApiEmulator) -> None:
    name = table()
    async with api(my_emu) as db:
        await db.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY)")
        await db.execute(f"INSERT INTO {name} VALUES (1)")
        cases = {
            "selec * from nothing": (1064, "42000"),
            "SELECT nope": (1054, "42S22"),
            "SELECT * FROM no_such_table": (1146, "42S02"),
            f"INSERT INTO {name} VALUES (1)": (1062, "23000"),
        }
        for sql, (errno, sqlstate) in cases.items():
            status, code, message, _ = await error_of(db.execute(sql))
            assert (status, code) == (400, "DatabaseErrorException"), sql
            assert message.endswith(f"; Error code: {errno}; SQLState: {sqlstate}"), message
        assert (await error_of(db.execute("SELECT nope")))[2] == (
            "Unknown column 'nope' in 'SELECT'; Error code: 1054; SQLState: 42S22"
        )
        await db.execute(f"DROP TABLE {name}")


async def test_mysql_sqlstate_without_it_in_the_driver_error() -> None:
    """PyMySQL before 1.2 drops the error packet's SQLSTATE: the common errors still get theirs."""
    backend = MySQLBackend("mysql://nobody@127.0.0.1:1/none", "test")
    for errno, sqlstate in ((1064, "42000"), (1146, "42S02"), (1213, "40001"), (1105, "HY000")):
        error = backend.api_error(pymysql.err.ProgrammingError(errno, "message"))
        assert error is not None and error.message == f"message; Error code: {errno}; SQLState: {sqlstate}"


async def test_postgresql_errors_keep_hint_and_position_on_one_line(pg_emu: DataApiEmulator) -> None:
    name = table()
    async with api(pg_emu) as db:
        assert (await error_of(db.execute("SELECT nope")))[:3] == (
            400,
            "DatabaseErrorException",
            'ERROR: column "nope" does not exist; Position: 8; SQLState: 42703',
        )
        assert (await error_of(db.execute("selec * from table")))[2] == (
            'ERROR: syntax error at or near "selec"; Position: 1; SQLState: 42601'
        )
        assert (await error_of(db.execute("SELECT 1 + 'x'::text")))[2] == (
            "ERROR: operator does not exist: integer + text; Hint: No operator matches the given name and "
            "argument types. You might need to add explicit type casts.; Position: 10; SQLState: 42883"
        )
        await db.execute(f"CREATE TABLE {name} (v int NOT NULL)")
        assert (await error_of(db.execute(f"INSERT INTO {name} VALUES (NULL)")))[2] == (
            f'ERROR: null value in column "v" of relation "{name}" violates not-null constraint; '
            "SQLState: 23502"
        )  # PostgreSQL's detail ("Failing row contains (null).") is not part of it
        assert (await error_of(db.execute("SELECT 1/0")))[2] == "ERROR: division by zero; SQLState: 22012"
        await db.execute(f"DROP TABLE {name}")


# -- JSON ---------------------------------------------------------------------------------------------------


async def test_postgresql_json_comes_back_compact(pg_emu: DataApiEmulator) -> None:
    async with api(pg_emu) as db:
        row = (
            await db.rows(
                'SELECT \'{"x": 0, "y": "a, b: c", "z": [0, 0, 1]}\'::jsonb AS jb, '
                '\'{ "k" :\n [1.50, "two  words", null, true] }\'::json AS j, '
                "ARRAY['{\"a\": [1, 2]}'::jsonb] AS arr, :big::jsonb AS big",
                {"big": f'{{"n": {127**127}}}'},
            )
        )[0]
        assert row == [
            '{"x":0,"y":"a, b: c","z":[0,0,1]}',
            '{"k":[1.50,"two  words",null,true]}',
            ['{"a":[1,2]}'],
            f'{{"n":{127**127}}}',
        ]
        formatted = await db.execute("SELECT '{\"a\": [1, 2]}'::jsonb AS doc", formatRecordsAs="JSON")
        assert formatted["formattedRecords"] == '[{"doc":"{\\"a\\":[1,2]}"}]'


@pytest.mark.parametrize("number", ["1e400", "-1e400", str(512**512)], ids=["1e400", "-1e400", "512**512"])
async def test_postgresql_json_numbers_beyond_a_double_are_refused(
    pg_emu: DataApiEmulator, number: str
) -> None:
    async with api(pg_emu) as db:
        for cast in ("json", "jsonb"):
            status, code, message, _ = await error_of(db.execute(f"SELECT '[{number}]'::{cast}"))
            assert (status, code) == (400, "UnsupportedResultException")
            assert "JSON number beyond the range" in message and "::text" in message
        assert await db.rows(f"SELECT '[{number}]'::json::text") == [[f"[{number}]"]]


# -- transactions -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_a_commit_after_a_failed_statement_answers_committed(
    engine: str, pg_emu: DataApiEmulator, my_emu: DataApiEmulator
) -> None:
    """PostgreSQL rolls an aborted transaction back on COMMIT; MySQL keeps what ran before the error.
    Either way CommitTransaction answers "Transaction Committed"."""
    emu = emulator(engine, pg_emu, my_emu)
    name = table()
    async with api(emu) as db:
        await db.execute(f"CREATE TABLE {name} (v INT)")
        tx = await db.begin()
        await db.execute(f"INSERT INTO {name} VALUES (1)", transactionId=tx)
        assert (await error_of(db.execute("SELECT nope", transactionId=tx)))[1] == "DatabaseErrorException"
        assert await db.commit(tx) == "Transaction Committed"
        assert emu.open_transactions == 0
        assert (await error_of(db.commit(tx)))[1] == "NotFoundException"
        assert await db.rows(f"SELECT COUNT(*) FROM {name}") == [[0 if engine == "postgresql" else 1]]
        await db.execute(f"DROP TABLE {name}")


# -- resource ARN -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_an_unknown_resource_arn_answers_http_endpoint_not_enabled(
    engine: str, pg_emu: DataApiEmulator, my_emu: DataApiEmulator
) -> None:
    emu = emulator(engine, pg_emu, my_emu)
    async with api(emu) as db:
        other = Api(db.client, emu)
        other.arns["resourceArn"] = OTHER_ARN
        tx = await db.begin()
        for call in (
            other.execute("SELECT 1"),
            other.batch("SELECT 1", None),
            other.begin(),
            other.commit(tx),
            other.rollback(tx),
        ):
            status, code, message, response = await error_of(call)
            assert (status, code) == (400, "HttpEndpointNotEnabledException")
            assert message == f"HttpEndpoint is not enabled for resource {OTHER_ARN}"
            assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == code
        assert await db.commit(tx) == "Transaction Committed"  # untouched by the calls with another ARN
