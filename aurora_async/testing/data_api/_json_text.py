"""JSON values as the Data API returns them from PostgreSQL ``json`` and ``jsonb`` columns.

Serverless v2 and provisioned clusters return JSON in compact form, without the spaces PostgreSQL puts
after ``:`` and ``,`` (``{"x":0,"z":[0,1]}``, where v1 returned ``{"x": 0, "z": [0, 1]}``), and they do
not return numbers beyond the range of a double: the ``aurora-data-api`` client's suite, updated for v2
in its 0.5.0, says so in its own words ("data api v1 used JSON serialization with extra whitespace; v2
uses compact serialization", and "v1 supports up to 512**512 but v2 only supports up to 128**128": 128**128
is about 5e269, 512**512 about 1e1387, and a double ends at about 1.8e308). How the service refuses such a
number is not documented; the emulator answers ``UnsupportedResultException``, whose documented meaning
(a result the Data API cannot return) fits, and whose remedy, a cast to ``text``, works there too.
"""

from __future__ import annotations

import math
import re

# a JSON text is strings, whitespace and everything else (punctuation, literals, numbers)
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[ \t\n\r]+|[^ \t\n\r"]+', re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


class NumberOutOfRange(ValueError):
    """A JSON number whose magnitude is beyond the range of a double."""

    def __init__(self, number: str) -> None:
        shown = number if len(number) <= 24 else f"{number[:20]}... ({len(number)} characters)"
        super().__init__(shown)
        self.number = number


def compact_json(text: str) -> str:
    """``text`` (valid JSON, as PostgreSQL prints it) without whitespace outside strings; strings and
    numbers keep their exact text. :class:`NumberOutOfRange` for a number a double cannot hold."""
    pieces: list[str] = []
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token[0] in " \t\n\r":
            continue
        if token[0] != '"':
            for number in _NUMBER.findall(token):
                if math.isinf(float(number)):
                    raise NumberOutOfRange(number)
        pieces.append(token)
    return "".join(pieces)
