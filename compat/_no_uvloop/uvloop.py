"""A stand-in for ``uvloop`` that reads as absent.

aiomysql's test conftest does ``import uvloop`` unconditionally and runs every test once per event loop
when the module is truthy. aurora_async targets asyncio's own loop, and uvloop is not one of its
dependencies: on the compat runner's path this module takes uvloop's place and is false, so each
test runs once, on asyncio's loop, whether or not uvloop is installed.
"""

from __future__ import annotations

import sys
import types


class _Absent(types.ModuleType):
    def __bool__(self) -> bool:
        return False


sys.modules[__name__].__class__ = _Absent
