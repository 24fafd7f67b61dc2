"""Python values to Data API parameters, and Data API fields back to Python values.

Parameters (``SqlParameter``: a ``Field`` and, where the Data API needs one, a ``typeHint``):

==========================  ===================================  ===========
Python                      Field                                typeHint
==========================  ===================================  ===========
``None``                    ``isNull``
``bool``                    ``booleanValue``
``int`` (64-bit)            ``longValue``
``int`` (larger)            ``stringValue``                      DECIMAL
``float`` (finite)          ``doubleValue``
``str``                     ``stringValue``
``bytes``-like              ``blobValue``
``Decimal``                 ``stringValue``                      DECIMAL
``datetime``                ``stringValue`` (aware: as UTC)      TIMESTAMP
``date``                    ``stringValue``                      DATE
``time`` (naive)            ``stringValue``                      TIME
``UUID``                    ``stringValue``                      UUID
``dict``, ``list``, Json    ``stringValue`` (JSON text)          JSON
==========================  ===================================  ===========

Fractions of a second are sent with three digits when the value has whole milliseconds (the format the
Data API documents) and with six otherwise, so no microsecond is lost.

Results are decoded with the column metadata: DECIMAL/NUMERIC to ``Decimal``, dates and times to
``date``/``time``/``datetime`` (PostgreSQL ``timestamptz`` aware, in UTC; MySQL ``TIME`` to
``timedelta``, as aiomysql returns it), JSON to Python objects, UUID to ``uuid.UUID``, arrays to lists.
A value whose text cannot be parsed as its column type is returned as the text the Data API sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ._errors import ParameterError

_INT64 = range(-(2**63), 2**63)


class Json:
    """Send ``value`` as JSON (typeHint JSON), whatever its Python type: ``Json("a string")``,
    ``Json(None)`` sends the JSON ``null``. Dicts and lists are sent as JSON without it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Json({self.value!r})"


def encode_parameters(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``parameters`` list of a request for ``params`` (names already checked against the SQL)."""
    return [encode_parameter(name, value) for name, value in params.items()]


def encode_parameter(name: str, value: Any) -> dict[str, Any]:
    """One ``SqlParameter``; :class:`ParameterError` names the parameter and the accepted types."""
    field, hint = _field(name, value)
    parameter: dict[str, Any] = {"name": name, "value": field}
    if hint is not None:
        parameter["typeHint"] = hint
    return parameter


def _field(name: str, value: Any) -> tuple[dict[str, Any], str | None]:
    if value is None:
        return {"isNull": True}, None
    if isinstance(value, bool):
        return {"booleanValue": value}, None
    if isinstance(value, int):
        if value in _INT64:
            return {"longValue": int(value)}, None
        return {"stringValue": str(int(value))}, "DECIMAL"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterError(
                f"parameter :{name}: the Data API cannot carry {value!r} as a number (JSON has no "
                "NaN or infinity); send Decimal('NaN') or a string and cast it in the SQL"
            )
        return {"doubleValue": value}, None
    if isinstance(value, str):
        return {"stringValue": value}, None
    if isinstance(value, bytes | bytearray | memoryview):
        return {"blobValue": bytes(value)}, None
    if isinstance(value, Decimal):
        return {"stringValue": str(value)}, "DECIMAL"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {"stringValue": value.strftime("%Y-%m-%d %H:%M:%S") + _fraction(value.microsecond)}, (
            "TIMESTAMP"
        )
    if isinstance(value, dt.date):
        return {"stringValue": value.isoformat()}, "DATE"
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise ParameterError(
                f"parameter :{name}: the Data API's TIME has no time zone; send a naive time"
            )
        return {"stringValue": value.strftime("%H:%M:%S") + _fraction(value.microsecond)}, "TIME"
    if isinstance(value, uuid.UUID):
        return {"stringValue": str(value)}, "UUID"
    if isinstance(value, Json):
        return {"stringValue": _json(name, value.value)}, "JSON"
    if isinstance(value, dict | list):
        return {"stringValue": _json(name, value)}, "JSON"
    raise ParameterError(
        f"parameter :{name}: cannot send a {type(value).__name__} through the Data API (it takes None, "
        "bool, int, float, str, bytes, Decimal, datetime, date, time, UUID, dict/list or Json(...) for "
        "JSON; arrays are not supported as parameters)"
    )


def _fraction(microsecond: int) -> str:
    if microsecond == 0:
        return ""
    if microsecond % 1000 == 0:
        return f".{microsecond // 1000:03d}"
    return f".{microsecond:06d}"


def _json(name: str, value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"parameter :{name}: not JSON-serialisable ({exc})") from None


# -- results -----------------------------------------------------------------------------------------


def decode_field(field: Mapping[str, Any], type_name: str) -> Any:
    """The Python value of one result ``Field`` of a column whose metadata ``typeName`` is given
    (``""`` when unknown)."""
    if field.get("isNull"):
        return None
    if "arrayValue" in field:
        return _decode_array(field["arrayValue"], _element_type(type_name))
    for kind, value in field.items():
        if kind == "stringValue":
            return decode_text(value, type_name)
        if kind == "blobValue" and isinstance(value, str):  # a record botocore did not parse
            return base64.b64decode(value)
        return value  # booleanValue, longValue, doubleValue, blobValue (bytes already)
    return None  # an empty field: the Data API sends none, but do not fail on one


def _decode_array(array: Mapping[str, Any], element_type: str) -> list[Any]:
    for kind, values in array.items():
        if kind == "arrayValues":
            return [None if v is None else _decode_array(v, element_type) for v in values]
        if kind == "stringValues":
            return [None if v is None else decode_text(v, element_type) for v in values]
        return list(values)
    return []


def _element_type(type_name: str) -> str:
    name = type_name.lstrip("_")
    return name[:-2] if name.endswith("[]") else name


_TIMESTAMP = re.compile(r"(-?\d{4,}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?")
_TIME = re.compile(r"(-?)(\d{2,}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")


def decode_text(text: str, type_name: str) -> Any:
    """A ``stringValue`` converted by its column's type; the text itself when it does not parse."""
    kind = type_name.lower().removesuffix(" unsigned")
    mysql = type_name.isupper()
    try:
        if kind in ("numeric", "decimal"):
            return Decimal(text)
        if kind == "date":
            return _date(text)
        if kind in ("timestamp", "timestamptz", "datetime"):
            return _timestamp(text, aware=kind == "timestamptz")
        if kind in ("time", "timetz"):
            return _mysql_time(text) if mysql else _time(text)
        if kind in ("json", "jsonb"):
            return json.loads(text)
        if kind == "uuid":
            return uuid.UUID(text)
    except (ValueError, InvalidOperation, OverflowError):
        pass
    return text


def _date(text: str) -> dt.date:
    special = {"infinity": dt.date.max, "-infinity": dt.date.min}
    return special[text] if text in special else dt.date.fromisoformat(text)


def _timestamp(text: str, *, aware: bool) -> dt.datetime:
    if text in ("infinity", "-infinity"):
        value = dt.datetime.max if text == "infinity" else dt.datetime.min
    else:
        match = _TIMESTAMP.fullmatch(text)
        if match is None:
            raise ValueError(text)
        day, clock, fraction = match.groups()
        value = dt.datetime.fromisoformat(f"{day} {clock}").replace(microsecond=_micros(fraction))
    return value.replace(tzinfo=dt.UTC) if aware else value


def _time(text: str) -> dt.time:
    match = _TIME.fullmatch(text)
    if match is None or match.group(1):
        raise ValueError(text)
    _, hours, minutes, seconds, fraction = match.groups()
    return dt.time(int(hours), int(minutes), int(seconds), _micros(fraction))


def _mysql_time(text: str) -> dt.timedelta:
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(text)
    sign, hours, minutes, seconds, fraction = match.groups()
    value = dt.timedelta(
        hours=int(hours), minutes=int(minutes), seconds=int(seconds), microseconds=_micros(fraction)
    )
    return -value if sign else value


def _micros(fraction: str | None) -> int:
    return int((fraction or "0")[:6].ljust(6, "0"))


RAW_RECORDS = "aurora_async_raw_records"


def take_records(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore's ``before-parse`` hook for ExecuteStatement: the records are taken out of the body
    and handed over as ``RAW_RECORDS`` (JSON as sent: blobs still base64), so botocore parses only the
    rest. Two reasons: botocore's field-by-field parse is most of the client's CPU time for a result
    of any size (``json.loads`` is C), and it cannot read a NULL inside an array at all (``int(None)``
    on ``longValues``/``doubleValues``; in ``booleanValues`` it becomes False), which the Data API sends
    for arrays with NULL elements (boto3 issue 4508)."""
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes) or b'"records"' not in body:
        return
    document = json.loads(body)
    records = document.pop("records", None)
    if isinstance(records, list):
        customized_response_dict[RAW_RECORDS] = records
        response_dict["body"] = json.dumps(document).encode()
