"""pytest fixtures for the local Aurora simulator, registered through the ``pytest11`` entry point.

A test asks for a running cluster by name and configures it with a marker::

    @pytest.mark.aurora_simulator(instances=2, dns_delay=0.5)
    async def test_survives_failover(aurora_postgres):
        conn = await asyncpg.connect(aurora_postgres.dsn("cluster"))
        await aurora_postgres.failover()

``aurora_mysql`` is the same with ``engine="mysql"`` (MariaDB servers). Options also come from an
indirect parametrization: a topology name (``"aurora"``, ``"multi-az"``, ``"none"``) or a dict of
keyword arguments::

    @pytest.mark.parametrize("aurora_mysql", ["aurora", "multi-az"], indirect=True)
    async def test_both_topologies(aurora_mysql): ...

Each test gets its own cluster (about a second and a half to start on a tmpfs ``/dev/shm``). The
fixtures need pytest-asyncio. When the server binaries are missing the fixture fails with a message
saying what to install; set ``AURORA_SIM_SKIP_IF_MISSING=1`` to skip instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ._errors import SimulatorError
from .mysql._server import MariaDbBinaries
from .postgresql._server import PgBinaries
from .simulator._simulator import AuroraSimulator

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the user's environment
    pytest_asyncio = None  # type: ignore[assignment]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "aurora_simulator(**options): AuroraSimulator keyword arguments for the aurora_postgres and "
        "aurora_mysql fixtures",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("aurora_simulator")
    options: dict[str, Any] = {}
    if marker is not None:
        if marker.args:
            raise TypeError("@pytest.mark.aurora_simulator takes keyword arguments only")
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if isinstance(param, str):
        options["topology"] = param
    elif isinstance(param, dict):
        options.update(param)
    elif param is not None:
        raise TypeError("parametrize a simulator fixture with a topology name or a dict of options")
    return options


def _check_binaries(engine: str, options: dict[str, Any]) -> None:
    try:
        if engine == "mysql":
            MariaDbBinaries.find()
        else:
            PgBinaries.find(options.get("pg_bin_dir"))
    except SimulatorError as exc:
        if os.environ.get("AURORA_SIM_SKIP_IF_MISSING") == "1":
            pytest.skip(str(exc))
        raise


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def aurora_postgres(request: pytest.FixtureRequest) -> AsyncIterator[AuroraSimulator]:
        """A running simulated Aurora PostgreSQL cluster, stopped and deleted after the test."""
        options = _options(request)
        _check_binaries("postgresql", options)
        async with AuroraSimulator(engine="postgresql", **options) as sim:
            yield sim

    @pytest_asyncio.fixture
    async def aurora_mysql(request: pytest.FixtureRequest) -> AsyncIterator[AuroraSimulator]:
        """A running simulated Aurora MySQL cluster (MariaDB servers), stopped and deleted after the
        test."""
        options = _options(request)
        _check_binaries("mysql", options)
        async with AuroraSimulator(engine="mysql", **options) as sim:
            yield sim

else:  # pragma: no cover

    @pytest.fixture
    def aurora_postgres() -> None:
        pytest.fail("the aurora_postgres fixture needs pytest-asyncio: pip install pytest-asyncio")

    @pytest.fixture
    def aurora_mysql() -> None:
        pytest.fail("the aurora_mysql fixture needs pytest-asyncio: pip install pytest-asyncio")
