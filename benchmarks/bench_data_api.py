"""The cost of the Data API's HTTP path: aurora_async.data_api through the local emulator vs asyncpg
straight to the same PostgreSQL instance, A/B interleaved.

The simulator and the emulator run in a child process (``python -m aurora_async.testing up
--data-api``), as a remote service would, so they do not share this process's event loop. Both sides go
through the simulator's fault proxy. The emulator is not AWS: it shows what the client and the protocol
cost (HTTP, JSON, SigV4 signing, the type mapping), not the Data API's own service latency.

    .venv/bin/python benchmarks/bench_data_api.py [--rounds 7] [--ops 400] [--connections 1 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
import asyncpg
from _common import ab_rounds, command, commit, header, machine, ratio_table, write
from aiobotocore.config import AioConfig

from aurora_async import data_api
from aurora_async.testing import DUMMY_AWS_ENV

PREFIX = "127.0.47."


class RawClient:
    """The same three calls on the bare aioboto3 client: what a user without a wrapper would write."""

    def __init__(self, client: Any, resource_arn: str, secret_arn: str) -> None:
        self._client = client
        self._ids = {"resourceArn": resource_arn, "secretArn": secret_arn}

    async def fetchval(self, sql: str) -> Any:
        response = await self._client.execute_statement(**self._ids, sql=sql)
        return next(iter(response["records"][0][0].values()))

    async def fetch(self, sql: str) -> Any:
        response = await self._client.execute_statement(**self._ids, sql=sql, includeResultMetadata=True)
        return response["records"]

    async def execute(self, sql: str, params: dict[str, Any]) -> Any:
        parameters = [{"name": k, "value": {"stringValue": v}} for k, v in params.items()]
        return await self._client.execute_statement(**self._ids, sql=sql, parameters=parameters)


async def start_service() -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aurora_async.testing",
        "up",
        "--instances",
        "1",
        "--data-api",
        "--address-prefix",
        PREFIX,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while "ready" not in seen:
        line = (
            await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
        ).decode()
        if not line:
            raise RuntimeError("the simulator exited before it was ready")
        if match := re.match(r"data api (endpoint|resource|secret)\s+(\S+)", line):
            seen[match.group(1)] = match.group(2)
        elif match := re.match(r"\s+\S+\s+writer\s+\S+\s+(\S+)", line):
            seen["dsn"] = match.group(1)
        elif line.startswith("ready"):
            seen["ready"] = line
    return proc, seen


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=400, help="operations per side, workload and round")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    os.environ.update(DUMMY_AWS_ENV)
    proc, service = await start_service()
    most = max(args.connections)
    stack = AsyncExitStack()
    try:
        direct = [await asyncpg.connect(service["dsn"]) for _ in range(most)]
        await direct[0].execute(
            "CREATE TABLE IF NOT EXISTS bench_data_api (id bigserial PRIMARY KEY, v text)"
        )
        await direct[0].execute("TRUNCATE bench_data_api")
        conn = await data_api.connect(
            resource_arn=service["resource"],
            secret_arn=service["secret"],
            endpoint_url=service["endpoint"],
            engine="postgresql",
            max_concurrency=most,
        )
        http = [conn] * most  # one Data API connection object serves concurrent calls
        config = AioConfig(retries={"total_max_attempts": 1}, max_pool_connections=most)
        region = service["resource"].split(":")[3]
        raw_client = await stack.enter_async_context(
            aioboto3.Session().client(
                "rds-data", region_name=region, endpoint_url=service["endpoint"], config=config
            )
        )
        raw = [RawClient(raw_client, service["resource"], service["secret"])] * most

        async def select_1(c: Any) -> None:
            await c.fetchval("SELECT 1")

        async def fetch_100(c: Any) -> None:
            sql = "SELECT g, md5(g::text) FROM generate_series(1, 100) g"
            await c.fetch(sql)

        async def insert(c: Any) -> None:
            if isinstance(c, asyncpg.Connection):
                await c.execute("INSERT INTO bench_data_api (v) VALUES ($1)", "value")
            else:
                await c.execute("INSERT INTO bench_data_api (v) VALUES (:v)", {"v": "value"})

        workloads = {"SELECT 1": select_1, "fetch 100 rows": fetch_100, "INSERT one row": insert}
        sides: dict[str, list[Any]] = {"asyncpg": direct, "aurora_async": http, "aioboto3": raw}
        samples = await ab_rounds(sides, workloads, args.connections, args.rounds, args.ops)
        await conn.close()
        for c in direct:
            await c.close()
    finally:
        await stack.aclose()
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 60)

    result: dict[str, Any] = {"command": command(), "commit": commit(), "machine": machine()}
    lines = header("Data API client through the local emulator vs asyncpg direct", result)
    lines += [
        "Seconds per operation, median (min-max) over rounds; the right column is Data API / asyncpg.",
        "The 'aurora_async' column is aurora_async.data_api -> HTTP -> the emulator (another process) ->",
        "PostgreSQL; asyncpg goes straight to the same instance. This is the price of the HTTP path on",
        "loopback, not of AWS's service.",
        "",
    ]
    client_cost: dict[str, Any] = {}
    cost_table = ratio_table(client_cost, samples, target=float("inf"), base="aioboto3")
    table = ratio_table(result, samples, target=float("inf"))
    lines += [line.replace("| aurora_async µs/op |", "| data_api µs/op |") for line in table[:-1]]
    lines += [
        "",
        "The client's own cost: aurora_async.data_api vs the bare aioboto3 rds-data client sending the",
        "same requests (no parameter checks, no type decoding, records left as botocore parsed them):",
        "",
        *[line.replace("| aurora_async µs/op |", "| data_api µs/op |") for line in cost_table[:-1]],
        cost_table[-1].replace(" (target: at most inf)", ""),
        "",
    ]
    result["client_vs_aioboto3"] = client_cost["seconds_per_operation"]
    for workload, entry in result["seconds_per_operation"].items():  # seconds per op over all connections
        result.setdefault("statements_per_second", {})[workload] = {
            side: 1 / entry[side]["median"] for side in ("asyncpg", "aurora_async")
        }
    lines += ["| workload | asyncpg statements/s | data_api statements/s |", "|---|---:|---:|"]
    for workload, rates in result["statements_per_second"].items():
        lines.append(f"| {workload} | {rates['asyncpg']:,.0f} | {rates['aurora_async']:,.0f} |")
    write("data_api", result, lines)


if __name__ == "__main__":
    asyncio.run(main())
