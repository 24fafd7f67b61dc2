"""The Data API client's pure parts: parameter encoding, result decoding, records, error mapping,
parameter-name checks, backoff. No sockets."""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from decimal import Decimal
from typing import Any, cast

import pytest

from aurora_async import ConfigurationError
from aurora_async._concurrency import Backoff
from aurora_async.data_api import (
    DataApiError,
    DatabaseError,
    DatabaseResumingError,
    Json,
    ParameterError,
    Record,
    ResultTooLargeError,
    StatementTimeoutError,
    TransactionNotFoundError,
    connect,
)
from aurora_async.data_api._errors import from_client_error, is_resuming
from aurora_async.data_api._records import column_index
from aurora_async.data_api._statements import check_parameters, only_reads
from aurora_async.data_api._values import decode_field, encode_parameter

CLUSTER = "arn:aws:rds:eu-west-1:123456789012:cluster:orders"
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-AbCdEf"


@pytest.mark.parametrize(
    ("value", "field", "hint"),
    [
        (None, {"isNull": True}, None),
        (True, {"booleanValue": True}, None),
        (7, {"longValue": 7}, None),
        (2**63, {"stringValue": str(2**63)}, "DECIMAL"),
        (1.5, {"doubleValue": 1.5}, None),
        ("x", {"stringValue": "x"}, None),
        (b"\x00\xff", {"blobValue": b"\x00\xff"}, None),
        (bytearray(b"ab"), {"blobValue": b"ab"}, None),
        (Decimal("12.340"), {"stringValue": "12.340"}, "DECIMAL"),
        (dt.date(2026, 11, 23), {"stringValue": "2026-11-23"}, "DATE"),
        (dt.time(1, 2, 3), {"stringValue": "01:02:03"}, "TIME"),
        (dt.time(1, 2, 3, 450000), {"stringValue": "01:02:03.450"}, "TIME"),
        (
            dt.datetime(2026, 1, 2, 3, 4, 5, 123456),
            {"stringValue": "2026-01-02 03:04:05.123456"},
            "TIMESTAMP",
        ),
        (
            dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            {"stringValue": "2026-01-02 01:04:05"},
            "TIMESTAMP",
        ),
        (uuid.UUID(int=1), {"stringValue": "00000000-0000-0000-0000-000000000001"}, "UUID"),
        ({"a": [1, None]}, {"stringValue": '{"a":[1,null]}'}, "JSON"),
        ([1, 2], {"stringValue": "[1,2]"}, "JSON"),
        (Json("text"), {"stringValue": '"text"'}, "JSON"),
    ],
)
def test_parameters_encode_with_the_documented_field_and_hint(
    value: Any, field: Any, hint: str | None
) -> None:
    parameter = encode_parameter("p", value)
    assert parameter["value"] == field
    assert parameter.get("typeHint") == hint


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (float("nan"), "NaN"),
        (dt.time(1, tzinfo=dt.UTC), "time zone"),
        (object(), "cannot send a object"),
        ({1, 2}, "cannot send a set"),
        ({"a": object()}, "not JSON"),
    ],
)
def test_unsendable_values_name_the_parameter(value: Any, words: str) -> None:
    with pytest.raises(ParameterError, match=words) as info:
        encode_parameter("amount", value)
    assert ":amount" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("field", "type_name", "value"),
    [
        ({"isNull": True}, "int4", None),
        ({"longValue": 5}, "int8", 5),
        ({"stringValue": "1.50"}, "numeric", Decimal("1.50")),
        ({"stringValue": "1.50"}, "DECIMAL", Decimal("1.50")),
        ({"stringValue": "2026-11-23"}, "date", dt.date(2026, 11, 23)),
        ({"stringValue": "infinity"}, "date", dt.date.max),
        (
            {"stringValue": "2026-11-23 10:11:12.5"},
            "timestamp",
            dt.datetime(2026, 11, 23, 10, 11, 12, 500000),
        ),
        (
            {"stringValue": "2026-11-23 10:11:12.123456789"},
            "DATETIME",
            dt.datetime(2026, 11, 23, 10, 11, 12, 123456),
        ),
        (
            {"stringValue": "2026-11-23 10:11:12"},
            "timestamptz",
            dt.datetime(2026, 11, 23, 10, 11, 12, tzinfo=dt.UTC),
        ),
        ({"stringValue": "10:11:12.25"}, "time", dt.time(10, 11, 12, 250000)),
        ({"stringValue": "-838:59:59"}, "TIME", -dt.timedelta(hours=838, minutes=59, seconds=59)),
        ({"stringValue": '{"a": [1]}'}, "jsonb", {"a": [1]}),
        ({"stringValue": "00000000-0000-0000-0000-000000000001"}, "uuid", uuid.UUID(int=1)),
        ({"stringValue": "10.0.0.1"}, "inet", "10.0.0.1"),
        ({"stringValue": "not a date"}, "date", "not a date"),  # unparsable: the text as sent
        ({"arrayValue": {"longValues": [1, None, 3]}}, "_int4", [1, None, 3]),
        ({"arrayValue": {"stringValues": ["2026-01-01", None]}}, "_date", [dt.date(2026, 1, 1), None]),
        ({"arrayValue": {"arrayValues": [{"booleanValues": [True]}]}}, "_bool", [[True]]),
        ({"blobValue": b"\x01"}, "bytea", b"\x01"),
    ],
)
def test_results_decode_by_column_type(field: Any, type_name: str, value: Any) -> None:
    assert decode_field(field, type_name) == value


def test_records_are_tuples_and_mappings() -> None:
    rec = Record(column_index(["id", "name", "id"]), [1, "a", 2])
    assert rec == (1, "a", 2) and tuple(rec) == (1, "a", 2) and len(rec) == 3
    assert rec[0] == 1 and rec["id"] == 1 and rec[1:] == ("a", 2)
    assert list(rec.keys()) == ["id", "name"] and dict(rec) == {"id": 1, "name": "a"}
    assert "name" in rec and rec.get("missing", 0) == 0
    with pytest.raises(KeyError, match="columns: id, name"):
        rec["missing"]
    assert repr(rec) == "<Record id=1 name='a' 2=2>"


def _client_error(code: str, message: str, status: int = 400, **extra: Any) -> Exception:
    from botocore.exceptions import ClientError

    return cast(
        Exception,
        ClientError(
            {
                "Error": {"Code": code, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": status},
                **extra,
            },
            "ExecuteStatement",
        ),
    )


def test_aws_errors_map_to_typed_errors() -> None:
    pg = from_client_error(
        _client_error(
            "DatabaseErrorException",
            'ERROR: relation "nope" does not exist\n  Position: 15; SQLState: 42P01',
        )
    )
    assert isinstance(pg, DatabaseError) and (pg.sqlstate, pg.position, pg.error_code) == ("42P01", 15, None)
    my = from_client_error(
        _client_error("DatabaseErrorException", "Table 'app.nope' doesn't exist; Error code: 1146")
    )
    assert isinstance(my, DatabaseError) and my.error_code == 1146
    timeout = from_client_error(_client_error("StatementTimeoutException", "timed out", dbConnectionId=42))
    assert isinstance(timeout, StatementTimeoutError) and timeout.db_connection_id == 42
    for code, status in (("TransactionNotFoundException", 404), ("NotFoundException", 404)):
        assert isinstance(
            from_client_error(_client_error(code, "Transaction x is not found", status)),
            TransactionNotFoundError,
        )
    old = from_client_error(_client_error("BadRequestException", "Transaction AbC is not found"))
    assert isinstance(old, TransactionNotFoundError)
    resuming = from_client_error(_client_error("DatabaseResumingException", "resuming"))
    assert isinstance(resuming, DatabaseResumingError) and is_resuming(resuming)
    link = from_client_error(
        _client_error("BadRequestException", "Communications link failure\n\nThe last packet")
    )
    assert is_resuming(link) and type(link) is DataApiError
    big = from_client_error(
        _client_error("DatabaseErrorException", "Database returned more than the allowed response size limit")
    )
    assert isinstance(big, ResultTooLargeError) and "LIMIT" in str(big)
    denied = from_client_error(_client_error("AccessDeniedException", "no", 403))
    assert type(denied) is DataApiError and (denied.code, denied.status) == ("AccessDeniedException", 403)


def test_parameter_names_are_checked_against_the_statement() -> None:
    sql = "UPDATE t SET a = :a WHERE id = :id"
    assert check_parameters(sql, {"a": 1, "id": 2}, "postgresql") == {"a": 1, "id": 2}
    with pytest.raises(ParameterError, match=r"no value for parameter :id .*given: a"):
        check_parameters(sql, {"a": 1}, "postgresql")
    with pytest.raises(
        ParameterError, match=r"parameter :ID not in the statement \(its parameters: :a, :id\)"
    ):
        check_parameters(sql, {"a": 1, "id": 2, "ID": 3}, None)
    with pytest.raises(ParameterError, match="no positional parameters"):
        check_parameters(sql, [1, 2], None)
    # engine unknown: a MySQL-only escape must not make a name look missing
    assert check_parameters(r"SELECT 'it\'s :x', :y", {"y": 1}, None) == {"y": 1}
    assert check_parameters("SELECT 1", None, None) == {}


@pytest.mark.parametrize(
    ("sql", "reads"),
    [
        ("SELECT 1", True),
        ("  -- why\n /* c */ (SELECT 1)", True),
        ("show tables", True),
        ("EXPLAIN SELECT 1", True),
        ("EXPLAIN (COSTS off, FORMAT json) DELETE FROM t", True),
        ("SELECT * FROM t FOR UPDATE", True),
        ("SELECT 1;", True),
        ("EXPLAIN ANALYZE DELETE FROM t", False),
        ("EXPLAIN ANALYSE DELETE FROM t", False),
        ("explain analyse verbose select f()", False),
        ("EXPLAIN (ANALYZE) DELETE FROM t", False),
        ("EXPLAIN (ANALYSE true) DELETE FROM t", False),
        ("EXPLAIN (FORMAT json, ANALYSE) DELETE FROM t", False),
        ("EXPLAIN /* c */ (COSTS false,\n ANALYZE on) SELECT f()", False),
        ("EXPLAIN FORMAT=TREE ANALYZE SELECT 1", False),
        ("SELECT * INTO copy FROM t", False),
        ("SELECT a INTO @x FROM t", False),
        ("SELECT 1; DELETE FROM t", False),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", False),
        ("INSERT INTO t VALUES (1)", False),
    ],
)
def test_only_reads_recognises_statements_that_change_nothing(sql: str, reads: bool) -> None:
    assert only_reads(sql) is reads


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(0.25, 8.0, rng=random.Random(7))
    delays = [backoff.delay(n) for n in range(10)]
    for n, delay in enumerate(delays):
        ceiling = min(8.0, 0.25 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"resource_arn": "orders"}, "resource_arn must be an ARN of the rds service"),
        ({"resource_arn": SECRET}, "resource_arn must be an ARN of the rds service"),
        ({"secret_arn": CLUSTER}, "secret_arn must be an ARN of the secretsmanager service"),
        ({"resource_arn": "arn:aws:rds:eu-west-1:123456789012:og:x"}, "must name a DB cluster"),
        ({"engine": "oracle"}, "engine must be"),
        ({"database": ""}, "database"),
        ({"resend_reads": "yes"}, "resend_reads must be True or False, not 'yes'"),
    ],
)
def test_bad_connect_arguments_are_named(kwargs: dict[str, Any], words: str) -> None:
    arguments = {"resource_arn": CLUSTER, "secret_arn": SECRET, **kwargs}
    with pytest.raises(ConfigurationError, match=words):
        connect(**arguments)


NOT_NUMBERS = [None, "10", True, Decimal("1")]


@pytest.mark.parametrize("name", ["request_timeout", "connect_timeout"])
@pytest.mark.parametrize("value", [0, 0.0, -1.5, float("nan"), float("inf"), float("-inf"), *NOT_NUMBERS])
def test_timeouts_must_be_finite_and_positive(name: str, value: Any) -> None:
    expected = f"{name} must be a finite number of seconds > 0, not {value!r}"
    with pytest.raises(ConfigurationError, match=f"^{re.escape(expected)}$"):
        connect(resource_arn=CLUSTER, secret_arn=SECRET, **{name: value})


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), float("-inf"), *NOT_NUMBERS])
def test_retry_timeout_must_be_finite_and_not_negative(value: Any) -> None:
    expected = (
        f"retry_timeout must be a finite number of seconds >= 0 (0: send each request once), not {value!r}"
    )
    with pytest.raises(ConfigurationError, match=f"^{re.escape(expected)}$"):
        connect(resource_arn=CLUSTER, secret_arn=SECRET, retry_timeout=value)


@pytest.mark.parametrize("value", [0, -1, 2.0, float("nan"), float("inf"), *NOT_NUMBERS])
def test_max_concurrency_must_be_a_positive_int(value: Any) -> None:
    expected = f"max_concurrency must be an int >= 1, not {value!r}"
    with pytest.raises(ConfigurationError, match=f"^{re.escape(expected)}$"):
        connect(resource_arn=CLUSTER, secret_arn=SECRET, max_concurrency=value)


def test_good_connect_arguments_are_accepted() -> None:
    connecting = connect(
        resource_arn=CLUSTER,
        secret_arn=SECRET,
        retry_timeout=0,  # send each request once
        request_timeout=0.5,
        connect_timeout=1,
        max_concurrency=1,
        resend_reads=True,
    )
    assert connecting is not None
