"""The Data API encodings both engines share: NULL, longs, decimals, times and ``ColumnMetadata``."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ._protocol import INT64, Field, ResultOptions

NULL: Field = {"isNull": True}

_TEMPORAL = re.compile(
    r"(?P<main>(?:\d+-\d\d-\d\d )?-?\d+:\d\d:\d\d)(?:\.(?P<frac>\d+))?"
    r"(?:[+-]\d\d(?::\d\d){0,2})?(?P<era> BC)?"
)


def long_field(value: int, options: ResultOptions) -> Field:
    if options.long_as_string or not INT64[0] <= value <= INT64[1]:
        return {"stringValue": str(value)}
    return {"longValue": value}


def decimal_field(text: str, options: ResultOptions) -> Field:
    """DECIMAL/NUMERIC: the database's own text, or (``DOUBLE_OR_LONG``) a long when integral."""
    if not options.decimal_as_number:
        return {"stringValue": text}
    try:
        number = Decimal(text)
    except InvalidOperation:
        return {"stringValue": text}
    if number.is_finite() and number == number.to_integral_value() and INT64[0] <= number <= INT64[1]:
        return {"longValue": int(number)}
    return {"doubleValue": float(number)}


def temporal_text(text: str) -> str:
    """``HH:MM:SS[.ffffff]`` and ``YYYY-MM-DD HH:MM:SS[.ffffff]`` from the database's text: the fraction
    as six digits, only when not zero (like ``isoformat``), the UTC offset dropped (sessions run in UTC).
    Dates, ``infinity`` and other text pass unchanged."""
    match = _TEMPORAL.fullmatch(text)
    if match is None:
        return text
    fraction = (match["frac"] or "").ljust(6, "0")[:6]
    return match["main"] + (f".{fraction}" if fraction.strip("0") else "") + (match["era"] or "")


def metadata(
    label: str,
    type_name: str,
    jdbc_type: int,
    *,
    nullable: int = 2,
    precision: int = 0,
    scale: int = 0,
    schema_name: str = "",
    table_name: str = "",
    signed: bool = False,
    auto_increment: bool = False,
    case_sensitive: bool = False,
    array_base_type: int = 0,
) -> dict[str, Any]:
    """A ``ColumnMetadata`` (``name`` and ``label`` are both the column's label)."""
    return {
        "name": label,
        "label": label,
        "typeName": type_name,
        "type": jdbc_type,
        "nullable": nullable,
        "precision": precision,
        "scale": scale,
        "schemaName": schema_name,
        "tableName": table_name,
        "isSigned": signed,
        "isAutoIncrement": auto_increment,
        "isCaseSensitive": case_sensitive,
        "isCurrency": False,
        "arrayBaseColumnType": array_base_type,
    }
