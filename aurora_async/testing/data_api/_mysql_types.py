"""How the Data API emulator types MySQL results: from the column definition packets the server sends
(type, length, flags, character set) to Data API ``Field`` values and ``ColumnMetadata``.

TINYINT(1) and BIT(1) are booleans, binary strings (character set 63) and BIT(n>1) blobs, integers too
large for a long (BIGINT UNSIGNED) strings; DECIMAL and temporal values are read as the server's text
(fractions as six digits, only when not zero). Type names and JDBC types are Connector/J's: TINYINT(1) is
``BIT`` (-7), TEXT types are LONGVARCHAR (-1). MariaDB stores JSON as LONGTEXT and reports it so: such a
column's ``typeName`` is ``LONGTEXT``, not ``JSON`` (a server that reports a JSON column, as MySQL does,
gets ``JSON``).
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql.constants import FIELD_TYPE, FLAG

from ._backend import Column
from ._encoding import NULL, decimal_field, long_field, metadata, temporal_text
from ._protocol import Field, ResultOptions, blob
from ._protocol import unsupported_type as unsupported

BINARY_CHARSET = 63
_TEXT_DECODED = (
    FIELD_TYPE.DATE,
    FIELD_TYPE.NEWDATE,
    FIELD_TYPE.DATETIME,
    FIELD_TYPE.TIMESTAMP,
    FIELD_TYPE.TIME,
    FIELD_TYPE.DECIMAL,
    FIELD_TYPE.NEWDECIMAL,
)
_INTEGERS = {
    FIELD_TYPE.TINY: ("TINYINT", -6),
    FIELD_TYPE.SHORT: ("SMALLINT", 5),
    FIELD_TYPE.INT24: ("MEDIUMINT", 4),
    FIELD_TYPE.LONG: ("INT", 4),
    FIELD_TYPE.LONGLONG: ("BIGINT", -5),
}
_BLOBS = (FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB, FIELD_TYPE.BLOB)
_TEMPORALS = {
    FIELD_TYPE.DATE: ("DATE", 91),
    FIELD_TYPE.NEWDATE: ("DATE", 91),
    FIELD_TYPE.TIME: ("TIME", 92),
    FIELD_TYPE.DATETIME: ("DATETIME", 93),
    FIELD_TYPE.TIMESTAMP: ("TIMESTAMP", 93),
}
_BYTES_PER_CHAR = {"utf8mb4": 4, "utf8mb3": 3, "utf8": 3, "ucs2": 2, "utf16": 4, "utf16le": 4, "utf32": 4}


def conversions() -> dict[Any, Any]:
    """pymysql's conversions, with DECIMAL and temporal values left as the server's text."""
    conv = dict(pymysql.converters.conversions)
    for type_code in _TEXT_DECODED:
        conv[type_code] = str
    return conv


def _bytes_per_char(charset_id: int) -> int:
    try:
        name = pymysql.charset.charset_by_id(charset_id).name
    except KeyError:
        return 1
    return _BYTES_PER_CHAR.get(name, 1)


def _case_sensitive(charset_id: int) -> bool:
    if charset_id == BINARY_CHARSET:
        return True
    try:
        collation = pymysql.charset.charset_by_id(charset_id).collation or ""
    except KeyError:
        return False
    return collation.endswith(("_bin", "_cs"))


def _string(value: Any, options: ResultOptions) -> Field:
    return {"stringValue": value.decode() if isinstance(value, bytes) else str(value)}


def _json(value: Any, options: ResultOptions) -> Field:
    return _string(value, options)


def _blob(value: Any, options: ResultOptions) -> Field:
    return blob(value.encode() if isinstance(value, str) else bytes(value))


def _boolean(value: Any, options: ResultOptions) -> Field:
    if isinstance(value, bytes):
        return {"booleanValue": int.from_bytes(value, "big") != 0}
    return {"booleanValue": bool(value)}


def _long(value: Any, options: ResultOptions) -> Field:
    return long_field(int(value), options)


def _double(value: Any, options: ResultOptions) -> Field:
    return {"doubleValue": float(value)}


def _decimal(value: Any, options: ResultOptions) -> Field:
    return decimal_field(str(value), options)


def _temporal(value: Any, options: ResultOptions) -> Field:
    return {"stringValue": temporal_text(str(value))}


def _null(value: Any, options: ResultOptions) -> Field:
    return NULL


def column_of(packet: Any) -> Column:
    """Encoding and ``ColumnMetadata`` from a column definition packet."""
    type_code: int = packet.type_code
    flags: int = packet.flags
    length: int = packet.length
    charset: int = packet.charsetnr
    unsigned = bool(flags & FLAG.UNSIGNED)
    binary = charset == BINARY_CHARSET
    precision = length
    scale = 0
    signed = False
    encode = _string
    if type_code == FIELD_TYPE.TINY and length == 1:
        type_name, jdbc, encode = "BIT", -7, _boolean
    elif type_code in _INTEGERS:
        type_name, jdbc = _INTEGERS[type_code]
        encode, signed = _long, not unsigned
        type_name += " UNSIGNED" if unsigned else ""
    elif type_code == FIELD_TYPE.YEAR:
        type_name, jdbc, encode = "YEAR", 5, _long
    elif type_code in (FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE):
        type_name, jdbc = ("FLOAT", 7) if type_code == FIELD_TYPE.FLOAT else ("DOUBLE", 8)
        encode, signed = _double, not unsigned
    elif type_code in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
        type_name, jdbc, encode, signed = "DECIMAL", 3, _decimal, not unsigned
        type_name += " UNSIGNED" if unsigned else ""
        scale = packet.scale
        precision = length - (0 if unsigned else 1) - (1 if scale else 0)
    elif type_code == FIELD_TYPE.BIT:
        type_name, jdbc = "BIT", -7
        encode = _boolean if length == 1 else _blob
    elif type_code in _TEMPORALS:
        type_name, jdbc = _TEMPORALS[type_code]
        encode, scale = _temporal, packet.scale
    elif type_code == FIELD_TYPE.NULL:
        type_name, jdbc, encode = "NULL", 0, _null
    elif type_code == FIELD_TYPE.JSON:  # MySQL sends it with the binary character set: still text
        type_name, jdbc, encode = "JSON", -1, _json
    elif type_code in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING):
        type_name, jdbc = ("VARBINARY", -3) if binary else ("VARCHAR", 12)
    elif type_code in (FIELD_TYPE.STRING, FIELD_TYPE.ENUM, FIELD_TYPE.SET):
        if flags & FLAG.ENUM or type_code == FIELD_TYPE.ENUM:
            type_name, jdbc = "ENUM", 1
        elif flags & FLAG.SET or type_code == FIELD_TYPE.SET:
            type_name, jdbc = "SET", 1
        else:
            type_name, jdbc = ("BINARY", -2) if binary else ("CHAR", 1)
    elif type_code in _BLOBS:
        size = length // _bytes_per_char(charset)
        prefix = (
            "TINY" if size <= 255 else "" if size <= 65_535 else "MEDIUM" if size <= 16_777_215 else "LONG"
        )
        type_name, jdbc = (f"{prefix}BLOB", -4) if binary else (f"{prefix}TEXT", -1)
    else:  # GEOMETRY and anything newer
        raise unsupported(
            "GEOMETRY" if type_code == FIELD_TYPE.GEOMETRY else f"of MySQL type code {type_code}"
        )
    if encode is _string:
        if binary:
            encode = _blob
        precision = length // _bytes_per_char(charset)
    label = str(packet.name)
    info = metadata(
        label,
        type_name,
        jdbc,
        nullable=0 if flags & FLAG.NOT_NULL else 1,
        precision=precision,
        scale=scale,
        table_name=str(packet.table_name or ""),
        signed=signed,
        auto_increment=bool(flags & FLAG.AUTO_INCREMENT),
        case_sensitive=encode in (_string, _blob, _json) and _case_sensitive(charset),
    )
    return Column(label, info, encode)
