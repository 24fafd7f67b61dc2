"""Fixtures of the engine-parametrized server tests: ``engine`` (``postgresql`` and ``mysql``, or
``<engine>-<topology>`` where a test parametrizes it), ``sim`` (a simulated cluster of that engine,
configured by ``@pytest.mark.aurora_simulator(...)`` as the pytest plugin's fixtures read it) and
``ops`` (what differs between the engines, ``_engine_ops``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aurora_async.testing import AuroraSimulator
from aurora_async.testing.pytest_plugin import _check_binaries

from ._engine_ops import EngineOps, engine_ops


@pytest.fixture(params=["postgresql", "mysql"])
def engine(request: pytest.FixtureRequest) -> str:
    """``<engine>`` or ``<engine>-<topology>``: which simulated cluster the test runs on."""
    name: str = request.param
    return name


@pytest.fixture
async def sim(request: pytest.FixtureRequest, engine: str) -> AsyncIterator[AuroraSimulator]:
    """A running simulated cluster of ``engine`` (the aurora_postgres / aurora_mysql fixture's)."""
    kind, _, topology = engine.partition("-")
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker("aurora_simulator")
    if marker is not None:
        options.update(marker.kwargs)
    if topology:
        options["topology"] = topology
    _check_binaries(kind, options)
    async with AuroraSimulator(engine=kind, **options) as cluster:
        yield cluster


@pytest.fixture
def ops(sim: AuroraSimulator) -> EngineOps:
    return engine_ops(sim)
