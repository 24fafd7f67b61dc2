"""The pytest plugin as a user's project sees it: installed with the package, no conftest needed."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
import asyncpg
import pytest


async def test_default_cluster(aurora_postgres):
    assert aurora_postgres.instance_ids == ["11", "12", "13"]
    conn = await asyncpg.connect(aurora_postgres.dsn("cluster"))
    assert await conn.fetchval("SELECT pg_catalog.aurora_db_instance_identifier()") == "11"
    await conn.close()


@pytest.mark.aurora_simulator(instances=2, topology="multi-az")
async def test_configured_cluster(aurora_postgres):
    assert aurora_postgres.instance_ids == ["11", "12"]
    assert aurora_postgres.topology == "multi-az"


@pytest.mark.aurora_simulator(3)
async def test_positional_marker_arguments_are_refused(aurora_postgres):
    pass
"""


def test_fixture_and_marker_work_in_a_users_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--asyncio-mode=auto", "-q")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*TypeError: @pytest.mark.aurora_simulator takes keyword arguments only*"])
