"""Database credentials from AWS Secrets Manager: fetched once, cached, and rotation survived.

    .venv/bin/python examples/secrets_manager.py [--engine mysql]

(needs aioboto3 and moto: ``pip install 'aurora_async[aws]' 'moto[server]'``)

On AWS:

    conn = await aurora_async.connect(
        "postgresql://mydb.cluster-abc123.us-east-1.rds.amazonaws.com/shop",
        plugins=("initial_connection", "aurora_connection_tracker", "failover", "host_monitoring",
                 "aws_secrets_manager"),
        secrets_manager_secret_id="arn:aws:secretsmanager:us-east-1:123456789012:secret:shop-db-AbCdEf",
    )

The secret is JSON with ``username`` and ``password`` (other keys: ``secrets_manager_secret_username_key``
/ ``_password_key``); the region comes from the ARN or ``secrets_manager_region``. Here moto's server
on loopback plays Secrets Manager and the simulator plays Aurora: 50 concurrent connects read the
secret once; then the password is rotated, and the next connect notices the login failure, re-reads
the secret once and succeeds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

import aioboto3
from _engines import ENGINES, close, current_user_sql, database, scalar

import aurora_async
from aurora_async.testing import DUMMY_AWS_ENV, AuroraSimulator, MotoServer, RehearsalSession

PLUGINS = (
    "initial_connection",
    "aurora_connection_tracker",
    "failover",
    "host_monitoring",
    "aws_secrets_manager",
)


async def main(engine: str) -> None:
    os.environ.update(DUMMY_AWS_ENV)
    async with MotoServer() as endpoint, AuroraSimulator(engine=engine, instances=2) as sim:
        os.environ["AWS_ENDPOINT_URL"] = endpoint  # every AWS client goes to moto, never to AWS
        async with aioboto3.Session().client("secretsmanager", region_name="us-east-1") as admin:
            created = await admin.create_secret(
                Name="shop-db", SecretString=json.dumps({"username": "shop", "password": "first-password"})
            )
            await sim.set_password("shop", "first-password")
            session = RehearsalSession()  # a real aioboto3 session that counts its calls
            options: dict[str, Any] = {
                "host": sim.cluster_endpoint.rsplit(":", 1)[0],
                "port": sim.port,
                "engine": engine,
                "database": database(sim),
                "plugins": PLUGINS,
                "secrets_manager_secret_id": created["ARN"],  # region from the ARN
                "secrets_manager_endpoint": endpoint,
                "aws_session": session,
                "cluster_instance_host_pattern": sim.instance_host_pattern,
            }
            conns = await asyncio.gather(*(aurora_async.connect(**options) for _ in range(50)))
            try:
                user = await scalar(conns[0], current_user_sql(sim))
                print(f"50 connections as {user}: {session.calls['get_secret_value']} GetSecretValue call")
                print("Rotating: new database password, new secret version...")
                await sim.set_password("shop", "second-password")
                await admin.put_secret_value(
                    SecretId=created["ARN"],
                    SecretString=json.dumps({"username": "shop", "password": "second-password"}),
                )
                async with aurora_async.connect(**options) as fresh:
                    await scalar(fresh, "SELECT 1")
                calls = session.calls["get_secret_value"]
                print(f"connected after rotation; GetSecretValue calls in all: {calls}")
            finally:
                await asyncio.gather(*(close(c) for c in conns))
    print("Cluster and moto stopped.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=ENGINES, default="postgresql")
    asyncio.run(main(parser.parse_args().engine))
