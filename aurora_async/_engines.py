"""Which driver serves which engine: the one place that names both."""

from __future__ import annotations

from collections.abc import Mapping

from ._driver import Driver
from .mysql.driver import MYSQL
from .postgresql.driver import POSTGRESQL

DRIVERS: Mapping[str, Driver] = {"postgresql": POSTGRESQL, "mysql": MYSQL}  # by Config.engine
ENGINES = tuple(DRIVERS)
SCHEMES: Mapping[str, str] = {scheme: d.engine for d in DRIVERS.values() for scheme in d.schemes}
