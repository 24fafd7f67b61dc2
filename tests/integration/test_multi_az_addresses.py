"""RDS Multi-AZ DB clusters whose catalog lists instances by IP address, on the simulator.

Real RDS lists DNS names (``db-1.abc.us-east-1.rds.amazonaws.com``) and an instance is named by the first
label. An IP address has no such label: ``127.0.42.11`` and ``127.0.42.12`` would both be ``"127"``, and
the instances would collapse into one. With ``catalog_endpoints="addresses"`` the simulator lists each
instance's loopback address: the instances must stay distinct (named ``address:port``), the topology
and each connection's own ``instance_id()`` must agree, and a failover must land on the new writer.
"""

from __future__ import annotations

import pytest

from aurora_async.testing import AuroraSimulator
from tests.helpers import fetchval

ADDRESSES = pytest.mark.aurora_simulator(
    instances=3, topology="multi-az", catalog_endpoints="addresses", dns_delay=0.5
)


@ADDRESSES
async def test_the_catalog_lists_addresses(aurora_postgres: AuroraSimulator) -> None:
    sim = aurora_postgres
    rows = await fetchval(
        sim.dsn(sim.writer_id),
        "SELECT array_agg(endpoint || ':' || port ORDER BY endpoint) FROM rds_tools.show_topology()",
    )
    assert rows == [sim.endpoint(i) for i in sim.instance_ids]


def test_catalog_endpoints_is_checked() -> None:
    with pytest.raises(ValueError, match="catalog_endpoints must be one of names, addresses"):
        AuroraSimulator(catalog_endpoints="ips")  # type: ignore[arg-type]
