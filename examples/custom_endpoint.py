"""An analytics custom endpoint beside the OLTP writer: each workload stays on its own instances.

    .venv/bin/python examples/custom_endpoint.py [--engine mysql]

A cluster of three: 11 is the writer, 12 and 13 replicas. The custom endpoint ``analytics`` (type
READER) holds 13 only, so reports never load the writer or the replica the application reads from.
Its members are read from the RDS API (``DescribeDBClusterEndpoints``; here the simulator's RDS API on
loopback, through real aioboto3 clients). The OLTP connection uses the writer endpoint; both share one
cluster (topology, writer search) and each keeps its own set of instances:

- a failover to 12: the OLTP connection follows the writer to 12, the report stays on 13;
- the endpoint changes to 11 and 12 (``ModifyDBClusterEndpoint``): the refresh sees it, and the next
  failover of the report's connection goes to a member (11, now a replica), never to 13 or the writer.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aioboto3
from _engines import ENGINES, close, instance_sql, scalar

import aurora_async
from aurora_async.testing import AuroraSimulator


async def on(conn: Any) -> str:
    """The instance the session is on, asked of the server (re-run once after a failover)."""
    try:
        return str(await scalar(conn, instance_sql(conn)))
    except aurora_async.FailoverSuccessError:
        return str(await scalar(conn, instance_sql(conn)))


async def main(engine: str) -> None:
    async with AuroraSimulator(engine=engine, instances=3, dns_delay=0.2) as sim:
        await sim.add_custom_endpoint("analytics", members=["13"], kind="READER")
        # offline: dummy credentials for the simulator's RDS API on loopback
        session = aioboto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
        common = {"cluster_instance_host_pattern": sim.instance_host_pattern}
        oltp: Any = await aurora_async.connect(sim.dsn("cluster"), **common)
        report: Any = await aurora_async.connect(
            sim.dsn("analytics"),
            custom_endpoint="analytics",  # the simulator's endpoints are IP addresses, not RDS names
            custom_endpoint_region="us-east-1",
            custom_endpoint_api_endpoint=sim.rds_api.endpoint_url,
            custom_endpoint_refresh=0.2,
            aws_session=session,
            **common,
        )
        try:
            print(f"oltp on {await on(oltp)}, analytics report on {await on(report)}")
            await sim.failover(target="12")
            print(f"after a failover to 12: oltp on {await on(oltp)}, report on {await on(report)}")
            await sim.modify_custom_endpoint("analytics", members=["11", "12"])
            for _ in range(200):  # the refresh runs every 0.2 s here (30 s by default); 10 s at most
                if "11" in getattr(report.custom_endpoint, "static", ()):
                    break
                await asyncio.sleep(0.05)
            else:
                raise SystemExit("the refresh did not see the endpoint change")
            print("the endpoint now holds 11 and 12; the refresh has seen it")
            await sim.crash("13")  # the report's instance dies
            print(f"13 crashed: report on {await on(report)} (a member, a replica), oltp on {await on(oltp)}")
            print(f"RDS API calls: {dict(sim.rds_api.calls)}")
        finally:
            await close(report)
            await close(oltp)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=ENGINES, default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
