"""The Data API emulator at the protocol level: a raw aioboto3 ``rds-data`` client (and raw HTTP where
botocore would refuse to send or to parse) against the emulator over a 1-instance PostgreSQL and a
1-instance MariaDB simulator."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import aioboto3
import aiohttp
import aiomysql
import asyncpg
import botocore.config
import botocore.exceptions
import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, DataApiEmulator
from aurora_async.testing.data_api._postgres import PostgresBackend, PostgresSession
from tests.helpers import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=20, connect_timeout=5)
UNCHECKED = botocore.config.Config(
    retries={"total_max_attempts": 1}, read_timeout=20, connect_timeout=5, parameter_validation=False
)
SESSION = aioboto3.Session()


# -- fixtures and helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def dummy_aws() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in DUMMY_AWS_ENV.items():
            patch.setenv(key, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
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


class Api:
    """A raw ``rds-data`` client bound to one emulator's ARNs."""

    def __init__(self, client: Any, emu: DataApiEmulator) -> None:
        self.client = client
        self.emu = emu
        self.arns = {"resourceArn": emu.resource_arn, "secretArn": emu.secret_arn}

    async def execute(self, sql: str, params: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        if params is not None:
            options["parameters"] = parameters(params)
        response: dict[str, Any] = await self.client.execute_statement(**self.arns, sql=sql, **options)
        response.pop("ResponseMetadata")
        return response

    async def rows(self, sql: str, params: dict[str, Any] | None = None, **options: Any) -> list[list[Any]]:
        """The records as plain values (the single member of each Field; None for NULL)."""
        records = (await self.execute(sql, params, **options))["records"]
        return [[plain(field) for field in record] for record in records]

    async def value(self, sql: str, params: dict[str, Any] | None = None, **options: Any) -> Any:
        return (await self.rows(sql, params, **options))[0][0]

    async def begin(self, **options: Any) -> str:
        response = await self.client.begin_transaction(**self.arns, **options)
        return str(response["transactionId"])

    async def commit(self, transaction_id: str) -> str:
        response = await self.client.commit_transaction(**self.arns, transactionId=transaction_id)
        return str(response["transactionStatus"])

    async def rollback(self, transaction_id: str) -> str:
        response = await self.client.rollback_transaction(**self.arns, transactionId=transaction_id)
        return str(response["transactionStatus"])

    async def batch(self, sql: str, sets: list[dict[str, Any]] | None, **options: Any) -> list[Any]:
        if sets is not None:
            options["parameterSets"] = [parameters(values) for values in sets]
        response = await self.client.batch_execute_statement(**self.arns, sql=sql, **options)
        return list(response["updateResults"])


@asynccontextmanager
async def api(emu: DataApiEmulator, config: botocore.config.Config = CONFIG) -> AsyncIterator[Api]:
    async with SESSION.client(
        "rds-data", endpoint_url=emu.endpoint_url, region_name="us-east-1", config=config
    ) as client:
        yield Api(client, emu)


def parameters(values: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"name": value}`` (a ``(value, typeHint)`` tuple for a hint) -> SqlParametersList."""
    result = []
    for name, value in values.items():
        hint = None
        if isinstance(value, tuple):
            value, hint = value  # noqa: PLW2901
        if value is None:
            field: dict[str, Any] = {"isNull": True}
        elif isinstance(value, bool):
            field = {"booleanValue": value}
        elif isinstance(value, int):
            field = {"longValue": value}
        elif isinstance(value, float):
            field = {"doubleValue": value}
        elif isinstance(value, bytes):
            field = {"blobValue": value}
        else:
            field = {"stringValue": value}
        result.append({"name": name, "value": field, **({"typeHint": hint} if hint else {})})
    return result


def plain(field: dict[str, Any]) -> Any:
    if field.get("isNull"):
        return None
    if "arrayValue" in field:
        return next(iter(field["arrayValue"].values()))
    return next(iter(field.values()))


async def error_of(call: Awaitable[Any]) -> tuple[int, str, str, dict[str, Any]]:
    """(HTTP status, error code, message, whole error response) of a call that must fail."""
    with pytest.raises(ClientError) as info:
        await call
    response: dict[str, Any] = info.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
        response,
    )


async def post(emu: DataApiEmulator, path: str, body: Any, method: str = "POST") -> tuple[int, str, Any]:
    """Raw HTTP: (status, x-amzn-ErrorType, parsed JSON body)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, emu.endpoint_url + path, data=body) as response,
    ):
        return response.status, response.headers.get("x-amzn-ErrorType", ""), await response.json()


def table() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def pg_direct(sim: AuroraSimulator) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(sim.dsn("cluster"), timeout=5)
    try:
        yield conn
    finally:
        await conn.close(timeout=5)


@asynccontextmanager
async def my_direct(sim: AuroraSimulator) -> AsyncIterator[Any]:
    parts = urlsplit(sim.dsn("cluster"))
    conn = await aiomysql.connect(
        host=parts.hostname,
        port=parts.port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        db=parts.path.lstrip("/"),
        autocommit=True,
    )
    try:
        yield conn
    finally:
        conn.close()


async def my_rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cursor:
        await cursor.execute(sql)
        return list(await cursor.fetchall())


def metadata(response: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {column["label"]: (column["typeName"], column["type"]) for column in response["columnMetadata"]}


# -- results: PostgreSQL ------------------------------------------------------------------------------------

PG_TYPES_SQL = """
SELECT 1::int2 AS i2, 2::int4 AS i4, 9007199254740993::int8 AS i8, 1.5::float4 AS f4, 2.25::float8 AS f8,
       12.50::numeric AS num, 'NaN'::numeric AS nan, true AS b, '\\x0001ff'::bytea AS by,
       'text'::text AS t, 'vc'::varchar(5) AS vc, 'c'::char(3) AS bp, 'nm'::name AS nm,
       DATE '2024-02-29' AS d, 'infinity'::date AS dinf, '-infinity'::timestamp AS tsninf,
       '23:59:58.25'::time AS tm, '12:00:00'::time AS tm0, '2024-01-02 03:04:05.123456'::timestamp AS ts,
       '2024-01-02 03:04:05.5+02'::timestamptz AS tstz, '{"a": 1}'::json AS j, '{"b": [1, 2]}'::jsonb AS jb,
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '10.1.2.3'::inet AS ip, '10.0.0.0/8'::cidr AS net,
       'happy'::{enum} AS e, ARRAY[1, 2]::int4[] AS ai, ARRAY['x', NULL]::text[] AS at,
       ARRAY[true, false] AS ab, ARRAY[0.5]::float8[] AS af, ARRAY[1.10]::numeric[] AS an,
       ARRAY[DATE '2024-01-01'] AS ad, NULL::int4 AS nul
"""
PG_EXPECTED = {
    "i2": ({"longValue": 1}, "int2", 5),
    "i4": ({"longValue": 2}, "int4", 4),
    "i8": ({"longValue": 9007199254740993}, "int8", -5),
    "f4": ({"doubleValue": 1.5}, "float4", 7),
    "f8": ({"doubleValue": 2.25}, "float8", 8),
    "num": ({"stringValue": "12.50"}, "numeric", 2),
    "nan": ({"stringValue": "NaN"}, "numeric", 2),
    "b": ({"booleanValue": True}, "bool", -7),
    "by": ({"blobValue": b"\x00\x01\xff"}, "bytea", -2),
    "t": ({"stringValue": "text"}, "text", 12),
    "vc": ({"stringValue": "vc"}, "varchar", 12),
    "bp": ({"stringValue": "c  "}, "bpchar", 1),
    "nm": ({"stringValue": "nm"}, "name", 12),
    "d": ({"stringValue": "2024-02-29"}, "date", 91),
    "dinf": ({"stringValue": "infinity"}, "date", 91),
    "tsninf": ({"stringValue": "-infinity"}, "timestamp", 93),
    "tm": ({"stringValue": "23:59:58.250000"}, "time", 92),
    "tm0": ({"stringValue": "12:00:00"}, "time", 92),
    "ts": ({"stringValue": "2024-01-02 03:04:05.123456"}, "timestamp", 93),
    "tstz": ({"stringValue": "2024-01-02 01:04:05.500000"}, "timestamptz", 93),
    "j": ({"stringValue": '{"a":1}'}, "json", 1111),
    "jb": ({"stringValue": '{"b":[1,2]}'}, "jsonb", 1111),
    "u": ({"stringValue": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, "uuid", 1111),
    "ip": ({"stringValue": "10.1.2.3"}, "inet", 1111),
    "net": ({"stringValue": "10.0.0.0/8"}, "cidr", 1111),
    "ai": ({"arrayValue": {"longValues": [1, 2]}}, "_int4", 2003),
    "at": ({"arrayValue": {"stringValues": ["x", None]}}, "_text", 2003),
    "ab": ({"arrayValue": {"booleanValues": [True, False]}}, "_bool", 2003),
    "af": ({"arrayValue": {"doubleValues": [0.5]}}, "_float8", 2003),
    "an": ({"arrayValue": {"stringValues": ["1.10"]}}, "_numeric", 2003),
    "ad": ({"arrayValue": {"stringValues": ["2024-01-01"]}}, "_date", 2003),
    "nul": ({"isNull": True}, "int4", 4),
}


async def test_postgresql_results_of_every_type_with_metadata(pg_emu: DataApiEmulator) -> None:
    enum = f"mood_{uuid.uuid4().hex[:8]}"
    async with api(pg_emu) as db:
        await db.execute(f"CREATE TYPE {enum} AS ENUM ('happy', 'sad')")
        response = await db.execute(PG_TYPES_SQL.replace("{enum}", enum), includeResultMetadata=True)
    assert response["numberOfRecordsUpdated"] == 0 and response["generatedFields"] == []
    (record,) = response["records"]
    columns = {column["label"]: column for column in response["columnMetadata"]}
    got = dict(zip(columns, record, strict=True))
    assert got["e"] == {"stringValue": "happy"}
    assert (columns["e"]["typeName"], columns["e"]["type"]) == (enum, 1111)
    for label, (field, type_name, jdbc) in PG_EXPECTED.items():
        assert got[label] == field, label
        assert (columns[label]["typeName"], columns[label]["type"]) == (type_name, jdbc), label
    assert columns["ai"]["arrayBaseColumnType"] == 4 and columns["i4"]["arrayBaseColumnType"] == 0
    assert columns["i8"]["isSigned"] and not columns["t"]["isSigned"] and columns["t"]["isCaseSensitive"]
    assert columns["i4"]["precision"] == 10 and columns["tm"]["scale"] == 6
    assert set(columns["i4"]) == {
        "name", "label", "typeName", "type", "nullable", "precision", "scale", "schemaName", "tableName",
        "isSigned", "isAutoIncrement", "isCaseSensitive", "isCurrency", "arrayBaseColumnType",
    }  # fmt: skip


async def test_null_array_elements_are_json_nulls(pg_emu: DataApiEmulator) -> None:
    """As the real service does; botocore itself cannot parse a null in longValues (boto3 #4508), so
    this looks at the raw JSON."""
    body = {"resourceArn": pg_emu.resource_arn, "secretArn": pg_emu.secret_arn}
    body["sql"] = "SELECT ARRAY[1, NULL]::int8[], ARRAY[NULL, 0.5]::float8[]"
    status, _, answer = await post(pg_emu, "/Execute", json.dumps(body).encode())
    assert status == 200
    assert answer["records"] == [
        [{"arrayValue": {"longValues": [1, None]}}, {"arrayValue": {"doubleValues": [None, 0.5]}}]
    ]


async def test_result_set_options_and_json_records(pg_emu: DataApiEmulator) -> None:
    async with api(pg_emu) as db:
        options = {"resultSetOptions": {"longReturnType": "STRING", "decimalReturnType": "DOUBLE_OR_LONG"}}
        response = await db.execute(
            "SELECT 7::int8, 5.00::numeric, 1.5::numeric, ARRAY[1, 2]", includeResultMetadata=True, **options
        )
        assert response["records"] == [
            [
                {"stringValue": "7"},
                {"longValue": 5},
                {"doubleValue": 1.5},
                {"arrayValue": {"stringValues": ["1", "2"]}},
            ]
        ]
        formatted = await db.execute(
            "SELECT 1 AS a, 'x' AS b, NULL::int AS c UNION ALL SELECT 2, 'y', 3",
            formatRecordsAs="JSON",
            includeResultMetadata=True,
        )
    assert "records" not in formatted and "columnMetadata" not in formatted
    assert json.loads(formatted["formattedRecords"]) == [
        {"a": 1, "b": "x", "c": None},
        {"a": 2, "b": "y", "c": 3},
    ]


@pytest.mark.parametrize(
    ("sql", "type_name"),
    [
        ("SELECT point(1, 2)", "point"),
        ("SELECT 1::money", "money"),
        ("SELECT interval '1 day'", "interval"),
        ("SELECT '{{1,2},{3,4}}'::int4[]", "_int4 (a multidimensional array)"),
    ],
)
async def test_unsupported_result_types(pg_emu: DataApiEmulator, sql: str, type_name: str) -> None:
    async with api(pg_emu) as db:
        status, code, message, _ = await error_of(db.execute(sql))
    assert (status, code) == (400, "UnsupportedResultException")
    assert message == (
        f"The result contains the unsupported data type {type_name}. "
        "Cast it to a supported type, for example with ::text."
    )


# -- parameters ---------------------------------------------------------------------------------------------


async def test_postgresql_parameters_of_every_kind_and_hint(pg_emu: DataApiEmulator) -> None:
    params = {
        "l": 5,
        "d": 1.5,
        "b": True,
        "blob": b"\x00\xff",
        "s": "it's :x",
        "n": None,
        "dec": ("12.345", "DECIMAL"),
        "date": ("2024-02-29", "DATE"),
        "time": ("12:34:56.789", "TIME"),
        "ts": ("2024-01-02 03:04:05.5", "TIMESTAMP"),
        "uuid": ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "UUID"),
        "json": ('{"k": [1, null]}', "JSON"),
        "unused": 1,
    }
    names = [name for name in params if name != "unused"]
    sql = "SELECT " + ", ".join(f":{name} AS {name}" for name in names) + ", :l + 1 AS again"
    async with api(pg_emu) as db:
        response = await db.execute(sql, params, includeResultMetadata=True)
        assert [plain(field) for field in response["records"][0]] == [
            5, 1.5, True, b"\x00\xff", "it's :x", None, "12.345", "2024-02-29", "12:34:56.789000",
            "2024-01-02 03:04:05.500000", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", '{"k":[1,null]}', 6,
        ]  # fmt: skip
        assert [type_name for type_name, _ in metadata(response).values()] == [
            "int8", "float8", "bool", "bytea", "varchar", "text", "numeric", "date", "time", "timestamp",
            "uuid", "json", "int8",
        ]  # fmt: skip
        # a JSON hint fills a jsonb column (PostgreSQL's assignment cast json -> jsonb)
        name = table()
        await db.execute(f"CREATE TABLE {name} (j jsonb, d date)")
        inserted = await db.execute(
            f"INSERT INTO {name} VALUES (:j, :d)", {"j": ('{"k": 1}', "JSON"), "d": None}
        )
        assert inserted == {"numberOfRecordsUpdated": 1, "generatedFields": []}
        assert await db.rows(f"SELECT j, d FROM {name}") == [['{"k":1}', None]]
        # a string without a hint is a varchar, which PostgreSQL does not assign to a date column
        status, code, message, _ = await error_of(
            db.execute(f"INSERT INTO {name} (d) VALUES (:d)", {"d": "2024-01-01"})
        )
        assert (status, code) == (400, "DatabaseErrorException")
        assert message.startswith('ERROR: column "d" is of type date but expression is of type character')
        status, code, message, _ = await error_of(db.execute("SELECT :d", {"d": ("nope", "DATE")}))
        assert (status, code) == (400, "DatabaseErrorException")
        assert message == 'ERROR: invalid input syntax for type date: "nope"; SQLState: 22007'


async def test_mysql_parameters_of_every_kind_and_hint(my_emu: DataApiEmulator) -> None:
    params = {
        "l": 5,
        "d": 1.5,
        "b": True,
        "blob": b"\x00\xff'",
        "s": "it's :x %s \\",
        "n": None,
        "dec": ("12.345", "DECIMAL"),
        "date": ("2024-02-29", "DATE"),
        "unused": 1,
    }
    async with api(my_emu) as db:
        rows = await db.rows(
            "SELECT :l, :d, :b, :blob, :s, :n, CAST(:dec AS DECIMAL(6, 3)), "
            "CAST(:date AS DATE) + INTERVAL 1 DAY, '100%', :l",
            params,
        )
    assert rows == [[5, 1.5, 1, b"\x00\xff'", "it's :x %s \\", None, "12.345", "2024-03-01", "100%", 5]]


async def test_postgresql_counts_and_generated_fields(pg_emu: DataApiEmulator) -> None:
    name = table()
    async with api(pg_emu) as db:
        assert await db.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, v int)") == {
            "numberOfRecordsUpdated": 0,
            "generatedFields": [],
        }
        inserted = await db.execute(f"INSERT INTO {name} (v) SELECT generate_series(1, 3)")
        assert inserted == {"numberOfRecordsUpdated": 3, "generatedFields": []}
        assert (await db.execute(f"UPDATE {name} SET v = v + 1 WHERE v > 1"))["numberOfRecordsUpdated"] == 2
        selected = await db.execute(f"SELECT v FROM {name} ORDER BY v")
        assert selected["numberOfRecordsUpdated"] == 0
        assert selected["records"] == [[{"longValue": 1}], [{"longValue": 3}], [{"longValue": 4}]]
        returning = await db.execute(f"DELETE FROM {name} WHERE v = 1 RETURNING id")
        assert returning["records"] == [[{"longValue": 1}]]


async def test_mysql_results_of_every_type_with_metadata(my_emu: DataApiEmulator) -> None:
    name = table()
    async with api(my_emu) as db:
        await db.execute(
            f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, b BOOL, bt BIT(1), b9 BIT(9), "
            "ti TINYINT, si SMALLINT, mi MEDIUMINT, i INT NOT NULL, iu INT UNSIGNED, bi BIGINT, "
            "bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, de DECIMAL(10,2), dt DATE, tm TIME(6), dtm DATETIME(3), "
            "ts TIMESTAMP(6) NULL, y YEAR, c CHAR(3), v VARCHAR(10), tx TEXT, lt LONGTEXT, e ENUM('a','b'), "
            "st SET('x','y'), bl BLOB, vb VARBINARY(4), bn BINARY(2), j JSON)"
        )
        inserted = await db.execute(
            f"INSERT INTO {name} VALUES (NULL, TRUE, b'1', b'100000001', -5, 7, 8, -9, 4000000000, "
            "-4611686018427387904, 18446744073709551615, 1.5, 2.25, 3.30, '2024-02-29', '-838:59:59.5', "
            "'2024-01-02 03:04:05.123', '2024-01-02 03:04:05', 2024, 'ab', 'v', 'tx', 'lt', 'a', 'x,y', "
            "x'0102', x'03', x'04', '{\"a\": 1}')"
        )
        assert inserted == {"numberOfRecordsUpdated": 1, "generatedFields": [{"longValue": 1}]}
        response = await db.execute(f"SELECT * FROM {name}", includeResultMetadata=True)
        # CLIENT_FOUND_ROWS: rows matched, as Connector/J counts them, even when nothing changed
        assert (await db.execute(f"UPDATE {name} SET v = v"))["numberOfRecordsUpdated"] == 1
    expected = {
        "id": ({"longValue": 1}, "INT", 4),
        "b": ({"booleanValue": True}, "BIT", -7),
        "bt": ({"booleanValue": True}, "BIT", -7),
        "b9": ({"blobValue": b"\x01\x01"}, "BIT", -7),
        "ti": ({"longValue": -5}, "TINYINT", -6),
        "si": ({"longValue": 7}, "SMALLINT", 5),
        "mi": ({"longValue": 8}, "MEDIUMINT", 4),
        "i": ({"longValue": -9}, "INT", 4),
        "iu": ({"longValue": 4000000000}, "INT UNSIGNED", 4),
        "bi": ({"longValue": -4611686018427387904}, "BIGINT", -5),
        "bu": ({"stringValue": "18446744073709551615"}, "BIGINT UNSIGNED", -5),
        "f": ({"doubleValue": 1.5}, "FLOAT", 7),
        "d": ({"doubleValue": 2.25}, "DOUBLE", 8),
        "de": ({"stringValue": "3.30"}, "DECIMAL", 3),
        "dt": ({"stringValue": "2024-02-29"}, "DATE", 91),
        "tm": ({"stringValue": "-838:59:59.500000"}, "TIME", 92),
        "dtm": ({"stringValue": "2024-01-02 03:04:05.123000"}, "DATETIME", 93),
        "ts": ({"stringValue": "2024-01-02 03:04:05"}, "TIMESTAMP", 93),
        "y": ({"longValue": 2024}, "YEAR", 5),
        "c": ({"stringValue": "ab"}, "CHAR", 1),
        "v": ({"stringValue": "v"}, "VARCHAR", 12),
        "tx": ({"stringValue": "tx"}, "TEXT", -1),
        "lt": ({"stringValue": "lt"}, "LONGTEXT", -1),
        "e": ({"stringValue": "a"}, "ENUM", 1),
        "st": ({"stringValue": "x,y"}, "SET", 1),
        "bl": ({"blobValue": b"\x01\x02"}, "BLOB", -4),
        "vb": ({"blobValue": b"\x03"}, "VARBINARY", -3),
        "bn": ({"blobValue": b"\x04\x00"}, "BINARY", -2),
        "j": ({"stringValue": '{"a": 1}'}, "LONGTEXT", -1),  # MariaDB's JSON is a LONGTEXT
    }
    (record,) = response["records"]
    columns = {column["label"]: column for column in response["columnMetadata"]}
    got = dict(zip(columns, record, strict=True))
    for label, (field, type_name, jdbc) in expected.items():
        assert got[label] == field, label
        assert (columns[label]["typeName"], columns[label]["type"]) == (type_name, jdbc), label
    assert columns["id"]["isAutoIncrement"] and columns["id"]["nullable"] == 0
    assert columns["i"]["nullable"] == 0 and columns["v"]["nullable"] == 1
    assert columns["v"]["tableName"] == name and columns["v"]["precision"] == 10
    assert columns["de"]["precision"] == 10 and columns["de"]["scale"] == 2
    assert columns["i"]["isSigned"] and not columns["iu"]["isSigned"]


async def test_sql_errors_name_the_database_error(pg_emu: DataApiEmulator, my_emu: DataApiEmulator) -> None:
    async with api(pg_emu) as pg, api(my_emu) as my:
        assert (await error_of(pg.execute("SELECT nope")))[:3] == (
            400,
            "DatabaseErrorException",
            'ERROR: column "nope" does not exist; Position: 8; SQLState: 42703',
        )
        assert (await error_of(pg.execute("SELECT 1/0")))[2] == "ERROR: division by zero; SQLState: 22012"
        # a positional parameter with no value: the driver refuses it, the session stays usable
        assert (await error_of(pg.execute("SELECT $1::int")))[:2] == (400, "DatabaseErrorException")
        assert await pg.value("SELECT 3") == 3
        assert await my.value("SELECT 1/0") is None  # a warning, which is no error
        assert (await error_of(my.execute("SELECT nope")))[:3] == (
            400,
            "DatabaseErrorException",
            "Unknown column 'nope' in 'SELECT'; Error code: 1054; SQLState: 42S22",
        )


async def test_postgresql_refusing_multiple_commands_is_a_validation_error() -> None:
    """What PostgreSQL answers to several statements in one prepared statement, should one get there."""
    backend = PostgresBackend("postgresql://nobody@127.0.0.1:1/none", "test")
    error = backend.api_error(
        asyncpg.PostgresSyntaxError("cannot insert multiple commands into a prepared statement")
    )
    assert error is not None and (error.shape, error.status) == ("ValidationException", 400)
    assert error.message == "Multistatements aren't supported."


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_one_statement_per_request(
    engine: str, pg_emu: DataApiEmulator, my_emu: DataApiEmulator
) -> None:
    emu = pg_emu if engine == "postgresql" else my_emu
    async with api(emu) as db:
        assert await db.value("SELECT 1; -- one trailing semicolon") == 1
        assert await db.value("SELECT ';' /* ; */") == ";"
        assert await db.value("SELECT 2;; ") == 2  # empty statements do not count
        for sql in ("SELECT 1; SELECT 2", "SELECT 1; /* ; */ SELECT ';'"):
            status, code, message, _ = await error_of(db.execute(sql))
            assert (status, code, message) == (
                400,
                "ValidationException",
                "Multistatements aren't supported.",
            )


# -- request validation -------------------------------------------------------------------------------------

VALIDATION_CASES = [
    ({"resourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:other"}, "HttpEndpointNotEnabledException",
     "HttpEndpoint is not enabled for resource arn:aws:rds:us-east-1:123456789012:cluster:other"),
    ({"secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbCdEf"},
     "SecretsErrorException", "Secrets Manager can't find the specified secret"),
    ({"schema": "public"}, "ValidationException", "The schema parameter isn't supported."),
    ({"sql": "SELECT 1" + " " * 65_536}, "BadRequestException", "the limit is 65536"),
    ({"parameters": [{"name": "a", "value": {"longValue": 1, "stringValue": "x"}}]}, "BadRequestException",
     'Parameter "a" must set exactly one field'),
    ({"parameters": [{"name": "a", "value": {}}]}, "BadRequestException",
     'Parameter "a" has value with no field set'),
    ({"parameters": [{"name": "a", "value": {"stringValue": "x"}, "typeHint": "INTERVAL"}]},
     "BadRequestException", "Parameter \"a\" has an unknown typeHint 'INTERVAL'"),
    ({"parameters": [{"name": "a", "value": {"longValue": 1}, "typeHint": "DATE"}]}, "BadRequestException",
     'Parameter "a" has typeHint DATE, which needs a stringValue'),
    ({"parameters": [{"name": "a", "value": {"arrayValue": {"longValues": [1]}}}]}, "BadRequestException",
     "Array parameters are not supported."),
    ({"sql": "SELECT :present, :missing", "parameters": [{"name": "present", "value": {"longValue": 1}}]},
     "BadRequestException", 'No value specified for parameter "missing"'),
    ({"resultSetOptions": {"decimalReturnType": "FLOAT"}}, "BadRequestException", "decimalReturnType"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "code", "message"), VALIDATION_CASES)
async def test_invalid_requests_are_refused(
    pg_emu: DataApiEmulator, change: dict[str, Any], code: str, message: str
) -> None:
    async with api(pg_emu, UNCHECKED) as db:
        request = {**db.arns, "sql": "SELECT 1", **change}
        status, got_code, got_message, _ = await error_of(db.client.execute_statement(**request))
    assert (status, got_code) == (400, code)
    assert message in got_message


async def test_malformed_http_requests_get_error_shapes(pg_emu: DataApiEmulator) -> None:
    arns = {"resourceArn": pg_emu.resource_arn, "secretArn": pg_emu.secret_arn}
    assert await post(pg_emu, "/Nope", b"{}") == (
        404,
        "UnknownOperationException",
        {"message": "No Data API operation at POST /Nope"},
    )
    assert (await post(pg_emu, "/Execute", b"", method="GET"))[:2] == (404, "UnknownOperationException")
    status, shape, body = await post(pg_emu, "/Execute", b"{not json")
    assert (status, shape) == (400, "BadRequestException") and "not valid JSON" in body["message"]
    assert await post(pg_emu, "/Execute", b"{}") == (
        400,
        "BadRequestException",
        {"message": "Missing required field: resourceArn"},
    )
    assert (await post(pg_emu, "/Execute", json.dumps(arns).encode()))[2] == {
        "message": "Missing required field: sql"
    }
    huge = json.dumps(
        {**arns, "sql": "SELECT 1", "parameters": [{"name": "x", "value": {"stringValue": "x" * (4 << 20)}}]}
    )
    status, shape, body = await post(pg_emu, "/Execute", io.BytesIO(huge.encode()))
    assert (status, shape) == (400, "BadRequestException") and "Request size limit" in body["message"]
    async with api(pg_emu) as db:
        status, code, message, _ = await error_of(
            db.client.execute_sql(
                dbClusterOrInstanceArn=pg_emu.resource_arn,
                awsSecretStoreArn=pg_emu.secret_arn,
                sqlStatements="SELECT 1",
            )
        )
    assert (status, code) == (400, "BadRequestException") and "ExecuteSql is deprecated" in message


async def test_unexpected_exceptions_answer_500(
    pg_emu: DataApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the emulator")

    async with api(pg_emu) as db:
        with monkeypatch.context() as patch:
            patch.setattr(PostgresSession, "execute", broken)
            status, code, message, _ = await error_of(db.execute("SELECT 1"))
        assert (status, code) == (500, "InternalServerErrorException")
        assert message == "An internal error occurred in the Data API emulator (RuntimeError)"
        assert await db.value("SELECT 2") == 2  # and nothing was left behind


# -- transactions -------------------------------------------------------------------------------------------


async def test_transactions_commit_roll_back_and_get_lost(pg_emu: DataApiEmulator) -> None:
    name = table()
    async with api(pg_emu) as db:
        await db.execute(f"CREATE TABLE {name} (v int)")
        before = pg_emu.open_transactions
        begun = pg_emu.requests["BeginTransaction"]
        tx = await db.begin()
        assert pg_emu.requests["BeginTransaction"] == begun + 1
        assert len(tx) >= 180 and tx.replace("-", "").replace("_", "").isalnum()
        assert pg_emu.open_transactions == before + 1
        await db.execute(f"INSERT INTO {name} VALUES (1)", transactionId=tx)
        assert await db.value(f"SELECT count(*) FROM {name}") == 0  # not visible outside yet
        assert await db.rollback(tx) == "Rollback Complete"
        tx = await db.begin()
        await db.batch(f"INSERT INTO {name} VALUES (:v)", [{"v": 2}, {"v": 3}], transactionId=tx)
        assert await db.commit(tx) == "Transaction Committed"
        assert await db.rows(f"SELECT v FROM {name} ORDER BY v") == [[2], [3]]
        assert pg_emu.open_transactions == before
        for call in (db.commit(tx), db.rollback(tx)):
            status, code, message, _ = await error_of(call)
            assert (status, code, message) == (404, "NotFoundException", f"Transaction {tx} is not found")
        status, code, message, _ = await error_of(db.execute("SELECT 1", transactionId=tx))
        assert (status, code, message) == (
            404,
            "TransactionNotFoundException",
            f"Transaction {tx} is not found",
        )
        # an SQL error leaves the transaction open (PostgreSQL then refuses more until the rollback)
        tx = await db.begin()
        await error_of(db.execute("SELECT nope", transactionId=tx))
        message = (await error_of(db.execute("SELECT 1", transactionId=tx)))[2]
        assert message.startswith("ERROR: current transaction is aborted") and message.endswith("25P02")
        assert await db.rollback(tx) == "Rollback Complete"


async def test_cursor_paging_in_a_transaction(pg_emu: DataApiEmulator) -> None:
    async with api(pg_emu) as db:
        tx = await db.begin()
        declared = await db.execute(
            "DECLARE pages CURSOR FOR SELECT n FROM generate_series(1, :last) AS n ORDER BY n",
            {"last": 7},
            transactionId=tx,
        )
        assert declared == {"numberOfRecordsUpdated": 0, "generatedFields": []}
        pages = []
        while page := await db.rows("FETCH 3 FROM pages", transactionId=tx):
            pages.append([row[0] for row in page])
        assert pages == [[1, 2, 3], [4, 5, 6], [7]]
        assert (await db.execute("MOVE BACKWARD 2 IN pages", transactionId=tx))["numberOfRecordsUpdated"] == 2
        await db.execute("CLOSE pages", transactionId=tx)
        assert await db.commit(tx) == "Transaction Committed"
        # outside a transaction PostgreSQL refuses a cursor, as it does for the real Data API
        status, code, message, _ = await error_of(db.execute("DECLARE c CURSOR FOR SELECT 1"))
        assert (status, code) == (400, "DatabaseErrorException") and "transaction blocks" in message


async def test_a_second_request_on_a_busy_transaction_is_refused(pg_emu: DataApiEmulator) -> None:
    name = table()
    async with api(pg_emu) as db, pg_direct(pg_emu._sim) as direct:
        await db.execute(f"CREATE TABLE {name} (id int PRIMARY KEY)")
        await db.execute(f"INSERT INTO {name} VALUES (1)")
        tx = await db.begin()
        locker = direct.transaction()
        await locker.start()
        await direct.execute(f"SELECT * FROM {name} FOR UPDATE")
        seen = pg_emu.requests["ExecuteStatement"]
        blocked = asyncio.ensure_future(db.execute(f"SELECT id FROM {name} FOR UPDATE", transactionId=tx))
        try:
            # requests are counted just before their transaction is claimed, in the same step
            await eventually(
                lambda: _true(pg_emu.requests["ExecuteStatement"] > seen), timeout=5, what="the request"
            )
            status, code, message, _ = await error_of(db.execute("SELECT 1", transactionId=tx))
            assert (status, code, message) == (
                400,
                "DatabaseErrorException",
                "Transaction is still running a query",
            )
            # independent requests are not held up meanwhile
            assert await db.value("SELECT 41 + 1") == 42
        finally:
            await locker.rollback()
        assert (await blocked)["records"] == [[{"longValue": 1}]]
        assert await db.commit(tx) == "Transaction Committed"


async def _true(value: bool) -> bool:
    return value


async def test_idle_and_old_transactions_expire_and_release_their_locks(pg_sim: AuroraSimulator) -> None:
    name = table()
    async with (
        DataApiEmulator(pg_sim, transaction_timeout=0.4, max_transaction_age=1.2) as emu,
        api(emu) as db,
        pg_direct(pg_sim) as direct,
    ):
        await db.execute(f"CREATE TABLE {name} (id int PRIMARY KEY)")
        await db.execute(f"INSERT INTO {name} VALUES (1), (2)")
        idle = await db.begin()
        await db.execute(f"SELECT * FROM {name} WHERE id = 1 FOR UPDATE", transactionId=idle)
        busy = await db.begin()
        await db.execute(f"SELECT * FROM {name} WHERE id = 2 FOR UPDATE", transactionId=busy)
        assert emu.open_transactions == 2
        started = time.monotonic()
        while emu.open_transactions == 2:  # the other one stays in use meanwhile
            await db.execute("SELECT 1", transactionId=busy)
            assert time.monotonic() - started < 5, "the idle transaction did not expire"
        assert emu.open_transactions == 1
        # its row lock went with it, without any further request on it
        assert await direct.fetchval(f"SELECT id FROM {name} WHERE id = 1 FOR UPDATE NOWAIT") == 1
        status, code, _, _ = await error_of(db.execute("SELECT 1", transactionId=idle))
        assert (status, code) == (404, "TransactionNotFoundException")
        started = time.monotonic()
        while True:  # a transaction in use still ends at max_transaction_age
            try:
                await db.execute("SELECT 1", transactionId=busy)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "TransactionNotFoundException"
                break
            assert time.monotonic() - started < 5, "the busy transaction outlived max_transaction_age"
        assert emu.open_transactions == 0
        assert await direct.fetchval(f"SELECT id FROM {name} WHERE id = 2 FOR UPDATE NOWAIT") == 2


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_batches_are_all_or_nothing(
    engine: str, pg_emu: DataApiEmulator, my_emu: DataApiEmulator
) -> None:
    emu = pg_emu if engine == "postgresql" else my_emu
    name = table()
    key = "id serial PRIMARY KEY" if engine == "postgresql" else "id INT AUTO_INCREMENT PRIMARY KEY"
    async with api(emu) as db:
        await db.execute(f"CREATE TABLE {name} ({key}, v INT UNIQUE)")
        status, code, _, _ = await error_of(
            db.batch(f"INSERT INTO {name} (v) VALUES (:v)", [{"v": 1}, {"v": 2}, {"v": 1}])
        )
        assert (status, code) == (400, "DatabaseErrorException")
        assert await db.rows(f"SELECT count(*) FROM {name}") == [[0]]
        results = await db.batch(f"INSERT INTO {name} (v) VALUES (:v)", [{"v": 1}, {"v": 2}])
        if engine == "postgresql":
            assert results == [{"generatedFields": []}, {"generatedFields": []}]
        else:  # the ids of the failed batch were used up
            first = results[0]["generatedFields"][0]["longValue"]
            assert results == [
                {"generatedFields": [{"longValue": first}]},
                {"generatedFields": [{"longValue": first + 1}]},
            ]
        assert await db.batch(f"UPDATE {name} SET v = v + 10", None) == []  # no parameter sets: runs once
        assert await db.rows(f"SELECT v FROM {name} ORDER BY v") == [[11], [12]]


# -- timeouts, limits, pause ---------------------------------------------------------------------------------


async def test_statement_timeout_cancels_or_continues_on_postgresql(pg_sim: AuroraSimulator) -> None:
    name = table()
    async with (
        DataApiEmulator(pg_sim, statement_timeout=0.3) as emu,
        api(emu) as db,
        pg_direct(pg_sim) as direct,
    ):
        await db.execute(f"CREATE TABLE {name} (v int)")
        status, code, message, response = await error_of(db.execute("SELECT pg_sleep(30)"))
        assert (status, code) == (400, "StatementTimeoutException") and "statement timeout" in message
        pid = response["dbConnectionId"]
        active = (
            f"SELECT count(*) FROM pg_stat_activity WHERE pid = {int(pid)} "
            "AND query LIKE '%pg_sleep(30)%' AND state = 'active'"
        )
        await eventually(lambda: _is_zero(direct.fetchval(active)), timeout=5, what="the cancellation")
        # in a transaction: the transaction is rolled back and gone
        tx = await db.begin()
        await db.execute(f"INSERT INTO {name} VALUES (1)", transactionId=tx)
        assert (await error_of(db.execute("SELECT pg_sleep(30)", transactionId=tx)))[
            1
        ] == "StatementTimeoutException"
        assert emu.open_transactions == 0
        assert (await error_of(db.commit(tx)))[1] == "NotFoundException"
        # continueAfterTimeout: the statement runs to its end and commits
        status, code, message, _ = await error_of(
            db.execute(f"INSERT INTO {name} SELECT 2 FROM pg_sleep(0.6)", continueAfterTimeout=True)
        )
        assert code == "StatementTimeoutException" and "keeps running" in message
        await eventually(
            lambda: _equal(direct.fetch(f"SELECT v FROM {name}"), [(2,)]),
            timeout=5,
            what="the continued insert",
        )


async def test_statement_timeout_cancels_or_continues_on_mysql(my_sim: AuroraSimulator) -> None:
    name = table()
    async with (
        DataApiEmulator(my_sim, statement_timeout=0.3) as emu,
        api(emu) as db,
        my_direct(my_sim) as direct,
    ):
        await db.execute(f"CREATE TABLE {name} (v INT)")
        _, code, _, response = await error_of(db.execute("SELECT SLEEP(30)"))
        assert code == "StatementTimeoutException"
        connection_id = int(response["dbConnectionId"])
        sleeping = (
            "SELECT count(*) FROM information_schema.processlist "
            f"WHERE id = {connection_id} AND info LIKE '%SLEEP(30)%'"
        )
        await eventually(lambda: _is_zero(_first(my_rows(direct, sleeping))), timeout=5, what="KILL QUERY")
        assert await db.value("SELECT 1") == 1  # the session is fine afterwards
        tx = await db.begin()
        await db.execute(f"INSERT INTO {name} VALUES (1)", transactionId=tx)
        assert (await error_of(db.execute("SELECT SLEEP(30)", transactionId=tx)))[
            1
        ] == "StatementTimeoutException"
        assert emu.open_transactions == 0
        _, code, _, _ = await error_of(
            db.execute(
                f"INSERT INTO {name} SELECT 2 FROM (SELECT SLEEP(0.6)) AS s", continueAfterTimeout=True
            )
        )
        assert code == "StatementTimeoutException"
        await eventually(
            lambda: _equal(my_rows(direct, f"SELECT v FROM {name}"), [(2,)]),
            timeout=5,
            what="the continued insert",
        )


async def _is_zero(value: Awaitable[Any]) -> bool:
    return bool(await value == 0)


async def _equal(value: Awaitable[Any], expected: Any) -> bool:
    return bool([tuple(row) for row in await value] == expected)


async def _first(rows: Awaitable[list[tuple[Any, ...]]]) -> Any:
    return (await rows)[0][0]


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_size_limits(engine: str, pg_sim: AuroraSimulator, my_sim: AuroraSimulator) -> None:
    sim = pg_sim if engine == "postgresql" else my_sim
    name = table()
    async with DataApiEmulator(sim, response_limit=4000, row_limit=300) as emu, api(emu) as db:
        status, code, message, _ = await error_of(db.execute("SELECT repeat('x', 400)"))
        assert (status, code) == (400, "DatabaseErrorException")
        assert message == "Packet for query is too large: a row exceeds the 300 bytes limit of the Data API"
        many = "SELECT generate_series(1, 300)" if engine == "postgresql" else "SELECT seq FROM seq_1_to_300"
        status, code, message, _ = await error_of(db.execute(many))
        assert (status, code, message) == (
            400,
            "DatabaseErrorException",
            "Database returned more than the allowed response size limit",
        )
        # outside a transaction, a statement whose answer is too large is rolled back
        await db.execute(f"CREATE TABLE {name} (v INT)")
        await db.execute(f"INSERT INTO {name} {many}")
        returning = f"DELETE FROM {name} RETURNING v"
        assert (await error_of(db.execute(returning)))[2].startswith("Database returned more than")
        assert await db.value(f"SELECT count(*) FROM {name}") == 300


async def test_pause_answers_resuming_then_ends(pg_emu: DataApiEmulator) -> None:
    name = table()
    async with api(pg_emu) as db:
        await db.execute(f"CREATE TABLE {name} (v int)")
        tx = await db.begin()
        try:
            pg_emu.pause(60)
            status, code, message, _ = await error_of(db.execute(f"INSERT INTO {name} VALUES (1)"))
            assert (status, code) == (400, "DatabaseResumingException")
            assert message == (
                f"The Aurora DB instance {pg_emu.cluster_id} is resuming after being auto-paused. "
                "Please wait a few seconds and try again."
            )
            assert (await error_of(db.batch(f"INSERT INTO {name} VALUES (:v)", [{"v": 1}])))[1] == (
                "DatabaseResumingException"
            )
            assert (await error_of(db.begin()))[1] == "DatabaseResumingException"
            assert (await error_of(db.execute("SELECT 1", transactionId=tx)))[
                1
            ] == "DatabaseResumingException"
            assert await db.commit(tx) == "Transaction Committed"  # commit and rollback still work
            pg_emu.pause(60, error="link_failure")
            status, code, message, _ = await error_of(db.execute("SELECT 1"))
            assert (status, code) == (400, "BadRequestException")
            assert message.startswith("Communications link failure\n\nThe last packet sent successfully")
            pg_emu.resume()
            assert await db.value(f"SELECT count(*) FROM {name}") == 0  # nothing ran while paused
            pg_emu.pause(0.5)
            assert (await error_of(db.execute("SELECT 1")))[1] == "DatabaseResumingException"
            started = time.monotonic()
            while True:  # the pause ends by itself
                try:
                    assert await db.value("SELECT 1") == 1
                    break
                except ClientError as exc:
                    assert exc.response["Error"]["Code"] == "DatabaseResumingException"
                    assert time.monotonic() - started < 5, "the pause did not end"
        finally:
            pg_emu.resume()


# -- sessions: databases, lost connections, concurrency, leftovers ------------------------------------------


async def test_database_field_selects_the_database(pg_emu: DataApiEmulator) -> None:
    other = f"db_{uuid.uuid4().hex[:8]}"
    async with api(pg_emu) as db:
        await db.execute(f"CREATE DATABASE {other}")
        assert await db.value("SELECT current_database()", database=other) == other
        assert await db.value("SELECT current_database()") == pg_emu._sim._database
        tx = await db.begin(database=other)
        assert await db.value("SELECT current_database()", transactionId=tx) == other
        await db.rollback(tx)
        status, code, message, _ = await error_of(db.execute("SELECT 1", database="no_such_db"))
        assert (status, code) == (400, "DatabaseErrorException") and "no_such_db" in message


async def test_a_lost_connection_answers_unavailable_and_ends_the_transaction(
    pg_emu: DataApiEmulator,
) -> None:
    sim = pg_emu._sim
    async with api(pg_emu) as db:
        tx = await db.begin()
        before = pg_emu.open_transactions
        await sim.reset_connections(sim.writer_id)
        status, code, message, _ = await error_of(db.execute("SELECT 1", transactionId=tx))
        assert (status, code) == (504, "DatabaseUnavailableException")
        assert message.startswith("The writer instance isn't available")
        assert pg_emu.open_transactions == before - 1
        assert await db.value("SELECT 1") == 1  # new connections are made


async def test_independent_requests_run_concurrently(my_emu: DataApiEmulator) -> None:
    async with api(my_emu) as db:
        started = time.monotonic()
        values = await asyncio.gather(*(db.value("SELECT SLEEP(0.4) + :k", {"k": k}) for k in range(8)))
        elapsed = time.monotonic() - started
    assert values == list(range(8))
    assert elapsed < 2.0, f"8 statements of 0.4 s took {elapsed:.2f} s: they ran one after another"


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_nothing_is_left_after_exit(
    engine: str, pg_sim: AuroraSimulator, my_sim: AuroraSimulator
) -> None:
    sim = pg_sim if engine == "postgresql" else my_sim
    own_id = "SELECT pg_backend_pid()" if engine == "postgresql" else "SELECT CONNECTION_ID()"
    sleep = "SELECT pg_sleep(30)" if engine == "postgresql" else "SELECT SLEEP(30)"
    before = asyncio.all_tasks()
    started = time.monotonic()
    async with DataApiEmulator(sim, statement_timeout=0.3) as emu:
        async with api(emu) as db:
            tx = await db.begin()
            ids = {int(await db.value(own_id, transactionId=tx))}  # an open transaction
            response = (await error_of(db.execute(sleep, continueAfterTimeout=True)))[3]
            ids.add(int(response["dbConnectionId"]))  # a statement running on after its timeout
            ids.add(int(await db.value(own_id)))  # an idle pooled session
        assert len(ids) == 3 and emu.open_transactions == 1
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5, "the emulator took long to stop"
    left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    assert not left, f"tasks left running: {left}"
    with pytest.raises(RuntimeError):
        emu.endpoint_url  # noqa: B018 - it is not serving any more
    if engine == "postgresql":
        async with pg_direct(sim) as direct:
            query = f"SELECT count(*) FROM pg_stat_activity WHERE pid IN ({', '.join(map(str, ids))})"
            await eventually(lambda: _is_zero(direct.fetchval(query)), timeout=5, what="the sessions to end")
    else:
        async with my_direct(sim) as direct:
            listed = ", ".join(map(str, ids))
            query = f"SELECT count(*) FROM information_schema.processlist WHERE id IN ({listed})"
            await eventually(
                lambda: _is_zero(_first(my_rows(direct, query))), timeout=5, what="the sessions to end"
            )
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
async def test_exit_cancels_requests_in_flight(
    engine: str, pg_sim: AuroraSimulator, my_sim: AuroraSimulator
) -> None:
    sim = pg_sim if engine == "postgresql" else my_sim
    sleep = "SELECT pg_sleep(30)" if engine == "postgresql" else "SELECT SLEEP(30)"
    async with DataApiEmulator(sim) as emu, api(emu) as db:
        in_flight = asyncio.ensure_future(db.execute(sleep))
        await eventually(lambda: _true(emu.requests["ExecuteStatement"] == 1), timeout=5, what="the request")
        stopping = time.monotonic()
        await emu.__aexit__(None, None, None)
        assert time.monotonic() - stopping < 3, "the emulator took long to stop"
        with pytest.raises(botocore.exceptions.ConnectionClosedError):  # closed without an answer
            await in_flight
    running = (
        "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"
        if engine == "postgresql"
        else "SELECT count(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(30)'"
    )
    if engine == "postgresql":
        async with pg_direct(sim) as direct:
            await eventually(
                lambda: _is_zero(direct.fetchval(running)), timeout=5, what="the statement to end"
            )
    else:
        async with my_direct(sim) as direct:
            await eventually(
                lambda: _is_zero(_first(my_rows(direct, running))), timeout=5, what="the statement"
            )


# -- the command line ---------------------------------------------------------------------------------------


async def test_cli_up_with_data_api_prints_its_endpoint() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aurora_async.testing", "up", "--instances", "1", "--data-api",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "the CLI exited early"
                if line.startswith("data api "):
                    key, value = line[len("data api ") :].split(None, 1)
                    lines[key] = value.strip()
                if line.startswith("ready"):
                    break
        assert set(lines) == {"endpoint", "resource", "secret"}
        assert lines["resource"].startswith("arn:aws:rds:us-east-1:123456789012:cluster:")
        body = {"resourceArn": lines["resource"], "secretArn": lines["secret"], "sql": "SELECT 6 * 7"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(lines["endpoint"] + "/Execute", json=body) as response,
        ):
            assert (await response.json())["records"] == [[{"longValue": 42}]]
        os.killpg(proc.pid, signal.SIGINT)
        async with asyncio.timeout(30):
            await proc.communicate()
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == 0
