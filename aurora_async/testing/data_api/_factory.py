"""Which Data API backend serves a simulator: PostgreSQL's or MySQL's, imported only when needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._backend import Backend

if TYPE_CHECKING:
    from ..simulator._simulator import AuroraSimulator


def make_backend(sim: AuroraSimulator, tag: str) -> Backend:
    """The backend for ``sim.engine``, connecting through the writer endpoint (``sim.dsn("cluster")``)."""
    if sim.engine == "mysql":
        from ._mysql import MySQLBackend  # noqa: PLC0415 - keep aiomysql out of PostgreSQL use

        return MySQLBackend(sim.dsn("cluster"), tag)
    from ._postgres import PostgresBackend  # noqa: PLC0415

    return PostgresBackend(sim.dsn("cluster"), tag)
