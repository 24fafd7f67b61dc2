"""aurora_async.data_api end to end: aioboto3's rds-data client -> the Data API emulator (HTTP on
loopback) -> the simulator's real PostgreSQL and MariaDB servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

import aurora_async
from aurora_async import data_api
from aurora_async.data_api import (
    DataApiError,
    DataApiNotEnabledError,
    DatabaseError,
    DatabaseResumingError,
    Json,
    ParameterError,
    RequestOutcomeUnknownError,
    ResultTooLargeError,
    StatementTimeoutError,
    TransactionNotFoundError,
    UnsupportedResultError,
)
from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, DataApiEmulator
from tests.helpers import eventually

module_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = module_loop


@pytest.fixture(scope="module", autouse=True)
def dummy_aws() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in DUMMY_AWS_ENV.items():
            patch.setenv(key, value)
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pg_sim() -> AsyncIterator[AuroraSimulator]:
    async with AuroraSimulator("postgresql", 1) as sim:
        yield sim


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def my_sim() -> AsyncIterator[AuroraSimulator]:
    async with AuroraSimulator("mysql", 1) as sim:
        yield sim


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pg_emu(pg_sim: AuroraSimulator) -> AsyncIterator[DataApiEmulator]:
    async with DataApiEmulator(pg_sim) as emu:
        yield emu


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def my_emu(my_sim: AuroraSimulator) -> AsyncIterator[DataApiEmulator]:
    async with DataApiEmulator(my_sim) as emu:
        yield emu


def connect(emu: DataApiEmulator, **options: Any) -> Any:
    return data_api.connect(
        resource_arn=emu.resource_arn,
        secret_arn=emu.secret_arn,
        endpoint_url=emu.endpoint_url,
        **options,
    )


def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


# -- types ----------------------------------------------------------------------------------------------

PG_VALUES: list[tuple[str, Any]] = [
    ("bool", True),
    ("int8", 2**62),
    ("int4", -7),
    ("float8", 1.25),
    ("numeric", Decimal("12345678901234567890.123456789")),
    ("text", "naïve ☃ 'quoted' :colon"),
    ("bytea", bytes(range(256))),
    ("date", dt.date(2026, 11, 23)),
    ("time", dt.time(23, 59, 58, 123456)),
    ("timestamp", dt.datetime(2026, 11, 23, 10, 11, 12, 345000)),
    ("timestamptz", dt.datetime(2026, 11, 23, 10, 11, 12, tzinfo=dt.UTC)),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("jsonb", {"a": [1, 2.5, None, "x"], "b": {"c": True}}),
    ("json", [1, "two"]),
]


async def test_every_postgresql_type_round_trips(pg_emu: DataApiEmulator) -> None:
    table = table_name()
    columns = ", ".join(f"c_{kind} {kind}" for kind, _ in PG_VALUES)
    params = {f"c_{kind}": value for kind, value in PG_VALUES}
    async with connect(pg_emu, engine="postgresql") as conn:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, {columns})")
        names = ", ".join(params)
        placeholders = ", ".join(f":{name}" for name in params)
        result = await conn.execute(f"INSERT INTO {table} (id, {names}) VALUES (1, {placeholders})", params)
        assert result.rowcount == 1 and result.generated == ()
        await conn.execute(f"INSERT INTO {table} (id) VALUES (2)")  # every column NULL
        rows = await conn.fetch(f"SELECT {names} FROM {table} ORDER BY id")
        assert dict(rows[0]) == params
        assert all(value is None for value in rows[1])
        arrays = await conn.fetchrow(
            "SELECT ARRAY[1, NULL, 3]::int4[] AS ints, ARRAY['a', NULL]::text[] AS texts, "
            "ARRAY[1.5, 2]::numeric[] AS decimals, ARRAY[DATE '2026-01-02'] AS dates, "
            "ARRAY[true, false] AS bools, ARRAY[0.5]::float8[] AS floats, ARRAY[NULL]::int8[] AS nulls"
        )
        assert arrays is not None
        assert dict(arrays) == {
            "ints": [1, None, 3],
            "texts": ["a", None],
            "decimals": [Decimal("1.5"), Decimal("2")],
            "dates": [dt.date(2026, 1, 2)],
            "bools": [True, False],
            "floats": [0.5],
            "nulls": [None],
        }
        # botocore alone cannot read these (boto3 issue 4508): NULLs in number and boolean arrays
        row = await conn.fetchrow(
            "SELECT ARRAY[NULL, 2.5]::float8[] AS f, ARRAY[true, NULL] AS b, '\\x01'::bytea AS blob"
        )
        assert row == ([None, 2.5], [True, None], b"\x01")
        aware = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
        assert await conn.fetchval("SELECT :t::timestamptz", {"t": aware}) == aware
        assert await conn.fetchval("SELECT :big::numeric", {"big": 10**30}) == Decimal(10**30)
        assert await conn.fetchval("SELECT :j::jsonb", {"j": Json("plain string")}) == "plain string"
        await conn.execute(f"DROP TABLE {table}")


async def test_echoed_parameters_keep_their_types(pg_emu: DataApiEmulator) -> None:
    params = {f"p_{kind}": value for kind, value in PG_VALUES if kind not in ("json", "jsonb")}
    params["p_json"] = {"k": [1, None]}
    sql = "SELECT " + ", ".join(f":{name} AS {name}" for name in params)
    async with connect(pg_emu) as conn:
        row = await conn.fetchrow(sql, params)
    assert row is not None
    expected = dict(params)
    expected["p_timestamptz"] = params["p_timestamptz"].replace(tzinfo=None)  # TIMESTAMP hint: no zone
    assert dict(row) == expected


MYSQL_COLUMNS: list[tuple[str, str, Any, Any]] = [
    # name, column type, value sent, value read back
    ("c_bool", "BOOL", True, True),
    ("c_bigint", "BIGINT", -(2**62), -(2**62)),
    ("c_unsigned", "INT UNSIGNED", 4_000_000_000, 4_000_000_000),
    ("c_double", "DOUBLE", 2.5, 2.5),
    (
        "c_decimal",
        "DECIMAL(30,9)",
        Decimal("123456789012345678.123456789"),
        Decimal("123456789012345678.123456789"),
    ),
    ("c_varchar", "VARCHAR(100)", "naïve ☃ 'q' :colon %s", "naïve ☃ 'q' :colon %s"),
    ("c_blob", "BLOB", bytes(range(256)), bytes(range(256))),
    ("c_date", "DATE", dt.date(2026, 11, 23), dt.date(2026, 11, 23)),
    (
        "c_time",
        "TIME(6)",
        dt.time(1, 2, 3, 500000),
        dt.timedelta(hours=1, minutes=2, seconds=3, microseconds=500000),
    ),
    ("c_datetime", "DATETIME(6)", dt.datetime(2026, 1, 2, 3, 4, 5, 6), dt.datetime(2026, 1, 2, 3, 4, 5, 6)),
    ("c_uuid", "CHAR(36)", uuid.UUID(int=5), str(uuid.UUID(int=5))),
    # MariaDB's JSON is LONGTEXT: the emulator cannot tell it from text, so it comes back as text
    ("c_json", "JSON", {"a": 1}, '{"a":1}'),
]


async def test_every_mysql_type_round_trips(my_emu: DataApiEmulator) -> None:
    table = table_name()
    columns = ", ".join(f"{name} {kind}" for name, kind, _, _ in MYSQL_COLUMNS)
    params = {name: sent for name, _, sent, _ in MYSQL_COLUMNS}
    async with connect(my_emu, engine="mysql") as conn:
        await conn.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, {columns})")
        names = ", ".join(params)
        placeholders = ", ".join(f":{name}" for name in params)
        first = await conn.execute(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", params)
        second = await conn.execute(f"INSERT INTO {table} (c_bool) VALUES (NULL)")
        assert (first.rowcount, second.rowcount) == (1, 1)
        assert second.generated == (first.generated[0] + 1,)
        rows = await conn.fetch(f"SELECT {names} FROM {table} ORDER BY id")
        assert dict(rows[0]) == {name: back for name, _, _, back in MYSQL_COLUMNS}
        assert all(value is None for value in rows[1])
        await conn.execute(f"DROP TABLE {table}")


# -- statements, batches, transactions ------------------------------------------------------------------


async def test_calls_outside_a_transaction_run_concurrently(pg_emu: DataApiEmulator) -> None:
    async with connect(pg_emu) as conn:
        started = time.monotonic()
        values = await asyncio.gather(
            *(conn.fetchval("SELECT :n::int8 FROM pg_sleep(0.2)", {"n": n}) for n in range(8))
        )
        elapsed = time.monotonic() - started
    assert values == list(range(8))
    assert elapsed < 8 * 0.2  # not one after another (generous: 2 cores)


async def test_executemany_inserts_every_set_and_returns_mysql_ids(my_emu: DataApiEmulator) -> None:
    table = table_name()
    async with connect(my_emu, engine="mysql") as conn:
        await conn.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10))")
        generated = await conn.executemany(
            f"INSERT INTO {table} (v) VALUES (:v)", [{"v": f"v{i}"} for i in range(5)]
        )
        ids = [g[0] for g in generated]
        assert ids == list(range(ids[0], ids[0] + 5))
        before = my_emu.requests["BatchExecuteStatement"]
        assert await conn.executemany(f"INSERT INTO {table} (v) VALUES (:v)", []) == []
        assert my_emu.requests["BatchExecuteStatement"] == before  # nothing sent for no sets
        rows = await conn.fetch(f"SELECT v FROM {table} ORDER BY id")
        assert [r["v"] for r in rows] == [f"v{i}" for i in range(5)]
        await conn.execute(f"DROP TABLE {table}")


async def test_a_batch_over_several_requests_is_all_or_nothing(
    pg_emu: DataApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aurora_async.data_api import _batches

    monkeypatch.setattr(_batches, "BATCH_BYTES", 400)  # a few sets per request
    table = table_name()
    async with connect(pg_emu) as conn:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        before = pg_emu.requests["BatchExecuteStatement"]
        await conn.executemany(f"INSERT INTO {table} VALUES (:id)", [{"id": i} for i in range(40)])
        assert pg_emu.requests["BatchExecuteStatement"] - before > 3
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 40
        with pytest.raises(DatabaseError) as info:  # the last set repeats a key: nothing is kept
            await conn.executemany(
                f"INSERT INTO {table} VALUES (:id)", [{"id": i} for i in range(100, 140)] + [{"id": 0}]
            )
        assert info.value.sqlstate == "23505"
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 40
        assert pg_emu.open_transactions == 0
        await conn.execute(f"DROP TABLE {table}")


async def test_transaction_commits_rolls_back_and_nests(pg_emu: DataApiEmulator) -> None:
    table = table_name()
    async with connect(pg_emu) as conn:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {table} VALUES (1)")
            assert conn.is_in_transaction()
            with pytest.raises(RuntimeError):
                async with conn.transaction():  # a savepoint
                    await conn.execute(f"INSERT INTO {table} VALUES (2)")
                    raise RuntimeError("undo the savepoint only")
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES (3)")
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES (4)")
                1 / 0  # noqa: B018
        tx = conn.transaction()
        await tx.start()
        await conn.execute(f"INSERT INTO {table} VALUES (5)")
        await tx.rollback()
        assert not conn.is_in_transaction()
        assert [r[0] for r in await conn.fetch(f"SELECT id FROM {table} ORDER BY id")] == [1, 3]
        assert pg_emu.open_transactions == 0
        await conn.execute(f"DROP TABLE {table}")


async def test_calls_inside_a_transaction_are_serialised(my_emu: DataApiEmulator) -> None:
    table = table_name()
    async with connect(my_emu) as conn:
        await conn.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
        async with conn.transaction():
            # the Data API refuses a second call while one runs on the transaction; we queue them
            await asyncio.gather(
                *(
                    conn.execute(f"INSERT INTO {table} SELECT :id FROM (SELECT SLEEP(0.02)) s", {"id": i})
                    for i in range(10)
                )
            )
        assert await conn.fetchval(f"SELECT COUNT(*) FROM {table}") == 10
        await conn.execute(f"DROP TABLE {table}")


async def test_an_expired_transaction_is_a_clear_error(pg_sim: AuroraSimulator) -> None:
    table = table_name()
    async with DataApiEmulator(pg_sim, transaction_timeout=0.5) as emu, connect(emu) as conn:
        await conn.execute(f"CREATE TABLE {table} (id int)")
        with pytest.raises(TransactionNotFoundError, match="not found"):
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES (1)")

                async def expired() -> bool:
                    return emu.open_transactions == 0

                await eventually(expired, timeout=10, what="the idle transaction to expire")
                await conn.execute(f"INSERT INTO {table} VALUES (2)")
        assert not conn.is_in_transaction()
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
        tx = conn.transaction()
        await tx.start()
        await eventually(expired, timeout=10, what="the idle transaction to expire")
        with pytest.raises(TransactionNotFoundError, match="nothing of it was committed"):
            await tx.commit()
        await conn.execute(f"DROP TABLE {table}")


async def test_a_failed_postgresql_statement_makes_the_commit_a_rollback(pg_emu: DataApiEmulator) -> None:
    """The Data API answers "Transaction Committed" for an aborted PostgreSQL transaction, which the
    database rolled back: commit() says so instead."""
    table = table_name()
    async with connect(pg_emu) as conn:
        await conn.execute(f"CREATE TABLE {table} (id int)")
        with pytest.raises(DatabaseError, match="rolled back, not committed") as info:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES (1)")
                with pytest.raises(DatabaseError):
                    await conn.fetch("SELECT nope")
        assert info.value.sqlstate == "25P02" and info.value.code is None
        assert isinstance(info.value.__cause__, DatabaseError) and info.value.__cause__.sqlstate == "42703"
        assert not conn.is_in_transaction() and pg_emu.open_transactions == 0
        # a savepoint rolled back undoes the failure; one committed over it hands it on
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {table} VALUES (2)")
            with pytest.raises(DatabaseError):
                async with conn.transaction():
                    await conn.fetch("SELECT nope")
            await conn.execute(f"INSERT INTO {table} VALUES (3)")
        with pytest.raises(DatabaseError, match="rolled back, not committed"):
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES (4)")
                with pytest.raises(DatabaseError, match="current transaction is aborted"):
                    async with conn.transaction():
                        with pytest.raises(DatabaseError):
                            await conn.fetch("SELECT nope")
        assert [r[0] for r in await conn.fetch(f"SELECT id FROM {table} ORDER BY id")] == [2, 3]
        assert pg_emu.open_transactions == 0
        await conn.execute(f"DROP TABLE {table}")


async def test_a_failed_mysql_statement_leaves_the_transaction_to_commit(my_emu: DataApiEmulator) -> None:
    table = table_name()
    async with connect(my_emu) as conn:
        await conn.execute(f"CREATE TABLE {table} (id INT)")
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {table} VALUES (1)")
            with pytest.raises(DatabaseError) as info:
                await conn.fetch("selec * from nothing")
            assert (info.value.error_code, info.value.sqlstate) == (1064, "42000")
        assert await conn.fetchval(f"SELECT COUNT(*) FROM {table}") == 1
        await conn.execute(f"DROP TABLE {table}")


async def test_an_unknown_cluster_arn_is_a_clear_error(pg_emu: DataApiEmulator) -> None:
    other = "arn:aws:rds:us-east-1:123456789012:cluster:typo"
    before = pg_emu.requests["ExecuteStatement"]
    async with data_api.connect(
        resource_arn=other, secret_arn=pg_emu.secret_arn, endpoint_url=pg_emu.endpoint_url
    ) as conn:
        with pytest.raises(DataApiNotEnabledError, match="enable-http-endpoint") as info:
            await conn.fetchval("SELECT 1")
    assert info.value.code == "HttpEndpointNotEnabledException" and info.value.status == 400
    assert f"HttpEndpoint is not enabled for resource {other}" in info.value.message
    assert pg_emu.requests["ExecuteStatement"] == before + 1  # not sent again


# -- large results ---------------------------------------------------------------------------------------


async def test_large_postgresql_results_are_paged_not_cut(pg_sim: AuroraSimulator) -> None:
    query = "SELECT g AS n, repeat('x', 200) AS pad FROM generate_series(1, 3000) g WHERE g > :low ORDER BY g"
    async with DataApiEmulator(pg_sim, response_limit=100_000) as emu, connect(emu) as conn:
        rows = await conn.fetch(query, {"low": 0})
        assert [r["n"] for r in rows] == list(range(1, 3001))
        assert emu.open_transactions == 0
        async with conn.cursor(query, {"low": 2500}, page_size=400) as cursor:
            seen = [record["n"] async for record in cursor]
            assert cursor.pages_read >= 2
        assert seen == list(range(2501, 3001))
        async with conn.transaction():  # inside the application's transaction: sees its own writes
            await conn.execute(
                "CREATE TEMP TABLE big AS SELECT g, repeat('y', 300) AS pad FROM generate_series(1, 1000) g"
            )
            assert len(await conn.fetch("SELECT * FROM big")) == 1000
        with pytest.raises(ResultTooLargeError, match="64 KB"):
            await conn.fetch("SELECT repeat('z', 70000)")


async def test_large_mysql_results_fail_with_how_to_page(my_sim: AuroraSimulator) -> None:
    async with DataApiEmulator(my_sim, response_limit=50_000) as emu, connect(emu, engine="mysql") as conn:
        with pytest.raises(ResultTooLargeError, match="LIMIT"):
            await conn.fetch(
                "SELECT REPEAT('x', 100) FROM information_schema.columns c1, information_schema.columns c2 "
                "LIMIT 2000"
            )


# -- resilience ------------------------------------------------------------------------------------------


async def test_a_resuming_cluster_is_waited_for(pg_sim: AuroraSimulator) -> None:
    async with DataApiEmulator(pg_sim) as emu, connect(emu, retry_timeout=20) as conn:
        for error in ("resuming", "link_failure"):
            before = emu.requests["ExecuteStatement"]
            emu.pause(0.8, error=error)
            started = time.monotonic()
            assert await conn.fetchval("SELECT 42") == 42
            assert time.monotonic() - started >= 0.7
            assert emu.requests["ExecuteStatement"] - before >= 2  # refused, then answered
        emu.pause(30)
        started = time.monotonic()
        async with connect(emu, retry_timeout=1.0) as impatient:
            with pytest.raises(DatabaseResumingError, match="still resuming"):
                await impatient.fetchval("SELECT 1")
        assert time.monotonic() - started < 10
        emu.resume()


async def test_a_lost_answer_to_a_write_is_not_sent_again(pg_emu: DataApiEmulator) -> None:
    table = table_name()
    async with connect(pg_emu) as conn:
        await conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
    async with connect(pg_emu, request_timeout=0.3) as hasty:
        before = pg_emu.requests["ExecuteStatement"]
        with pytest.raises(RequestOutcomeUnknownError, match="may or may not have run"):
            await hasty.execute(f"INSERT INTO {table} (at) SELECT now() FROM pg_sleep(1)")
        assert pg_emu.requests["ExecuteStatement"] - before == 1
    async with connect(pg_emu) as conn:

        async def inserted() -> bool:
            return bool(await conn.fetchval(f"SELECT count(*) FROM {table}") == 1)

        await eventually(inserted, what="the statement to finish on the server")
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1  # once, not twice
        await conn.execute(f"DROP TABLE {table}")


async def test_statement_timeout_with_and_without_continuing(pg_sim: AuroraSimulator) -> None:
    table = table_name()
    async with DataApiEmulator(pg_sim, statement_timeout=0.3) as emu, connect(emu) as conn:
        await conn.execute(f"CREATE TABLE {table} (id int)")
        with pytest.raises(StatementTimeoutError) as info:
            await conn.execute(f"INSERT INTO {table} SELECT 1 FROM pg_sleep(1)")
        assert info.value.db_connection_id is not None
        with pytest.raises(StatementTimeoutError):
            await conn.execute(
                f"INSERT INTO {table} SELECT 2 FROM pg_sleep(0.6)", continue_after_timeout=True
            )

        async def continued() -> bool:
            return bool(await conn.fetch(f"SELECT id FROM {table}") == [(2,)])

        await eventually(continued, what="the continued statement to commit")
        await conn.execute(f"DROP TABLE {table}")


# -- errors and bad input --------------------------------------------------------------------------------


async def test_sql_errors_carry_their_codes(pg_emu: DataApiEmulator, my_emu: DataApiEmulator) -> None:
    async with connect(pg_emu) as pg, connect(my_emu) as my:
        with pytest.raises(DatabaseError) as pg_error:
            await pg.fetch("SELECT * FROM no_such_table")
        assert (pg_error.value.sqlstate, pg_error.value.position) == ("42P01", 15)
        with pytest.raises(DatabaseError) as my_error:
            await my.fetch("SELECT * FROM no_such_table")
        assert (my_error.value.error_code, my_error.value.sqlstate) == (1146, "42S02")
        with pytest.raises(UnsupportedResultError, match="::text"):
            await pg.fetch("SELECT point(1, 2)")
        assert await pg.fetchval("SELECT point(1, 2)::text") == "(1,2)"


async def test_bad_parameters_are_refused_before_any_request(pg_emu: DataApiEmulator) -> None:
    async with connect(pg_emu) as conn:
        before = sum(pg_emu.requests.values())
        with pytest.raises(ParameterError, match="no value for parameter :b"):
            await conn.fetch("SELECT :a, :b", {"a": 1})
        with pytest.raises(ParameterError, match=":c not in the statement"):
            await conn.fetch("SELECT :a", {"a": 1, "c": 2})
        with pytest.raises(ParameterError, match="cannot send a set"):
            await conn.fetch("SELECT :a", {"a": {1}})
        with pytest.raises(ParameterError, match="no positional parameters"):
            await conn.fetch("SELECT :a", [1])
        assert sum(pg_emu.requests.values()) == before


async def test_connect_as_context_manager_and_close(pg_emu: DataApiEmulator) -> None:
    before = asyncio.all_tasks()
    conn = await connect(pg_emu)
    assert await conn.fetchval("SELECT 1") == 1
    async with conn.transaction():
        await asyncio.gather(*(conn.fetchval("SELECT :n", {"n": n}) for n in range(5)))
    await conn.close()

    async def nothing_left() -> bool:
        return not [t for t in asyncio.all_tasks() - before if not t.done()]

    await eventually(nothing_left, timeout=5, what="the client's tasks to end")
    assert conn.is_closed()
    with pytest.raises(DataApiError, match="closed"):
        await conn.fetchval("SELECT 1")
    assert "aurora_async.data_api" in type(conn).__module__
    assert aurora_async.data_api is data_api
