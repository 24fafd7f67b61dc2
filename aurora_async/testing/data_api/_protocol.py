"""The RDS Data API's wire protocol as the emulator speaks it: error shapes, request validation, the
parameters of a statement, and the JSON of a response with its size limits.

botocore's ``rds-data`` model (2018-08-01) is rest-json: every operation is a ``POST`` of a JSON object,
an error is an HTTP status, an ``x-amzn-ErrorType: <Shape>`` header and ``{"message": ...}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Field = dict[str, Any]
"""One Data API ``Field``: exactly one of ``isNull``, ``booleanValue``, ``longValue``, ``doubleValue``,
``stringValue``, ``blobValue`` (base64 text on the wire) or ``arrayValue``."""

REQUEST_LIMIT = 4 * 1024 * 1024  # bytes of a request body
SQL_LIMIT = 65_536  # characters of ``sql``
DATABASE_NAME_LIMIT = 64
TRANSACTION_ID_LIMIT = 192
INT64 = (-(2**63), 2**63 - 1)

STATUS = {
    "AccessDeniedException": 403,
    "BadRequestException": 400,
    "DatabaseErrorException": 400,
    "DatabaseNotFoundException": 404,
    "DatabaseResumingException": 400,
    "DatabaseUnavailableException": 504,
    "ForbiddenException": 403,
    "HttpEndpointNotEnabledException": 400,
    "InternalServerErrorException": 500,
    "NotFoundException": 404,
    "SecretsErrorException": 400,
    "StatementTimeoutException": 400,
    "TransactionNotFoundException": 404,
    "UnknownOperationException": 404,
    "UnsupportedResultException": 400,
    "ValidationException": 400,
}

RESPONSE_TOO_LARGE = "Database returned more than the allowed response size limit"
ROW_TOO_LARGE = "Packet for query is too large"
LINK_FAILURE = (
    "Communications link failure\n\nThe last packet sent successfully to the server was 0 milliseconds ago. "
    "The driver has not received any packets from the server."
)
STILL_RUNNING = "Transaction is still running a query"
MULTISTATEMENTS = "Multistatements aren't supported."

TypeHint = Literal["JSON", "UUID", "TIMESTAMP", "DATE", "TIME", "DECIMAL"]
TYPE_HINTS = frozenset(("JSON", "UUID", "TIMESTAMP", "DATE", "TIME", "DECIMAL"))
ParamKind = Literal["null", "bool", "long", "double", "string", "blob"]
_FIELD_KINDS: dict[str, ParamKind] = {
    "isNull": "null",
    "booleanValue": "bool",
    "longValue": "long",
    "doubleValue": "double",
    "stringValue": "string",
    "blobValue": "blob",
}
FIELD_MEMBERS = frozenset((*_FIELD_KINDS, "arrayValue"))


class ApiError(Exception):
    """An answer in one of the Data API's error shapes (``shape`` is the ``x-amzn-ErrorType``)."""

    def __init__(self, shape: str, message: str, **extra: Any) -> None:
        super().__init__(f"{shape}: {message}")
        self.shape = shape
        self.message = message
        self.status = STATUS[shape]
        self.extra = extra

    def body(self) -> bytes:
        """The JSON body: ``{"message": ...}`` and the shape's other members."""
        return json.dumps({"message": self.message, **self.extra}).encode()


def bad_request(message: str) -> ApiError:
    return ApiError("BadRequestException", message)


def database_error(message: str) -> ApiError:
    return ApiError("DatabaseErrorException", message)


def unavailable(reason: str) -> ApiError:
    return ApiError(
        "DatabaseUnavailableException",
        f"The writer instance isn't available, so the request could not be run: {reason}",
    )


def unsupported_type(type_name: str) -> ApiError:
    return ApiError(
        "UnsupportedResultException",
        f"The result contains the unsupported data type {type_name}. "
        "Cast it to a supported type, for example with ::text.",
    )


def transaction_not_found(transaction_id: str, shape: str = "TransactionNotFoundException") -> ApiError:
    return ApiError(shape, f"Transaction {transaction_id} is not found")


def endpoint_not_enabled(resource_arn: str) -> ApiError:
    """The answer to a ``resourceArn`` that names no cluster with the Data API enabled.

    Serverless v2 and provisioned clusters answer ``HttpEndpointNotEnabledException``: the botocore
    ``rds-data`` model marks ``BadRequestException`` "only appears in calls from Aurora Serverless v1
    databases", the Aurora User Guide's "Troubleshooting Amazon RDS Data API" lists "HttpEndpoint isn't
    enabled for cluster <cluster_ID>" (the Data API not enabled, or not supported, for the cluster), and
    calls against a deleted cluster have been seen to answer ``HttpEndpointNotEnabledException``
    "HttpEndpoint is not enabled for resource <arn>" (the wording used here)."""
    message = f"HttpEndpoint is not enabled for resource {resource_arn}"
    return ApiError("HttpEndpointNotEnabledException", message)


# -- requests ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One ``SqlParameter``, validated: ``kind`` says which ``Field`` member carried ``value`` (a Python
    int, float, bool, str, bytes or None); ``hint`` is its ``typeHint``."""

    name: str
    kind: ParamKind
    value: Any
    hint: TypeHint | None = None


@dataclass(frozen=True)
class ResultOptions:
    """How results are encoded: ``resultSetOptions`` and ``includeResultMetadata``."""

    include_metadata: bool = False
    decimal_as_number: bool = False  # decimalReturnType DOUBLE_OR_LONG
    long_as_string: bool = False  # longReturnType STRING


@dataclass(frozen=True)
class Request:
    """The members of a request body that the emulator reads, checked for type (not for meaning)."""

    resource_arn: str
    secret_arn: str
    sql: str | None
    database: str | None
    transaction_id: str | None
    parameters: dict[str, Param]
    parameter_sets: list[dict[str, Param]] | None
    options: ResultOptions
    continue_after_timeout: bool
    json_records: bool


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body (an empty body counts as ``{}``)."""
    if len(raw) > REQUEST_LIMIT:
        raise bad_request(f"Request size limit exceeded: the request is {len(raw)} bytes, the limit is 4 MiB")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    return body


def parse_request(body: Mapping[str, Any], *, needs_sql: bool, needs_transaction: bool) -> Request:
    """Check the members of ``body`` (types, required members, the limits of the model)."""
    resource_arn = _string(body, "resourceArn", required=True)
    secret_arn = _string(body, "secretArn", required=True)
    sql = _string(body, "sql", required=needs_sql)
    if sql is not None and len(sql) > SQL_LIMIT:
        raise bad_request(f"The SQL statement is {len(sql)} characters long; the limit is {SQL_LIMIT}")
    database = _string(body, "database")
    if database is not None and len(database) > DATABASE_NAME_LIMIT:
        raise bad_request(f"Database name is longer than {DATABASE_NAME_LIMIT} characters")
    transaction_id = _string(body, "transactionId", required=needs_transaction)
    if transaction_id is not None and len(transaction_id) > TRANSACTION_ID_LIMIT:
        raise bad_request(f"Transaction ID is longer than {TRANSACTION_ID_LIMIT} characters")
    parameters = parse_parameters(body.get("parameters"), "parameters")
    parameter_sets = None
    if body.get("parameterSets") is not None:
        sets = body["parameterSets"]
        if not isinstance(sets, list):
            raise bad_request("parameterSets must be a list of parameter lists")
        parameter_sets = [parse_parameters(item, f"parameterSets[{k}]") for k, item in enumerate(sets)]
    return Request(
        resource_arn=resource_arn or "",
        secret_arn=secret_arn or "",
        sql=sql,
        database=database,
        transaction_id=transaction_id,
        parameters=parameters,
        parameter_sets=parameter_sets,
        options=_result_options(body),
        continue_after_timeout=_boolean(body, "continueAfterTimeout"),
        json_records=_records_format(body) == "JSON",
    )


def _string(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bad_request(f"Missing required field: {key}")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{key} must be a string")
    return value


def _boolean(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be a boolean")
    return value


def _result_options(body: Mapping[str, Any]) -> ResultOptions:
    options = body.get("resultSetOptions") or {}
    if not isinstance(options, dict):
        raise bad_request("resultSetOptions must be an object")
    decimal = options.get("decimalReturnType", "STRING")
    long = options.get("longReturnType", "LONG")
    if decimal not in ("STRING", "DOUBLE_OR_LONG"):
        raise bad_request(f"Invalid decimalReturnType {decimal!r}: expected STRING or DOUBLE_OR_LONG")
    if long not in ("LONG", "STRING"):
        raise bad_request(f"Invalid longReturnType {long!r}: expected LONG or STRING")
    return ResultOptions(
        include_metadata=_boolean(body, "includeResultMetadata"),
        decimal_as_number=decimal == "DOUBLE_OR_LONG",
        long_as_string=long == "STRING",
    )


def _records_format(body: Mapping[str, Any]) -> str:
    value = body.get("formatRecordsAs", "NONE")
    if value not in ("NONE", "JSON"):
        raise bad_request(f"Invalid formatRecordsAs {value!r}: expected NONE or JSON")
    return str(value)


def parse_parameters(raw: Any, where: str) -> dict[str, Param]:
    """``SqlParametersList`` -> parameters by name (a name given twice: the last one counts)."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise bad_request(f"{where} must be a list of parameters")
    params: dict[str, Param] = {}
    for k, item in enumerate(raw):
        param = _parameter(item, f"{where}[{k}]")
        params[param.name] = param
    return params


def _parameter(item: Any, where: str) -> Param:
    if not isinstance(item, dict):
        raise bad_request(f"{where} must be an object with name, value and typeHint")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"{where} has no name: named parameters (:name in the SQL) need one")
    value = item.get("value")
    if not isinstance(value, dict):
        raise bad_request(f'Parameter "{name}" has no value')
    members = [key for key in value if value[key] is not None]
    if "arrayValue" in members:
        raise bad_request("Array parameters are not supported.")
    if not members:
        raise bad_request(f'Parameter "{name}" has value with no field set')
    if len(members) > 1 or members[0] not in FIELD_MEMBERS:
        raise bad_request(f'Parameter "{name}" must set exactly one field of a Field, not {sorted(members)}')
    member = members[0]
    kind = _FIELD_KINDS[member]
    hint = item.get("typeHint")
    if hint is not None:
        if hint not in TYPE_HINTS:
            raise bad_request(f'Parameter "{name}" has an unknown typeHint {hint!r}')
        if kind != "string":
            raise bad_request(f'Parameter "{name}" has typeHint {hint}, which needs a stringValue')
    return Param(name, kind, _field_value(name, member, value[member]), hint)


def _field_value(name: str, member: str, value: Any) -> Any:
    if member == "isNull":
        if value is not True:
            raise bad_request(f'Parameter "{name}": isNull must be true')
        return None
    if member == "booleanValue" and isinstance(value, bool):
        return value
    if member == "longValue" and isinstance(value, int) and not isinstance(value, bool):
        if not INT64[0] <= value <= INT64[1]:
            raise bad_request(f'Parameter "{name}": longValue is out of the 64-bit range')
        return value
    if member == "doubleValue" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if member == "stringValue" and isinstance(value, str):
        return value
    if member == "blobValue" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f'Parameter "{name}": blobValue is not valid base64') from None
    raise bad_request(f'Parameter "{name}": {member} has a value of the wrong type')


# -- responses --------------------------------------------------------------------------------------------


def dumps(body: Any) -> bytes:
    """Compact JSON (NaN and infinities as Python writes them, which botocore reads back)."""
    return json.dumps(body, separators=(",", ":")).encode()


def check_rows(records: Sequence[Sequence[Field]], row_limit: int) -> None:
    """``ROW_TOO_LARGE`` if the JSON of one record is over ``row_limit`` bytes (measured one by one only
    when all of them together are: a per-row encode costs as much as the response's)."""
    if len(dumps(records)) <= row_limit:
        return
    for record in records:
        if len(dumps(record)) > row_limit:
            raise database_error(
                f"{ROW_TOO_LARGE}: a row exceeds the {_size(row_limit)} limit of the Data API"
            )


def check_response(payload: bytes, response_limit: int) -> bytes:
    if len(payload) > response_limit:
        raise database_error(RESPONSE_TOO_LARGE)
    return payload


def _size(limit: int) -> str:
    return f"{limit // 1024} KB" if limit % 1024 == 0 else f"{limit} bytes"


def field_value(field: Field) -> Any:
    """The plain value of a ``Field`` for ``formatRecordsAs: JSON`` (blobs stay base64 text)."""
    if field.get("isNull"):
        return None
    if "arrayValue" in field:
        return next(iter(field["arrayValue"].values()))
    return next(iter(field.values()))


def formatted_records(labels: Sequence[str], records: Sequence[Sequence[Field]]) -> str:
    """``formattedRecords``: the JSON text of a list of ``{column: value}`` objects."""
    return json.dumps(
        [{label: field_value(f) for label, f in zip(labels, record, strict=True)} for record in records],
        separators=(",", ":"),
    )


def blob(value: bytes) -> Field:
    return {"blobValue": base64.b64encode(value).decode("ascii")}
