"""A postgresql:// DSN's parameters that are not aurora_async options reach the server as settings; a
mistyped option is refused before any I/O instead (on the simulator's real PostgreSQL)."""

from __future__ import annotations

import pytest

import aurora_async
from aurora_async import ConfigurationError
from aurora_async._config import parse
from aurora_async.testing import AuroraSimulator
from tests.helpers import fetchval

pytestmark = pytest.mark.aurora_simulator(instances=1, topology="none", dns_delay=0)


async def test_every_setting_the_server_knows_passes_as_a_dsn_parameter(
    aurora_postgres: AuroraSimulator,
) -> None:
    sim = aurora_postgres
    names = await fetchval(sim.dsn(sim.writer_id), "SELECT array_agg(name) FROM pg_catalog.pg_settings")
    assert isinstance(names, list) and len(names) > 300
    refused = []
    for name in names:
        if name == "port":  # asyncpg (as libpq) reads ?port= as the connection's port, never a setting
            continue
        try:
            config = parse(f"{sim.dsn('cluster')}?{name}=x")
        except ConfigurationError as exc:
            refused.append(f"{name}: {exc}")
            continue
        assert config.dsn == f"postgresql:///?{name}=x"
    assert refused == []


async def test_settings_in_the_dsn_reach_the_server(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    settings = "application_name=shop&statement_timeout=4321&lock_timeout=1234"
    dsn = f"{sim.dsn('cluster')}?{settings}&plugins=failover"
    async with aurora_async.connect(dsn, cluster_instance_host_pattern=sim.instance_host_pattern) as conn:
        assert await conn.fetchval("SELECT current_setting('application_name')") == "shop"
        assert await conn.fetchval("SELECT current_setting('statement_timeout')") == "4321ms"
        assert await conn.fetchval("SELECT current_setting('lock_timeout')") == "1234ms"


def test_a_mistyped_option_is_refused_before_it_reaches_the_server() -> None:
    # before: asyncpg sent failovr_timeout to the server as a setting, which refused the connection
    with pytest.raises(ConfigurationError, match="did you mean 'failover_timeout'"):
        aurora_async.connect("postgresql://app@127.0.42.1:5432/db?failovr_timeout=3")
