"""IAM database authentication: short-lived tokens instead of a password, cached and shared.

    .venv/bin/python examples/iam_auth.py          (needs the 'aws' extra: pip install 'aurora_async[aws]')

On AWS it is one option more than a password-less DSN:

    conn = await aurora_async.connect(
        "postgresql://app_user@mydb.cluster-abc123.us-east-1.rds.amazonaws.com/shop",
        plugins=("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring", "iam"),
        # the token is the password: it is only sent over TLS that verifies the server, here against
        # the RDS CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)
        ssl=ssl.create_default_context(cafile="global-bundle.pem"),
    )

The region comes from the host name (or ``iam_region=``), credentials from the usual AWS chain (or an
``aws_session=`` you pass). Here the same code runs against the local simulator, whose servers speak
TLS with a certificate its own CA signed (``sim.tls_root_cert``): dummy credentials sign real tokens
offline, and ``RehearsalSession`` makes each token the database user's password, as RDS would accept
it. 50 concurrent connects and a failover cost one token.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any

import aurora_async
from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, RehearsalSession

PLUGINS = ("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring", "iam")


async def main() -> None:
    os.environ.update(DUMMY_AWS_ENV)  # offline signing only: no AWS call is made
    async with AuroraSimulator(instances=3, tls=True) as sim:
        session = RehearsalSession(sim, "app_user")
        assert sim.tls_root_cert is not None
        options: dict[str, Any] = {
            "host": sim.cluster_endpoint.rsplit(":", 1)[0],
            "port": sim.port,
            "user": "app_user",
            "database": "postgres",
            "plugins": PLUGINS,
            "iam_region": "us-east-1",  # a loopback address names no region
            "iam_host": "mydb.cluster-abc123.us-east-1.rds.amazonaws.com",  # what the token is for
            "ssl": ssl.create_default_context(cafile=str(sim.tls_root_cert)),  # verify-full
            "aws_session": session,
            "cluster_instance_host_pattern": sim.instance_host_pattern,
        }
        conns = await asyncio.gather(*(aurora_async.connect(**options) for _ in range(50)))
        try:
            print(
                f"50 connections as {await conns[0].fetchval('SELECT current_user')}: "
                f"{session.calls['generate_db_auth_token']} token generated"
            )
            report = await sim.failover()
            try:
                await conns[0].fetchval("SELECT 1")
            except aurora_async.FailoverSuccessError:
                print(
                    f"failed over to {conns[0].instance.instance_id} (new writer {report.new_writer}), "
                    "authenticated with the cached token"
                )
            print(f"tokens generated in all: {session.calls['generate_db_auth_token']}")
        finally:
            await asyncio.gather(*(c.close() for c in conns))
    print("Cluster stopped and removed.")


if __name__ == "__main__":
    asyncio.run(main())
