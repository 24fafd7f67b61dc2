"""IAM database authentication on Aurora MySQL: the token is sent in clear text, so only over verified TLS.

    .venv/bin/python examples/iam_auth_mysql.py    (needs the 'aws' extra: pip install 'aurora_async[aws]')

On AWS the database user is ``CREATE USER app_user IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'``,
and the connect call is the PostgreSQL one with a ``mysql://`` DSN:

    conn = await aurora_async.connect(
        "mysql://app_user@mydb.cluster-abc123.us-east-1.rds.amazonaws.com/shop",
        plugins=("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring", "iam"),
        ssl=ssl.create_default_context(cafile="global-bundle.pem"),  # the RDS CA bundle
    )

The server asks for ``mysql_clear_password``; aurora_async answers with the token at once, and only on
a connection whose TLS verified the server (certificate and host name), unless
``iam_allow_plaintext=True``. Here the same code runs against the local simulator: its MariaDB servers
log the IAM user in through the same clear-password exchange (MariaDB's PAM plugin checks the token;
the simulator writes the PAM service ``/etc/pam.d/aurora_async_sim_iam`` the first time, so run this
once as root), behind a certificate its own CA signed (``sim.tls_root_cert``). Dummy credentials sign
real tokens offline and ``RehearsalSession`` makes each one the token the server accepts. 50 concurrent
connects and a failover cost one token.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any

import aurora_async
from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, RehearsalSession

PLUGINS = ("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring", "iam")


async def current_user(conn: Any) -> str:
    async with conn.cursor() as cur:
        await cur.execute("SELECT CURRENT_USER()")
        (user,) = await cur.fetchone()
        return str(user)


async def main() -> None:
    os.environ.update(DUMMY_AWS_ENV)  # offline signing only: no AWS call is made
    async with AuroraSimulator(engine="mysql", instances=3, tls=True) as sim:
        await sim.create_iam_user("app_user")  # IDENTIFIED WITH AWSAuthenticationPlugin, simulated
        session = RehearsalSession(sim, "app_user")
        assert sim.tls_root_cert is not None
        options: dict[str, Any] = {
            "plugins": PLUGINS,
            "iam_region": "us-east-1",  # a loopback address names no region
            "iam_host": "mydb.cluster-abc123.us-east-1.rds.amazonaws.com",  # what the token is for
            "ssl": ssl.create_default_context(cafile=str(sim.tls_root_cert)),  # certificate and host name
            "aws_session": session,
            "cluster_instance_host_pattern": sim.instance_host_pattern,
        }
        dsn = f"mysql://app_user@{sim.cluster_endpoint}/app"
        conns = await asyncio.gather(*(aurora_async.connect(dsn, **options) for _ in range(50)))
        try:
            print(
                f"50 connections as {await current_user(conns[0])} "
                f"({conns[0].raw._auth_plugin_used} over TLS): "
                f"{session.calls['generate_db_auth_token']} token generated"
            )
            report = await sim.failover()
            try:
                await current_user(conns[0])
            except aurora_async.FailoverSuccessError:
                print(
                    f"failed over to {conns[0].instance.instance_id} (new writer {report.new_writer}), "
                    f"authenticated as {await current_user(conns[0])} with the cached token"
                )
            print(f"tokens generated in all: {session.calls['generate_db_auth_token']}")
            refused = [a for a in sim.iam_login_attempts() if not a.accepted]
            print(f"tokens the servers refused: {len(refused)}")
        finally:
            await asyncio.gather(*(c.ensure_closed() for c in conns))
    print("Cluster stopped and removed.")


if __name__ == "__main__":
    asyncio.run(main())
